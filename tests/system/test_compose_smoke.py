"""`docker compose up` smoke test: the real compose.yaml and image, in a real Docker engine.

Uses the engine in DOCKER_HOST or on /var/run/docker.sock if one answers; otherwise starts
its own dockerd (tests/system/docker/dockerd.sh: host networking only, no bridge, no
iptables) and stops it by PID at the end. No registry can be reached, so the base images are
local stand-ins (tests/system/docker/stand-ins.sh) and tests/system/docker/compose.ci.yaml
puts every service on the host's network, on free 127.0.0.1 ports. Skipped when no engine
can be had, except in CI (CI set), where that is a failure: `bash scripts/install-docker.sh`
installs what it needs.
Rootfs tars, images and build cache are kept in .cache/docker, so reruns are fast.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import requests

from conftest import free_ports, metric_value, wait_until
from helpers import write_clip
from test_browser import browser, open_page, wait_state  # noqa: F401 - the Chromium fixture

if TYPE_CHECKING:
    from playwright.sync_api import Browser

REPO = Path(__file__).resolve().parents[2]
DOCKER_DIR = REPO / "tests" / "system" / "docker"
CACHE = REPO / ".cache" / "docker"
OVERRIDE = DOCKER_DIR / "compose.ci.yaml"
IMAGE = "framewire-ci/framewire:smoke"
FRAMEWIRE_SERVICES = ("sender", "http-receiver", "redis-receiver")
SERVICES = {"redis", "prometheus", *FRAMEWIRE_SERVICES}
# Each framewire service must stop on SIGTERM well inside its 5 s stop_grace_period.
MAX_STOP_SECONDS = 3.0
STALE_AFTER = "7.5"  # not the default (2 s), and set only in the env file

pytestmark = pytest.mark.docker


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def unavailable(reason: str) -> None:
    """Skip, but never in CI, where the smoke test must run."""
    if in_ci():
        pytest.fail(
            f"CI is set, so the compose smoke test must run, but: {reason}. "
            "Run `bash scripts/install-docker.sh` first (as root).",
            pytrace=False,
        )
    pytest.skip(f"compose smoke test: {reason}")


def log(message: str) -> None:
    print(f"[compose smoke] {message}", flush=True)


def run(
    args: list[str], env: dict[str, str], timeout: float, what: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run a command; on failure, fail the test with its output."""
    try:
        result = subprocess.run(
            args, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as exc:
        output = f"{exc.stdout or ''}{exc.stderr or ''}"
        raise AssertionError(f"{what} took over {timeout} s:\n{output[-6000:]}") from None
    if check and result.returncode != 0:
        raise AssertionError(
            f"{what} failed ({result.returncode}): {' '.join(args)}\n"
            f"{(result.stdout + result.stderr)[-6000:]}"
        )
    return result


def docker_answers(env: dict[str, str]) -> bool:
    try:
        result = subprocess.run(
            ["docker", "version", "--format", "{{.Server.Version}}"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except subprocess.TimeoutExpired:
        return False
    return result.returncode == 0 and bool(result.stdout.strip())


@dataclass
class Engine:
    env: dict[str, str]  # os.environ with DOCKER_HOST set to the engine


@contextlib.contextmanager
def cache_lock() -> Iterator[None]:
    """One smoke test at a time uses .cache/docker (its data root, tars and images)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@pytest.fixture
def docker_engine() -> Iterator[Engine]:
    if shutil.which("docker") is None:
        unavailable("the docker CLI is not installed")
    base = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("COMPOSE_") and key != "DOCKER_CONTEXT"
    }
    base["COMPOSE_BAKE"] = "false"  # no buildx here: compose's own BuildKit client
    if run(["docker", "compose", "version"], base, 30, "docker compose", check=False).returncode:
        unavailable("the Docker Compose v2 plugin (`docker compose`) is not installed")

    with cache_lock():
        candidates = []
        if os.environ.get("DOCKER_HOST"):
            candidates.append(os.environ["DOCKER_HOST"])
        if Path("/var/run/docker.sock").exists():
            candidates.append("unix:///var/run/docker.sock")
        for host in candidates:
            env = {**base, "DOCKER_HOST": host}
            if docker_answers(env):
                log(f"using the Docker engine at {host}")
                yield Engine(env)
                return

        missing = [tool for tool in ("dockerd", "debootstrap") if shutil.which(tool) is None]
        if missing:
            unavailable(f"no Docker engine answers, and not installed: {', '.join(missing)}")
        if os.geteuid() != 0:
            unavailable("no Docker engine answers and starting one needs root")

        script = str(DOCKER_DIR / "dockerd.sh")
        record = CACHE / "dockerd.state"
        if record.exists():  # a daemon a killed run of this test left behind
            stale = record.read_text().strip()
            if re.fullmatch(r"/tmp/fwd\.[\w-]+", stale) and Path(stale).exists():
                log(f"stopping the dockerd a previous run left in {stale}")
                run(["bash", script, "stop", stale], base, 120, "stopping a stale dockerd")
            record.unlink()
        state = tempfile.mkdtemp(prefix="fwd.", dir="/tmp")  # short: it holds unix sockets
        record.write_text(state)
        started = time.monotonic()
        try:
            result = run(
                ["bash", script, "start", state, str(CACHE / "data-root")],
                base,
                120,
                "starting dockerd",
                check=False,
            )
            assert result.returncode == 0, (
                f"dockerd did not start (if its kept data root is broken: rm -rf {CACHE}):\n"
                f"{result.stderr[-6000:]}"
            )
            host = result.stdout.strip()
            log(f"started dockerd at {host} in {time.monotonic() - started:.1f} s")
            env = {**base, "DOCKER_HOST": host}
            # Containers and volumes a killed run left in the kept data root (a
            # restart policy would start them again): everything in this engine is ours.
            left = run(["docker", "ps", "-aq"], env, 60, "docker ps").stdout.split()
            if left:
                log(f"removing {len(left)} containers a previous run left")
                run(["docker", "rm", "-f", "-v", *left], env, 120, "docker rm")
            run(["docker", "volume", "prune", "-f"], env, 120, "docker volume prune")
            yield Engine(env)
        finally:
            env = {**base, "DOCKER_HOST": f"unix://{state}/docker.sock"}
            # Builds of the same tag leave untagged images; the build cache stays.
            run(["docker", "image", "prune", "-f"], env, 120, "image prune", check=False)
            run(["bash", script, "stop", state], base, 120, "stopping dockerd")
            record.unlink(missing_ok=True)
            log("stopped dockerd")


def stand_in_images(env: dict[str, str]) -> dict[str, str]:
    started = time.monotonic()
    args = ["bash", str(DOCKER_DIR / "stand-ins.sh"), str(CACHE / "stand-ins")]
    if shutil.which("debootstrap") is None or os.geteuid() != 0:
        args.insert(2, "--no-debootstrap")
    result = run(args, env, 1200, "making the stand-in base images", check=False)
    if result.returncode == 3:
        unavailable("the stand-in base images need debootstrap, run as root")
    assert result.returncode == 0, f"stand-ins.sh failed:\n{result.stderr[-6000:]}"
    for line in result.stderr.splitlines():
        log(line)
    out = result.stdout
    images = dict(line.split("=", 1) for line in out.split() if "=" in line)
    assert set(images) == {"python", "redis", "prometheus"}, out
    log(f"stand-in images ready in {time.monotonic() - started:.1f} s: {images}")
    return images


def prometheus_config(ports: dict[str, int]) -> tuple[Path, set[str]]:
    """deploy/prometheus's jobs with 127.0.0.1 targets, beside copies of alerts.yml and start.sh."""
    job_ports = {
        "sender": ports["SENDER_METRICS_PORT"],
        "http-receiver": ports["HTTP_RECEIVER_PORT"],
        "redis-receiver": ports["REDIS_RECEIVER_PORT"],
        "prometheus": ports["PROMETHEUS_PORT"],
    }
    deploy = REPO / "deploy" / "prometheus"
    jobs = list(FRAMEWIRE_SERVICES)
    if (deploy / "prometheus.yml").exists():
        text = (deploy / "prometheus.yml").read_text()
        jobs = re.findall(r"job_name:\s*['\"]?([\w.-]+)", text)
        unknown = set(jobs) - set(job_ports)
        assert not unknown, (
            f"deploy/prometheus/prometheus.yml has jobs the test can't place: {unknown}"
        )
        missing = set(FRAMEWIRE_SERVICES) - set(jobs)
        assert not missing, f"deploy/prometheus/prometheus.yml does not scrape {missing}"
    # Readable by the container's user (nobody): not under pytest's private tmp_path.
    directory = Path(tempfile.mkdtemp(prefix="framewire-smoke-prometheus-"))
    directory.chmod(0o755)
    lines = ["global:", "  scrape_interval: 1s", "  evaluation_interval: 1s"]
    if (deploy / "alerts.yml").exists():
        shutil.copy(deploy / "alerts.yml", directory / "alerts.yml")
        (directory / "alerts.yml").chmod(0o644)
        lines.append("rule_files: [alerts.yml]")
    lines.append("scrape_configs:")
    for job in jobs:
        lines += [
            f"  - job_name: {job}",
            "    static_configs:",
            f"      - targets: ['127.0.0.1:{job_ports[job]}']",
        ]
    (directory / "prometheus.yml").write_text("\n".join(lines) + "\n")
    (directory / "prometheus.yml").chmod(0o644)
    # compose.yaml's entrypoint: it writes the config it runs on (here, with no port to set).
    shutil.copy(deploy / "start.sh", directory / "start.sh")
    (directory / "start.sh").chmod(0o644)
    return directory, set(jobs)


def compose_ps(compose: list[str], env: dict[str, str]) -> dict[str, dict]:
    out = run([*compose, "ps", "-a", "--format", "json"], env, 60, "docker compose ps").stdout
    out = out.strip()
    if out.startswith("["):
        rows = json.loads(out)
    else:
        rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    return {row["Service"]: row for row in rows}


CAMERAS = ("cam0", "clip")  # the smoke run's cameras file: the test pattern and a video file


def smoke_cameras() -> Path:
    """A folder with a cameras file of the test pattern and a video file, readable by the
    container's user (nobody): not under pytest's private tmp_path."""
    directory = Path(tempfile.mkdtemp(prefix="framewire-smoke-cameras-"))
    directory.chmod(0o755)
    write_clip(directory / "clip.avi", frames=30, fps=10).chmod(0o644)
    (directory / "smoke.yaml").write_text(
        "cameras:\n"
        "  - id: cam0\n"
        "    source: synthetic\n"
        "  - id: clip\n"
        "    source: /etc/framewire/cameras/clip.avi\n"
    )
    (directory / "smoke.yaml").chmod(0o644)
    return directory


def snapshot_seq(port: int, camera: str = "") -> int | None:
    """The sequence number of the newest served frame of `camera` (the bare route: the first)."""
    route = f"/snapshot/{camera}.jpg" if camera else "/snapshot.jpg"
    response = requests.get(f"http://127.0.0.1:{port}{route}", timeout=5)
    if response.status_code != 200:
        return None
    assert response.headers["Content-Type"] == "image/jpeg"
    return int(response.headers["X-Framewire-Seq"])


def targets_up(prometheus: str, jobs: set[str]) -> bool:
    targets = requests.get(f"{prometheus}/api/v1/targets", timeout=5).json()["data"]
    health = {t["labels"]["job"]: t["health"] for t in targets["activeTargets"]}
    return set(health) == jobs and all(h == "up" for h in health.values())


def stop_events(env: dict[str, str], project: str, since: float, until: float) -> list[dict]:
    out = run(
        [
            "docker",
            "events",
            "--since",
            f"{since:.3f}",
            "--until",
            f"{until:.3f}",
            "--filter",
            "type=container",
            "--filter",
            f"label=com.docker.compose.project={project}",
            "--format",
            "{{json .}}",
        ],
        env,
        60,
        "docker events",
    ).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


@pytest.mark.timeout(1800)
def test_compose_up_smoke(docker_engine: Engine, browser: Browser) -> None:  # noqa: F811
    began = time.monotonic()
    images = stand_in_images(docker_engine.env)

    names = (
        "REDIS_PORT",
        "HTTP_RECEIVER_PORT",
        "REDIS_RECEIVER_PORT",
        "SENDER_METRICS_PORT",
        "PROMETHEUS_PORT",
    )
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    prometheus_dir, jobs = prometheus_config(ports)
    # The settings as an env file: compose interpolates from it (so a developer's .env does not
    # leak in) and passes all of it to the services, as it does with .env.
    env_file = prometheus_dir.parent / f"{prometheus_dir.name}.env"
    cameras_dir = smoke_cameras()
    settings = {
        # A real camera beside the test pattern: a video file, declared in a cameras file of
        # the folder CAMERAS_DIR mounts, as the README shows for your own cameras.
        "CAMERAS_DIR": str(cameras_dir),
        "FRAMEWIRE_CAMERAS_FILE": "/etc/framewire/cameras/smoke.yaml",
        "FRAMEWIRE_ENV_FILE": str(env_file),
        # An option compose.yaml does not name: it must reach the receivers all the same.
        "FRAMEWIRE_STALE_AFTER": STALE_AFTER,
        "PYTHON_IMAGE": images["python"],
        "FRAMEWIRE_CI_IMAGE": IMAGE,
        "FRAMEWIRE_CI_REDIS_IMAGE": images["redis"],
        "FRAMEWIRE_CI_PROMETHEUS_IMAGE": images["prometheus"],
        "FRAMEWIRE_CI_PROMETHEUS_CONFIG": str(prometheus_dir),
        "REDIS_HOST": "127.0.0.1",
        "HTTP_RECEIVER_HOST": "127.0.0.1",
        # Secrets of this run: they must reach no image layer and no log line.
        "REDIS_PASSWORD": f"smoke-redis-{uuid.uuid4().hex}",
        "FRAMEWIRE_TOKEN": f"smoke-token-{uuid.uuid4().hex}",
        **{name: str(port) for name, port in ports.items()},
    }
    env_file.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
    env = {**docker_engine.env, **settings}
    project = f"framewire-smoke-{uuid.uuid4().hex[:8]}"
    compose = [
        "docker",
        "compose",
        "-p",
        project,
        "--env-file",
        str(env_file),
        "-f",
        str(REPO / "compose.yaml"),
        "-f",
        str(OVERRIDE),
    ]
    log(f"project {project}, ports {ports}")

    up = False
    try:
        started = time.monotonic()
        run([*compose, "build"], env, 1200, "docker compose build")
        size = int(
            run(
                ["docker", "image", "inspect", "--format", "{{.Size}}", IMAGE],
                env,
                60,
                "docker image inspect",
            ).stdout
        )
        took = time.monotonic() - started
        log(f"built {IMAGE} in {took:.1f} s: {size} bytes ({size / 1e6:.0f} MB)")
        secrets = (settings["REDIS_PASSWORD"], settings["FRAMEWIRE_TOKEN"], "framewire-change-me")
        image = run(["docker", "image", "inspect", IMAGE], env, 60, "image inspect").stdout
        history = run(
            ["docker", "history", "--no-trunc", "--format", "{{.CreatedBy}}", IMAGE],
            env,
            60,
            "docker history",
        ).stdout
        assert json.loads(image)[0]["Config"]["User"] not in ("", "0", "root")
        for secret in secrets:
            assert secret not in image and secret not in history, "a secret is in the image"

        started = time.monotonic()
        up = True
        run(
            [*compose, "up", "--detach", "--wait", "--wait-timeout", "300", "--pull", "never"],
            env,
            400,
            "docker compose up --wait",
        )
        log(f"up and healthy in {time.monotonic() - started:.1f} s")

        services = set(run([*compose, "config", "--services"], env, 60, "config").stdout.split())
        assert services == SERVICES, f"services: {services} (grafana must be left out)"
        ps = compose_ps(compose, env)
        assert set(ps) == SERVICES, ps
        for name, row in ps.items():
            assert row["State"] == "running", f"{name}: {row}"
            assert row["Health"] == "healthy", f"{name}: {row}"
        networks = run(
            [
                "docker",
                "network",
                "ls",
                "-q",
                "--filter",
                f"label=com.docker.compose.project={project}",
            ],
            env,
            60,
            "docker network ls",
        ).stdout.split()
        assert networks == [], "host networking only: compose must create no network"

        # Frames of both cameras (the test pattern and the video file) reach both receivers,
        # and keep coming.
        for name, camera in itertools.product(
            ("HTTP_RECEIVER_PORT", "REDIS_RECEIVER_PORT"), CAMERAS
        ):
            port = ports[name]
            first = wait_until(
                lambda p=port, c=camera: (seq := snapshot_seq(p, c)) is not None and [seq],
                60,
                0.2,
                f"a snapshot of {camera} on :{port}",
            )[0]
            wait_until(
                lambda p=port, c=camera, f=first: (
                    (seq := snapshot_seq(p, c)) is not None and seq > f
                ),
                30,
                0.1,
                f"the snapshot of {camera}'s X-Framewire-Seq on :{port} to advance past {first}",
            )
            log(f"frames of {camera} flow to :{port} (seq {first} and on)")

        # A setting that is only in the env file took effect at both receivers.
        for name in ("HTTP_RECEIVER_PORT", "REDIS_RECEIVER_PORT"):
            ready = requests.get(f"http://127.0.0.1:{ports[name]}/readyz", timeout=5).json()
            assert ready["stale_after"] == float(STALE_AFTER), ready

        # The page at the HTTP receiver shows both transports live, with no setting.
        page = open_page(browser, f"http://127.0.0.1:{ports['HTTP_RECEIVER_PORT']}/")
        for side in ("own", "peer"):
            wait_state(page, side, "live")
        page.close()
        log("the page shows HTTP and Redis live side by side")

        # Every framewire service answers /metrics, and counts the frames.
        def metrics(port: int) -> str:
            response = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
            assert response.status_code == 200, response.status_code
            return response.text

        sender = metrics(ports["SENDER_METRICS_PORT"])
        for transport in ("http", "redis"):
            assert metric_value(sender, "framewire_frames_sent_total", transport=transport) > 0
        for name, transport in (("HTTP_RECEIVER_PORT", "http"), ("REDIS_RECEIVER_PORT", "redis")):
            text = metrics(ports[name])
            received = metric_value(text, "framewire_frames_received_total", transport=transport)
            assert received > 0, f"{transport} receiver counted no frames"

        # Prometheus scrapes every framewire service, and loaded the alert rules.
        prometheus = f"http://127.0.0.1:{ports['PROMETHEUS_PORT']}"
        wait_until(
            lambda: targets_up(prometheus, jobs),
            60,
            0.5,
            f"Prometheus to report every target up ({', '.join(sorted(jobs))})",
        )
        if (prometheus_dir / "alerts.yml").exists():
            groups = requests.get(f"{prometheus}/api/v1/rules", timeout=5).json()["data"]["groups"]
            assert any(g["name"] == "framewire" for g in groups), groups
        log("Prometheus reports every framewire target up")

        # Hardened containers, and no secret in any log.
        for name in FRAMEWIRE_SERVICES:
            container = json.loads(
                run(["docker", "inspect", ps[name]["ID"]], env, 60, "docker inspect").stdout
            )[0]
            assert container["HostConfig"]["ReadonlyRootfs"] is True, name
            assert container["HostConfig"]["CapDrop"] == ["ALL"], name
            assert container["Config"]["User"] not in ("", "0", "root"), name
        logs = run([*compose, "logs", "--no-color"], env, 60, "docker compose logs")
        for secret in secrets:
            assert secret not in logs.stdout + logs.stderr, "a secret reached the logs"

        # Stop: every service on SIGTERM, none killed, framewire services at once.
        since = time.time()
        started = time.monotonic()
        run([*compose, "down", "--volumes"], env, 300, "docker compose down")
        down_seconds = time.monotonic() - started
        up = False
        events = stop_events(docker_engine.env, project, since, time.time() + 0.5)
        log(f"docker compose down --volumes took {down_seconds:.2f} s")
        stops: dict[str, tuple[float, str]] = {}
        for service in SERVICES:
            mine = [
                e
                for e in events
                if e["Actor"]["Attributes"].get("com.docker.compose.service") == service
            ]
            kills = [e for e in mine if e["Action"] == "kill"]
            dies = [e for e in mine if e["Action"] == "die"]
            assert kills and dies, f"{service}: no kill/die events: {mine}"
            signals = [e["Actor"]["Attributes"].get("signal") for e in kills]
            assert all(s in ("15", "SIGTERM", "TERM") for s in signals), (
                f"{service} was sent {signals}: it outlived its stop_grace_period"
            )
            seconds = (dies[0]["timeNano"] - kills[0]["timeNano"]) / 1e9
            code = dies[0]["Actor"]["Attributes"].get("exitCode")
            stops[service] = (seconds, code)
            log(f"{service}: exit code {code} {seconds:.2f} s after SIGTERM")
        for service in FRAMEWIRE_SERVICES:
            seconds, code = stops[service]
            assert code == "0", f"{service} exited with {code} on SIGTERM"
            assert seconds < MAX_STOP_SECONDS, f"{service} took {seconds:.2f} s to stop"
        assert down_seconds < 10, f"docker compose down took {down_seconds:.1f} s"
        assert compose_ps(compose, env) == {}
        volumes = run(
            [
                "docker",
                "volume",
                "ls",
                "-q",
                "--filter",
                f"label=com.docker.compose.project={project}",
            ],
            env,
            60,
            "docker volume ls",
        ).stdout.split()
        assert volumes == [], f"volumes left after down --volumes: {volumes}"
    except BaseException:
        if up:
            logs = run(
                [*compose, "logs", "--no-color", "--tail", "80"], env, 60, "logs", check=False
            )
            log(f"docker compose logs:\n{logs.stdout}{logs.stderr}")
        raise
    finally:
        if up:
            run([*compose, "down", "--volumes", "--timeout", "5"], env, 300, "down", check=False)
        shutil.rmtree(prometheus_dir, ignore_errors=True)
        shutil.rmtree(cameras_dir, ignore_errors=True)
        env_file.unlink(missing_ok=True)
        log(f"smoke test took {time.monotonic() - began:.1f} s in all")
