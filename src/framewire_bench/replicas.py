"""Redis receiver replicas sharing the cameras (`framewire bench --replicas 1,2,3`), measured.

A trial starts n `framewire redis-receiver` replicas, each with its
`--advertise-url` (so they find each other in Redis and each camera is
read and decoded by its owner alone: framewire.owners), and one
`framewire send --cameras-file` of C synthetic cameras into the same Redis
(capacity.start_sender), or with the producer `replay` (`--replicas-producer`)
`python -m framewire_bench.replay` (replay.py: the same synthetic frames,
encoded once at its start, XADDed at the cameras' rate: no encode per frame,
so the sender's encodes leave the machine's budget). It waits until every
replica sees n members, every camera has exactly one owner
(`framewire_camera_owned`) and each owner has decoded frames of its cameras,
warms up, then measures a window:

- decodes per frame sent: the decoded frames of every replica and camera
  (Δ `framewire_frames_received_total`, one per decode) over the frames
  the sender delivered to Redis (Δ `framewire_frames_sent_total{transport=
  "redis"}`); 1 when each frame is decoded once, n if every replica
  decoded every camera, below 1 when a reader skips frames (latest wins);
- the producer's CPU (`sender` or `replay`) in % of one core, and per camera;
- per replica: its process CPU (the gunicorn master and its worker) in % of
  one core, its decode time (Δ `framewire_decode_seconds_sum`) in % of the
  window, the cameras it owns and the frames it decoded of cameras it does
  not own;
- per camera, at its owner: fps decoded, and the exact capture-to-received
  latency quantiles of every frame captured in the window (the owner's
  `/latencies`), passed by the capacity rule (capacity.verdict: at least
  fps - 0.5, p95 at most 20 ms).

The sharing part runs one trial per n (unpinned). The pinned part
(`--replicas-pinned`) starts replica i under `taskset -c <core i mod cores>`
(the sender and Redis are not pinned) and searches (capacity.search) the
largest number of 30 fps cameras that pass for n = 1, then for n = 2 from
n = 1's answer; a failure while other processes used more than a quarter of
a core runs once more (capacity.noisy), as in the capacity mode.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import requests

from framewire_bench.capacity import (
    QUALITY,
    RETRIES,
    SETTLE_SECONDS,
    WARMUP_SECONDS,
    Camera,
    camera_ids,
    noisy,
    per_camera,
    search,
    start_sender,
    verdict,
    worst,
)
from framewire_bench.latency import window as latency_window
from framewire_bench.measure import cpu_percent, cpu_seconds, machine_percent, machine_seconds
from framewire_bench.readers import Samples, read_latencies, read_metrics, select
from framewire_bench.scenarios import child_env
from framewire_bench.stack import (
    RedisServer,
    Service,
    Services,
    StackError,
    free_port,
    wait_until,
)

REPLICA_CAMERAS = 4  # the sharing part's cameras, unless --cameras says
REPLICA_FPS = 10.0  # and their rate, unless --camera-fps says
PINNED = (1, 2)  # replicas of the pinned capacity part
PINNED_FPS = 30.0  # its cameras' rate: the capacity mode's 720p30 rule
MAX_REPLICAS = 16
PRODUCERS = ("sender", "replay")  # what feeds Redis: `framewire send`, or replay.py
RECEIVED = "framewire_frames_received_total"


def parse_replicas(text: str) -> list[int]:
    """`1,2,3` -> [1, 2, 3]: distinct counts of replicas from 1 to MAX_REPLICAS; ValueError."""
    found: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit() or not 1 <= int(part) <= MAX_REPLICAS:
            raise ValueError(f"{part!r}: each must be a number of replicas from 1 to 16")
        if int(part) not in found:
            found.append(int(part))
    return found


def usable_cores() -> list[int]:
    """The CPUs this process may run on (replica i is pinned to the (i mod len)-th)."""
    return sorted(os.sched_getaffinity(0))


def start_replicas(
    services: Services, count: int, redis: RedisServer, max_cameras: int, pin: bool
) -> list[tuple[Service, int | None]]:
    """`count` Redis receivers advertising their URLs; each with its core when pinned."""
    if pin and shutil.which("taskset") is None:
        raise StackError("taskset is not on PATH (Debian: util-linux)")
    cores = usable_cores()
    pinned = [cores[index % len(cores)] if pin else None for index in range(count)]
    args = [*redis.args, "--redis-mode", "stream", "--processor", "none"]
    args += ["--max-cameras", str(max_cameras)]
    prefixes = [["taskset", "-c", str(core)] if core is not None else [] for core in pinned]
    return list(zip(services.replicas(count, *args, prefixes=prefixes), pinned, strict=True))


def start_producer(
    services: Services,
    producer: str,
    count: int,
    camera: Camera,
    directory: Path,
    redis: RedisServer,
) -> Service:
    """`count` synthetic cameras into `redis`: `framewire send` (it encodes every frame), or the
    replay producer (frames encoded once at its start); either serves the sender's /metrics."""
    if producer == "sender":
        return start_sender(services, count, camera, directory, redis=redis)
    if producer != "replay":
        raise ValueError(f"producer must be one of {', '.join(PRODUCERS)}")
    port = free_port()
    command = [sys.executable, "-m", "framewire_bench.replay", *redis.args]
    command += ["--cameras", str(count), "--width", str(camera.width)]
    command += ["--height", str(camera.height), "--fps", f"{camera.fps:g}"]
    command += ["--quality", str(QUALITY), "--metrics-bind", f"127.0.0.1:{port}"]
    url = f"http://127.0.0.1:{port}"
    return services.start(f"replay-{port}", command, url=url).wait_ready("/metrics")


def owned(samples: Samples) -> list[str]:
    """The cameras a replica reports owning (`framewire_camera_owned` 1)."""
    found = select(samples, "framewire_camera_owned", transport="redis")
    return sorted(labels["camera"] for labels, value in found if value == 1)


def members(samples: Samples) -> float:
    found = select(samples, "framewire_replica_members", transport="redis")
    return found[0][1] if found else 0.0


def owners_of(views: Sequence[Samples], names: Sequence[str]) -> dict[str, list[int]]:
    """Per camera, the indexes of the replicas that report owning it."""
    claims = [set(owned(samples)) for samples in views]
    return {name: [i for i, mine in enumerate(claims) if name in mine] for name in names}


def settled(urls: Sequence[str], names: Sequence[str]) -> bool:
    """Every replica sees them all; each camera has one owner, which has decoded its frames."""
    views = [read_metrics(url) for url in urls]
    if any(members(samples) != len(urls) for samples in views):
        return False
    for name, found in owners_of(views, names).items():
        if len(found) != 1 or per_camera(views[found[0]], RECEIVED).get(name, 0) <= 0:
            return False
    return True


def measure_replicas(
    replicas: Sequence[tuple[Service, int | None]],
    sender: Service,
    extra_pids: Mapping[str, int],
    names: Sequence[str],
    camera: Camera,
    duration: float,
    producer: str = "sender",
) -> dict[str, Any]:
    """One window: decodes per frame sent, CPU and cameras per replica, each camera at its owner.

    `sender` is the producer (`framewire send` or replay.py); its CPU is named `producer`."""
    urls = [service.url for service, _ in replicas]
    pids = {f"replica-{i}": service.proc.pid for i, (service, _) in enumerate(replicas)}
    pids |= {producer: sender.proc.pid, **extra_pids}

    def snapshot() -> tuple[float, list[Samples], Samples, dict[str, Any], dict[str, float]]:
        started = time.monotonic()
        views = [read_metrics(url) for url in urls]
        sent = read_metrics(sender.url)
        used = {name: cpu_seconds(pid) for name, pid in pids.items()}
        used["bench"] = cpu_seconds(os.getpid(), children=False)  # our children are the services
        return (started + time.monotonic()) / 2, views, sent, used, machine_seconds()

    start_ns = time.time_ns()
    t0, views0, sender0, used0, machine0 = snapshot()
    time.sleep(duration)  # the measurement window
    t1, views1, sender1, used1, machine1 = snapshot()
    end_ns = time.time_ns()
    seconds = t1 - t0
    cpu = {name: cpu_percent(used0[name], used1[name], seconds) for name in used0}
    time.sleep(SETTLE_SECONDS)  # late frames of the window reach /latencies

    def change(before: Samples, after: Samples, name: str, **labels: str) -> dict[str, float]:
        old, new = per_camera(before, name, **labels), per_camera(after, name, **labels)
        return {c: new.get(c, 0.0) - old.get(c, 0.0) for c in names}

    sent = change(sender0, sender1, "framewire_frames_sent_total", transport="redis")
    captured = change(sender0, sender1, "framewire_frames_captured_total")
    decoded = [change(views0[i], views1[i], RECEIVED) for i in range(len(urls))]
    start_owners, owners = owners_of(views0, names), owners_of(views1, names)
    rows = []
    for index, (service, core) in enumerate(replicas):
        mine = owned(views1[index])
        decode = grown(views0[index], views1[index], "framewire_decode_seconds_sum")
        rows.append(
            {
                "url": service.url,
                "core": core,
                "members": members(views1[index]),
                "owned": mine,
                "decodes": sum(decoded[index].values()),
                "decodes_not_owned": sum(v for c, v in decoded[index].items() if c not in mine),
                "dropped": grown(views0[index], views1[index], "framewire_frames_dropped_total"),
                "cpu_percent": cpu[f"replica-{index}"],
                "decode_percent": 100.0 * decode / seconds if seconds > 0 else 0.0,
            }
        )
    cameras = {}
    for name in names:
        owner = owners[name][0] if len(owners[name]) == 1 else None
        exact: dict[str, Any] = {"p50": None, "p95": None, "p99": None, "frames": 0}
        if owner is not None:
            body = read_latencies(urls[owner], "received", name)
            exact = latency_window(body, start_ns, end_ns)
        fps = decoded[owner][name] / seconds if owner is not None and seconds > 0 else 0.0
        cameras[name] = {
            "owner": owner,
            "moved": owners[name] != start_owners[name],
            "fps": fps,
            "sent_fps": sent[name] / seconds if seconds > 0 else 0.0,
            "captured_fps": captured[name] / seconds if seconds > 0 else 0.0,
            "decoded_elsewhere": sum(d[name] for i, d in enumerate(decoded) if i != owner),
            "p50_ms": exact["p50"],
            "p95_ms": exact["p95"],
            "p99_ms": exact["p99"],
            "frames": exact["frames"],
            "passed": owner is not None and verdict(fps, exact["p95"], camera),
        }
    frames_sent, decodes = sum(sent.values()), sum(row["decodes"] for row in rows)
    dropped = sum(row["dropped"] for row in rows)
    per_replica = [row["cpu_percent"] for row in rows]
    return {
        "seconds": seconds,
        "frames_sent": frames_sent,
        "decodes": decodes,
        "decodes_per_frame_sent": decodes / frames_sent if frames_sent else None,
        "dropped": dropped,  # by the replicas' readers: a newer frame was there (latest wins)
        "cpu_per_replica_mean": sum(per_replica) / len(per_replica),
        "cpu_replicas_total": sum(per_replica),
        "replicas": rows,
        "cameras": cameras,
        "min_fps": min(c["fps"] for c in cameras.values()),
        "max_p95_ms": worst(c["p95_ms"] for c in cameras.values()),
        "passed": all(c["passed"] for c in cameras.values()),
        "producer": producer,
        "producer_cpu_per_camera": cpu[producer] / len(names) if names else None,
        "cpu_percent": cpu,
        "machine_cpu_percent": machine_percent(machine0, machine1, seconds, sum(cpu.values())),
    }


def grown(before: Samples, after: Samples, name: str) -> float:
    """How much the series called `name` grew in total between two scrapes."""
    return sum(v for _, v in select(after, name)) - sum(v for _, v in select(before, name))


def run_trial(
    replicas: int,
    count: int,
    camera: Camera,
    redis: RedisServer,
    duration: float,
    log_dir: Path,
    pin: bool = False,
    max_cameras: int = 16,
    producer: str = "sender",
) -> dict[str, Any]:
    """n replicas, `count` cameras, one window; its figures and `passed` (False on error)."""
    record: dict[str, Any] = {"replica_count": replicas, "camera_count": count, "pinned": pin}
    record["producer"] = producer
    record["passed"] = False
    log_dir.mkdir(parents=True, exist_ok=True)
    redis.client().flushall()
    services = Services(log_dir, env=child_env())
    names = camera_ids(count)
    try:
        with tempfile.TemporaryDirectory(prefix="framewire-cameras-") as directory:
            started = start_replicas(services, replicas, redis, max(count, max_cameras), pin)
            sender = start_producer(services, producer, count, camera, Path(directory), redis)
            urls = [service.url for service, _ in started]

            def ready() -> bool:
                for service in services.started:
                    service.check()
                return settled(urls, names)

            what = f"{replicas} replicas sharing {count} cameras, each decoded by its owner"
            wait_until(ready, 20 + 2 * count + 2 * replicas, interval=0.2, what=what)
            time.sleep(WARMUP_SECONDS)
            record.update(
                measure_replicas(started, sender, redis.pids, names, camera, duration, producer)
            )
            for service in services.started:
                service.check()
    except (StackError, requests.RequestException, OSError) as exc:
        record["error"] = str(exc) or type(exc).__name__
    finally:
        for service in reversed(services.started):
            with contextlib.suppress(StackError):  # killed after its timeout
                service.stop()
    return record


def run_sharing(
    counts: Sequence[int],
    cameras: int,
    camera: Camera,
    redis: RedisServer,
    duration: float,
    log_dir: Path,
    progress: Callable[[dict[str, Any]], None] = lambda _: None,
    producer: str = "sender",
) -> list[dict[str, Any]]:
    """One unpinned trial per number of replicas; CPU per replica against n = 1's, over 1/n."""
    results = []
    for n in counts:
        where = log_dir / f"sharing-{n}"
        trial = run_trial(n, cameras, camera, redis, duration, where, producer=producer)
        progress(trial)
        results.append(trial)
    alone = next((r for r in results if r["replica_count"] == 1 and "error" not in r), None)
    for trial in results:
        ideal = alone["cpu_replicas_total"] / trial["replica_count"] if alone else None
        mean = trial.get("cpu_per_replica_mean")
        trial["cpu_per_replica_over_ideal"] = mean / ideal if ideal and mean is not None else None
    return results


def run_pinned(
    camera: Camera,
    redis: RedisServer,
    duration: float,
    log_dir: Path,
    limit: int,
    progress: Callable[[dict[str, Any]], None] = lambda _: None,
    counts: Sequence[int] = PINNED,
    producer: str = "sender",
    start: int = 1,
) -> dict[str, Any]:
    """The largest number of cameras passing with n pinned replicas, for each n of `counts`
    (the first searched up from `start`, each next from the answer before)."""
    found: list[dict[str, Any]] = []
    prefix = "pinned" if producer == "sender" else f"pinned-{producer}"
    for n in counts:
        trials: list[dict[str, Any]] = []

        def trial(count: int, n: int = n, trials: list[dict[str, Any]] = trials) -> bool:
            for attempt in range(1 + RETRIES):
                name = f"{prefix}-{n}-{count:03d}{f'-{attempt}' if attempt else ''}"
                where = log_dir / name
                trials.append(
                    run_trial(n, count, camera, redis, duration, where, True, limit, producer)
                )
                progress(trials[-1])
                if trials[-1]["passed"] or not noisy(trials[-1]):
                    break
            return trials[-1]["passed"]

        largest, _ = search(trial, limit, start)
        found.append({"replicas": n, "largest": largest, "at_limit": largest == limit})
        found[-1]["trials"] = trials
        start = max(largest, 1)  # more replicas carry at least as many: search up from there
    one = next((f["largest"] for f in found if f["replicas"] == 1), None)
    two = next((f["largest"] for f in found if f["replicas"] == 2), None)
    ratio = two / one if one and two is not None else None
    return {
        "cores": usable_cores(),
        "fps": camera.fps,
        "producer": producer,
        "searches": found,
        "two_over_one": ratio,
    }
