"""Capacity: how many cameras one sender and its receivers carry on this machine.

A trial at N starts the receivers of one setup (`http` alone, `redis` alone,
or `both` from one sender; `redis-cluster`: Redis alone on a Redis Cluster of
3 primaries and 3 replicas on this machine), one `framewire send --cameras-file` with N
synthetic cameras (each 1280x720 at 30 fps by default, its own grab thread,
encoder and mailboxes), and one MJPEG viewer on the first camera at each
receiver. After a warm-up it measures a window: per camera and receiver the
fps received (the delta of `framewire_frames_received_total{camera}` over
the window) and the exact capture-to-received latency quantiles of every
frame captured in the window (the receivers' `/latencies`, stage
`received`, nearest rank, as the rest of the bench). The trial passes when
every camera at every receiver gets at least `fps - 0.5` (29.5 at 30 fps)
with p95 at most 20 ms.

The cameras run at spread phases (each at a random instant of its frame
period, as real cameras free-run) and, as the worst case, aligned (every
camera captures at the same instant): the sender's `--synthetic-phase`.

The search doubles N from 1 until a trial fails (or the cap, the receivers'
`--max-cameras`, is reached), then bisects between the last pass and the
first failure; the aligned search starts at the spread one's answer and
halves down from it when it fails there. It assumes that a machine carrying
N cameras carries fewer. A trial that fails while other processes used more
than a quarter of a core (`noisy`) runs once more, and the second run decides.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from framewire.config import SYNTHETIC_PHASES
from framewire_bench.cluster import RedisClusterServers
from framewire_bench.latency import window as latency_window
from framewire_bench.measure import cpu_percent, cpu_seconds, machine_percent, machine_seconds
from framewire_bench.readers import Samples, Viewer, read_latencies, read_metrics, select
from framewire_bench.scenarios import child_env
from framewire_bench.stack import (
    RedisServer,
    Service,
    Services,
    StackError,
    wait_until,
    write_cameras,
)

SETUPS = {
    "http": ("http",),
    "redis": ("redis",),
    "both": ("http", "redis"),
    "redis-cluster": ("redis",),  # the Redis receiver on a Redis Cluster of 3 primaries
}
DEFAULT_SETUPS = ("http", "redis", "both")
PHASES = SYNTHETIC_PHASES  # spread: as real cameras run; aligned: the worst case
DEFAULT_PHASES = ("spread", "aligned")
MAX_P95_MS = 20.0
FPS_MARGIN = 0.5  # a camera passes at `fps - FPS_MARGIN` received frames a second
WARMUP_SECONDS = 2.0
SETTLE_SECONDS = 0.5  # after the window, before /latencies is read: late frames arrive
QUALITY = 80
NOISE_PERCENT = 25.0  # other processes' CPU (% of one core) that makes a trial noisy
RETRIES = 1  # a noisy trial that fails runs again this many times; the last one counts


@dataclass(frozen=True)
class Camera:
    """What every synthetic camera of a trial sends."""

    width: int = 1280
    height: int = 720
    fps: float = 30.0

    @property
    def min_fps(self) -> float:
        return self.fps - FPS_MARGIN

    @property
    def resolution(self) -> str:
        return f"{self.width}x{self.height}"


def camera_ids(count: int) -> list[str]:
    return [f"cam{index}" for index in range(count)]


def cameras_file(path: Path, count: int, camera: Camera) -> Path:
    """Write the sender's cameras file: `count` synthetic cameras cam0..cam{count-1}."""
    entry = {"source": "synthetic", "width": camera.width, "height": camera.height}
    entry |= {"fps": camera.fps, "quality": QUALITY}
    return write_cameras(path, [{"id": name, **entry} for name in camera_ids(count)])


def verdict(fps: float, p95_ms: float | None, camera: Camera) -> bool:
    """Whether one camera at one receiver meets the thresholds."""
    return fps >= camera.min_fps and p95_ms is not None and p95_ms <= MAX_P95_MS


# --- the search ---------------------------------------------------------------------------------


def search(trial: Callable[[int], bool], limit: int, start: int = 1) -> tuple[int, list[int]]:
    """The largest N in 1..limit for which `trial(N)` passes, and the Ns tried in order.

    Doubles from `start` until a failure (or `limit`), then bisects between
    the last pass and the first failure; when `start` fails, halves down from
    it to the first pass instead. 0 when N = 1 fails; `limit` when it passes.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    tried: list[int] = []

    def passes(count: int) -> bool:
        tried.append(count)
        return trial(count)

    passed, failed, count = 0, None, min(max(start, 1), limit)
    while failed is None:  # up: double from `start` until a failure or the limit
        if passes(count):
            passed = count
            if count == limit:
                return passed, tried
            count = min(count * 2, limit)
        else:
            failed = count
    while not passed and failed > 1:  # `start` itself failed: halve down to a pass
        count = failed // 2
        if passes(count):
            passed = count
        else:
            failed = count
    while failed - passed > 1:
        middle = (passed + failed) // 2
        if passes(middle):
            passed = middle
        else:
            failed = middle
    return passed, tried


# --- one trial ----------------------------------------------------------------------------------


def start_stack(
    services: Services,
    setup: str,
    count: int,
    camera: Camera,
    redis: RedisServer | RedisClusterServers,
    directory: Path,
    phase: str = "spread",
) -> dict[str, Any]:
    """The receivers of `setup` and a sender of `count` cameras; return once all are received."""
    receivers = {}
    limit = ["--max-cameras", str(max(count, 16))]
    for transport in SETUPS[setup]:
        args = ["--processor", "none", *limit]
        if transport == "redis":
            args += [*redis.args, "--redis-mode", "stream"]
        receivers[transport] = services.receiver(transport, *args)
    http = receivers.get("http")
    redis_ = redis if "redis" in receivers else None
    sender = start_sender(services, count, camera, directory, phase, http, redis_)
    names = camera_ids(count)
    for transport, receiver in receivers.items():

        def all_received(url: str = receiver.url) -> bool:
            for service in services.started:
                service.check()
            seen = per_camera(read_metrics(url), "framewire_frames_received_total")
            return all(seen.get(name, 0) > 0 for name in names)

        wait_until(all_received, 20 + count, what=f"frames of {count} cameras at {transport}")
    extra = redis.pids if "redis" in receivers else {}
    return {"receivers": receivers, "sender": sender, "extra_pids": extra}


def start_sender(
    services: Services,
    count: int,
    camera: Camera,
    directory: Path,
    phase: str = "spread",
    http: Service | None = None,
    redis: RedisServer | RedisClusterServers | None = None,
) -> Service:
    """`framewire send` of `count` synthetic cameras to the HTTP receiver and/or Redis given."""
    args = ["--cameras-file", str(cameras_file(directory / "cameras.yaml", count, camera))]
    args += ["--http-url", f"{http.url}/frames" if http else ""]
    args += redis.args if redis else ["--redis-url", ""]
    args += ["--http-mode", "raw", "--redis-mode", "stream", "--synthetic-phase", phase]
    return services.sender(*args)


def per_camera(samples: Samples, name: str, **labels: str) -> dict[str, float]:
    """A counter (of the series with `labels`) summed by its `camera` label."""
    found: dict[str, float] = {}
    for series, value in select(samples, name, **labels):
        camera = series.get("camera", "")
        found[camera] = found.get(camera, 0.0) + value
    return found


def measure_window(
    stack: Mapping[str, Any], viewers: list[Viewer], count: int, camera: Camera, duration: float
) -> dict[str, Any]:
    """Per camera fps and exact latency quantiles at each receiver over one window.

    CPU is per process (`bench`: this one, reading the viewers) in % of one core.
    """
    receivers, sender = stack["receivers"], stack["sender"]
    pids = {f"{t}-receiver": r.proc.pid for t, r in receivers.items()}
    pids["sender"] = sender.proc.pid
    pids.update(stack["extra_pids"])
    urls = {t: r.url for t, r in receivers.items()}
    name = "framewire_frames_received_total"

    def snapshot() -> tuple[float, dict[str, dict[str, float]], dict[str, float], Any]:
        started = time.monotonic()
        counts = {t: per_camera(read_metrics(url), name) for t, url in urls.items()}
        counts["sender"] = per_camera(read_metrics(sender.url), "framewire_frames_captured_total")
        used = {n: cpu_seconds(pid) for n, pid in pids.items()}
        used["bench"] = cpu_seconds(os.getpid(), children=False)  # our children are the services
        return (started + time.monotonic()) / 2, counts, used, machine_seconds()

    start_ns = time.time_ns()
    t0, before, used0, machine0 = snapshot()
    parts0 = [viewer.parts for viewer in viewers]
    time.sleep(duration)
    parts1 = [viewer.parts for viewer in viewers]
    t1, after, used1, machine1 = snapshot()
    end_ns = time.time_ns()
    seconds = t1 - t0
    cpu = {n: cpu_percent(used0[n], used1[n], seconds) for n in used0}
    time.sleep(SETTLE_SECONDS)

    def fps(source: str, camera_id: str) -> float:
        frames = after[source].get(camera_id, 0.0) - before[source].get(camera_id, 0.0)
        return frames / seconds if seconds > 0 else 0.0

    paths = []
    for index, (transport, url) in enumerate(urls.items()):
        cameras = {}
        for camera_id in camera_ids(count):
            body = read_latencies(url, "received", camera_id)
            exact = latency_window(body, start_ns, end_ns)
            received = fps(transport, camera_id)
            cameras[camera_id] = {
                "fps": received,
                "captured_fps": fps("sender", camera_id),
                "p50_ms": exact["p50"],
                "p95_ms": exact["p95"],
                "p99_ms": exact["p99"],
                "frames": exact["frames"],
                "overflow": exact["overflow"],
                "passed": verdict(received, exact["p95"], camera),
            }
        served = latency_window(read_latencies(url, "served", "cam0"), start_ns, end_ns)
        paths.append(
            {
                "transport": transport,
                "passed": all(c["passed"] for c in cameras.values()),
                "min_fps": min(c["fps"] for c in cameras.values()),
                "max_p95_ms": worst(c["p95_ms"] for c in cameras.values()),
                "viewer_fps": (parts1[index] - parts0[index]) / seconds if seconds > 0 else 0.0,
                "viewed_served_ms": served,
                "cameras": cameras,
            }
        )
    return {
        "seconds": seconds,
        "paths": paths,
        "cpu_percent": cpu,
        "machine_cpu_percent": machine_percent(machine0, machine1, seconds, sum(cpu.values())),
    }


def worst(values: Any) -> float | None:
    """The largest p95, None when any camera has none (no frame in the window)."""
    values = list(values)
    return None if any(v is None for v in values) else max(values, default=None)


def run_trial(
    setup: str,
    count: int,
    camera: Camera,
    redis: RedisServer | RedisClusterServers,
    duration: float,
    log_dir: Path,
    warmup: float = WARMUP_SECONDS,
    phase: str = "spread",
) -> dict[str, Any]:
    """One trial: `count` cameras through `setup`; its figures and `passed` (False on error)."""
    record: dict[str, Any] = {"setup": setup, "phase": phase, "cameras": count, "passed": False}
    log_dir.mkdir(parents=True, exist_ok=True)
    redis.client().flushall()
    services = Services(log_dir, env=child_env())
    viewers: list[Viewer] = []
    try:
        with tempfile.TemporaryDirectory(prefix="framewire-cameras-") as directory:
            stack = start_stack(services, setup, count, camera, redis, Path(directory), phase)
            for receiver in stack["receivers"].values():
                viewer = Viewer(f"{receiver.url}/stream/cam0.mjpg")
                viewer.start()
                viewers.append(viewer)
                wait_until(lambda v=viewer: v.bytes > 0, what="the viewer of cam0")
            time.sleep(warmup)
            record.update(measure_window(stack, viewers, count, camera, duration))
            for service in services.started:
                service.check()
            record["passed"] = all(path["passed"] for path in record["paths"])
    except (StackError, requests.RequestException, OSError) as exc:
        record["error"] = str(exc) or type(exc).__name__
    finally:
        for viewer in viewers:
            viewer.close()
        for service in reversed(services.started):
            with contextlib.suppress(StackError):  # killed after its timeout
                service.stop()
    return record


def noisy(trial: Mapping[str, Any]) -> bool:
    """Whether other processes used more than NOISE_PERCENT of a core during the trial."""
    return trial.get("machine_cpu_percent", {}).get("other", 0.0) > NOISE_PERCENT


def run_setup(
    setup: str,
    cameras: int | None,
    camera: Camera,
    redis: RedisServer | RedisClusterServers,
    duration: float,
    log_dir: Path,
    limit: int,
    progress: Callable[[dict[str, Any]], None] = lambda _: None,
    phase: str = "spread",
    start: int = 1,
) -> dict[str, Any]:
    """One trial at `cameras`, or (None) the search up to `limit` from `start`; every trial."""
    trials: list[dict[str, Any]] = []

    def trial(count: int) -> bool:
        for attempt in range(1 + RETRIES):
            name = f"{setup}-{phase}-{count:03d}{f'-{attempt}' if attempt else ''}"
            trials.append(
                run_trial(setup, count, camera, redis, duration, log_dir / name, phase=phase)
            )
            progress(trials[-1])
            if trials[-1]["passed"] or not noisy(trials[-1]):
                break
        return trials[-1]["passed"]

    found: dict[str, Any] = {"setup": setup, "phase": phase}
    if cameras is not None:
        return {**found, "cameras": cameras, "passed": trial(cameras), "trials": trials}
    largest, _ = search(trial, limit, start)
    return {**found, "largest": largest, "at_limit": largest == limit, "trials": trials}
