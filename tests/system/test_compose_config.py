"""compose.yaml as `docker compose config` renders it: what the shell and `.env` reach.

No engine is needed (`config` only interpolates). Each case copies compose.yaml into a
project folder of its own, with or without a `.env`, and runs compose with none of the
variables of .env.example in its environment but those the case sets. Then Prometheus
is started for real through deploy/prometheus/start.sh with the environment compose
gives it, and must scrape the ports of `.env`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import requests
import yaml

from conftest import free_port, wait_until
from framewire.cameras import load_cameras
from framewire.cli import envvar
from framewire.config import ReceiverConfig, SenderConfig, settings

ROOT = Path(__file__).resolve().parents[2]
NAMES = set(re.findall(r"^([A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
CAMERA = {  # the per-camera defaults the README names, as a person would set them
    "FRAMEWIRE_SOURCE": "rtsp://viewer:pw-1234@192.0.2.9:554/stream1",
    "FRAMEWIRE_CAMERA": "door",
    "FRAMEWIRE_WIDTH": "640",
    "FRAMEWIRE_HEIGHT": "360",
    "FRAMEWIRE_FPS": "15",
    "FRAMEWIRE_QUALITY": "70",
    "FRAMEWIRE_OPEN_TIMEOUT": "3",
    "FRAMEWIRE_READ_TIMEOUT": "4",
}


def compose_services(
    tmp_path: Path, dotenv: dict[str, str] | None = None, shell: dict[str, str] | None = None
) -> dict[str, dict]:
    """The services of `docker compose config` for a project with this `.env` and shell."""
    docker = shutil.which("docker")
    found = docker and subprocess.run([docker, "compose", "version"], capture_output=True)
    if not found or found.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail("docker compose is not installed: run scripts/install-docker.sh")
        pytest.skip("docker compose is not installed (scripts/install-docker.sh)")
    project = tmp_path / f"project-{len(list(tmp_path.iterdir()))}"
    project.mkdir()
    shutil.copy(ROOT / "compose.yaml", project / "compose.yaml")
    if dotenv is not None:
        (project / ".env").write_text("".join(f"{k}={v}\n" for k, v in dotenv.items()))
    env = {k: v for k, v in os.environ.items() if k not in NAMES and not k.startswith("COMPOSE")}
    result = subprocess.run(
        [str(docker), "compose", "config", "--format", "json"],
        cwd=project,
        env={**env, **(shell or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["services"]


def sender_cameras(environment: dict[str, str]) -> list[SenderConfig]:
    """The cameras a sender with this environment runs from the default cameras file."""
    values = {}
    for f in settings(SenderConfig):
        if envvar(f.name) in environment:
            kind = {"int": int, "float": float}.get(str(f.type), str)
            values[f.name] = kind(environment[envvar(f.name)])
    cameras_file = ROOT / "deploy" / "cameras" / Path(values.pop("cameras_file")).name
    return load_cameras(str(cameras_file), SenderConfig(**values), environment)


@pytest.mark.parametrize("form", ["shell", ".env"])
def test_camera_defaults_reach_the_sender(tmp_path: Path, form: str) -> None:
    """`FRAMEWIRE_SOURCE=rtsp://... docker compose up`, or the same lines in .env."""
    services = compose_services(
        tmp_path, **({"shell": CAMERA} if form == "shell" else {"dotenv": CAMERA})
    )
    environment = services["sender"]["environment"]
    for name, value in CAMERA.items():
        assert environment[name] == value, name
    (camera,) = sender_cameras(environment)
    assert (camera.camera, camera.source) == ("door", CAMERA["FRAMEWIRE_SOURCE"])
    assert (camera.width, camera.height, camera.fps, camera.quality) == (640, 360, 15.0, 70)
    assert (camera.open_timeout, camera.read_timeout) == (3.0, 4.0)


def test_with_nothing_set_the_sender_runs_the_synthetic_cam0(tmp_path: Path) -> None:
    environment = compose_services(tmp_path)["sender"]["environment"]
    (camera,) = sender_cameras(environment)
    assert (camera.camera, camera.source, camera.fps) == ("cam0", "synthetic", 30.0)
    assert camera.http_url and camera.redis_url  # both transports


@pytest.mark.parametrize("transport", ["redis", "http"])
def test_one_transport_from_dotenv_alone(tmp_path: Path, transport: str) -> None:
    services = compose_services(tmp_path, dotenv={"FRAMEWIRE_TRANSPORTS": transport})
    for name in ("sender", "http-receiver", "redis-receiver"):
        assert services[name]["environment"]["FRAMEWIRE_TRANSPORTS"] == transport, name
    (camera,) = sender_cameras(services["sender"]["environment"])
    assert bool(camera.http_url) == (transport == "http")
    assert bool(camera.redis_url) == (transport == "redis")


def test_prometheus_is_published_on_loopback_unless_opened(tmp_path: Path) -> None:
    (published,) = compose_services(tmp_path)["prometheus"]["ports"]
    assert (published["host_ip"], published["published"]) == ("127.0.0.1", "9090")
    opened = compose_services(tmp_path, dotenv={"PROMETHEUS_BIND": "0.0.0.0"})
    assert opened["prometheus"]["ports"][0]["host_ip"] == "0.0.0.0"


def test_ports_of_dotenv_reach_prometheus(tmp_path: Path) -> None:
    """Ports moved in .env: the services listen there, and Prometheus scrapes them there."""
    ports = {"SENDER_METRICS_PORT": 9200, "HTTP_RECEIVER_PORT": 8101, "REDIS_RECEIVER_PORT": 8102}
    services = compose_services(tmp_path, dotenv={k: str(v) for k, v in ports.items()})
    assert services["sender"]["environment"]["FRAMEWIRE_METRICS_BIND"] == "0.0.0.0:9200"
    assert services["http-receiver"]["environment"]["FRAMEWIRE_BIND"] == "0.0.0.0:8101"
    assert services["redis-receiver"]["environment"]["FRAMEWIRE_BIND"] == "0.0.0.0:8102"
    prometheus = services["prometheus"]
    assert prometheus["entrypoint"] == ["/bin/sh", "/etc/prometheus/start.sh"]
    assert any(v["source"].endswith("deploy/prometheus") for v in prometheus["volumes"])

    # start.sh as compose runs it (its folder is deploy/prometheus), on a real Prometheus.
    binary = shutil.which("prometheus") or pytest.fail("prometheus is not installed")
    port = free_port()
    out = tmp_path / "rendered"
    flags = [f for f in prometheus["command"] if not f.startswith("--web.listen-address")]
    flags = [f for f in flags if not f.startswith("--storage.tsdb.path")]
    log_path = tmp_path / "prometheus.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                "/bin/sh",
                str(ROOT / "deploy" / "prometheus" / "start.sh"),
                *flags,
                f"--web.listen-address=127.0.0.1:{port}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            ],
            env={
                **os.environ,
                **prometheus["environment"],
                "PROMETHEUS_CONFIG_OUT": str(out),
                "PATH": f"{Path(binary).parent}:{os.environ['PATH']}",
            },
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:

        def ready() -> bool:
            assert proc.poll() is None, log_path.read_text()
            try:
                return requests.get(f"http://127.0.0.1:{port}/-/ready", timeout=2).ok
            except requests.ConnectionError:
                return False

        wait_until(ready, timeout=30, what="prometheus ready")
        answer = requests.get(f"http://127.0.0.1:{port}/api/v1/status/config", timeout=5).json()
        config = yaml.safe_load(answer["data"]["yaml"])
        scraped = {
            job["job_name"]: job["dns_sd_configs"][0]["port"] for job in config["scrape_configs"]
        }
        assert scraped == {"sender": 9200, "http-receiver": 8101, "redis-receiver": 8102}
        assert "SENDER_METRICS_PORT=9200" in log_path.read_text()  # one line says which
        rules = requests.get(f"http://127.0.0.1:{port}/api/v1/rules", timeout=5).json()
        assert rules["data"]["groups"], "alerts.yml loaded beside the written config"
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_replicas_from_dotenv_share_the_cameras(tmp_path: Path) -> None:
    single = compose_services(tmp_path)
    for name, port in (("http-receiver", "8001"), ("redis-receiver", "8002")):
        (published,) = single[name]["ports"]
        assert (published["published"], published["target"]) == (port, int(port))
        assert not single[name]["environment"].get("FRAMEWIRE_ADVERTISE_URL")
    dotenv = {
        "FRAMEWIRE_ADVERTISE_URL": "auto",
        "FRAMEWIRE_HTTP_FANOUT": "dns",
        "FRAMEWIRE_HTTP_PEERS": "http-receiver",
        "HTTP_RECEIVER_PORTS": "8001-8002",
        "REDIS_RECEIVER_PORTS": "8002-8004",
    }
    services = compose_services(tmp_path, dotenv=dotenv)
    for name, ports, target in (
        ("http-receiver", "8001-8002", 8001),
        ("redis-receiver", "8002-8004", 8002),
    ):
        (published,) = services[name]["ports"]
        assert (published["published"], published["target"]) == (ports, target)
        environment = services[name]["environment"]
        # What the receiver makes of its environment passes its own checks.
        values = {
            f.name: environment[envvar(f.name)]
            for f in settings(ReceiverConfig)
            if envvar(f.name) in environment and f.name in ("advertise_url", "http_peers", "bind")
        }
        config = ReceiverConfig(transport=name.split("-")[0], **values)
        assert config.advertise_url == "auto"
    (camera,) = sender_cameras(services["sender"]["environment"])
    assert camera.http_fanout == "dns" and "http-receiver" in camera.http_url
