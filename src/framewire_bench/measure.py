"""What the bench measures: metric deltas, exact latency quantiles, CPU, the codec floor.

Every `/metrics` is scraped before and after a window; from the deltas come
received fps, bytes per frame, drops and histogram quantiles (interpolated
inside buckets like PromQL's `histogram_quantile`, kept for comparison). The
headline latency quantiles are exact, from every frame's own latency in the
receivers' `/latencies` (`latency.py`). The viewers count the frames written
to them. CPU per process and for the whole machine (including what the
hypervisor stole) comes from psutil over the same window, also per frame
delivered to a viewer, against the in-process codec floor (`codecs.py`).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import psutil
import requests

from framewire_bench.latency import window as latency_window
from framewire_bench.readers import Samples, read_latencies, read_metrics, select, total
from framewire_bench.scenarios import CAMERA, Running, Scenario, start_services
from framewire_bench.stack import RedisServer, StackError

WARMUP_SECONDS = 1.0


def delta(before: Samples, after: Samples) -> Samples:
    """`after - before` per series (a series new in `after` counts from 0)."""
    return {key: value - before.get(key, 0.0) for key, value in after.items()}


def buckets(samples: Samples, name: str, **labels: str) -> list[tuple[float, float]]:
    """Cumulative (upper bound, count) of histogram `name`, summed over matching series."""
    counts: dict[float, float] = {}
    for sample_labels, value in select(samples, f"{name}_bucket", **labels):
        bound = float(sample_labels["le"])  # "+Inf" parses to inf
        counts[bound] = counts.get(bound, 0.0) + value
    return sorted(counts.items())


def histogram_quantile(q: float, cumulative: list[tuple[float, float]]) -> float | None:
    """The q-quantile of cumulative buckets, interpolated linearly inside a bucket.

    Follows Prometheus' `histogram_quantile`: the first bucket starts at 0, a
    rank in the +Inf bucket returns the highest finite bound, and counts are
    made monotonic first. None when there are no observations or no +Inf bucket.
    """
    if not 0 <= q <= 1:
        raise ValueError(f"quantile {q} is outside [0, 1]")
    if len(cumulative) < 2 or not math.isinf(cumulative[-1][0]):
        return None
    bounds = [bound for bound, _ in cumulative]
    counts, running = [], 0.0
    for _, count in cumulative:
        running = max(running, count)
        counts.append(running)
    observations = counts[-1]
    if observations <= 0:
        return None
    rank = q * observations
    index = next(i for i, count in enumerate(counts) if count >= rank and count > 0)
    if index == len(counts) - 1:
        return bounds[-2]
    lower = bounds[index - 1] if index > 0 else min(0.0, bounds[0])
    below = counts[index - 1] if index > 0 else 0.0
    return lower + (bounds[index] - lower) * (rank - below) / (counts[index] - below)


def latency_ms(samples: Samples, transport: str, stage: str) -> dict[str, float | None]:
    """p50/p95/p99 in milliseconds of framewire_frame_latency_seconds for one stage."""
    cumulative = buckets(
        samples, "framewire_frame_latency_seconds", transport=transport, stage=stage
    )
    result: dict[str, float | None] = {}
    for q in (0.5, 0.95, 0.99):
        value = histogram_quantile(q, cumulative)
        result[f"p{round(q * 100)}"] = None if value is None else value * 1000
    return result


# --- CPU ---------------------------------------------------------------------------------------


def cpu_seconds(pid: int, children: bool = True) -> dict[int, float]:
    """CPU seconds (user + system) used so far by `pid` and its direct children, per process."""
    try:
        root = psutil.Process(pid)
        members = [root, *(root.children() if children else [])]
    except psutil.Error:
        return {}
    used = {}
    for member in members:
        try:
            times = member.cpu_times()
        except psutil.Error:
            continue  # exited meanwhile
        used[member.pid] = times.user + times.system
    return used


def cpu_percent(before: Mapping[int, float], after: Mapping[int, float], seconds: float) -> float:
    """CPU used between two `cpu_seconds` readings, in % of one core (new processes from 0)."""
    used = sum(value - before.get(pid, 0.0) for pid, value in after.items())
    return 100.0 * used / seconds if seconds > 0 else 0.0


def machine_seconds() -> dict[str, float]:
    """Busy and stolen CPU seconds of all CPUs together so far."""
    times = psutil.cpu_times()
    busy = times.user + times.nice + times.system + times.irq + times.softirq
    return {"busy": busy, "steal": getattr(times, "steal", 0.0)}


def machine_percent(
    before: Mapping[str, float], after: Mapping[str, float], seconds: float, ours: float
) -> dict[str, float]:
    """The whole machine's busy and stolen CPU, and what processes not ours used (% of a core)."""
    use = {key: 100.0 * (after[key] - before[key]) / seconds for key in ("busy", "steal")}
    return {**use, "other": max(0.0, use["busy"] - ours)}


def cpu_ms_per_frame(
    cpu: Mapping[str, float], seconds: float, frames: float
) -> dict[str, float] | None:
    """CPU ms per frame of each process (from % of one core over `seconds`) and `total`."""
    if frames <= 0:
        return None
    per_frame = {name: percent / 100 * seconds * 1000 / frames for name, percent in cpu.items()}
    return {**per_frame, "total": sum(per_frame.values())}


def over_floor(
    result: Mapping[str, Any], codec: Mapping[str, Mapping[str, float]], floor_key: str = "floor_ms"
) -> float | None:
    """Total CPU per viewed frame of a scenario as a multiple of its resolution's codec floor.

    `floor_key` `own_floor_ms`: over framewire's own floor (the splice for the viewer's encode).
    """
    per_frame = result.get("cpu_ms_per_frame")
    floor = codec.get(result["resolution"], {}).get(floor_key)
    if not per_frame or not floor:
        return None
    return per_frame["total"] / floor


# --- one scenario ------------------------------------------------------------------------------


def measure(running: Running, duration: float, extra_pids: Mapping[str, int]) -> dict[str, Any]:
    """Scrape and read CPU before and after a window of `duration` seconds; summarize."""
    pids = {f"{t}-receiver": s.proc.pid for t, s in running.receivers.items()}
    if running.sender:
        pids["sender"] = running.sender.proc.pid
    pids.update(extra_pids)
    urls = {f"{t}-receiver": s.url for t, s in running.receivers.items()}
    if running.sender:
        urls["sender"] = running.sender.url
    me = os.getpid()

    # The article's receivers have no MJPEG viewer (its display loop stands for one).
    viewers = dict(zip(running.receivers, running.viewers, strict=False))

    def snapshot() -> tuple[float, dict[str, Samples], dict[str, dict[int, float]], dict]:
        started = time.monotonic()
        samples = {name: read_metrics(url) for name, url in urls.items()}
        used = {name: cpu_seconds(pid) for name, pid in pids.items()}
        used["bench"] = cpu_seconds(me, children=False)  # our children are the services
        return (started + time.monotonic()) / 2, samples, used, machine_seconds()

    start_ns = time.time_ns()
    t0, before, used0, machine0 = snapshot()
    parts0 = {transport: viewer.parts for transport, viewer in viewers.items()}
    time.sleep(duration)
    running.check()
    parts1 = {transport: viewer.parts for transport, viewer in viewers.items()}
    t1, after, used1, machine1 = snapshot()
    end_ns = time.time_ns()
    seconds = t1 - t0
    changes = {name: delta(before[name], after[name]) for name in urls}
    cpu = {name: cpu_percent(used0[name], used1[name], seconds) for name in used0}
    result = summarize(changes, seconds, cpu)
    result["machine_cpu_percent"] = machine_percent(machine0, machine1, seconds, sum(cpu.values()))
    viewed = 0.0
    for path in result["paths"]:
        transport = path["transport"]
        if transport in viewers:
            path["viewer_frames"] = parts1[transport] - parts0[transport]
        else:  # the article's design: the frames its display loop took
            path["viewer_frames"] = total(
                changes[f"{transport}-receiver"],
                "framewire_frame_latency_seconds_count",
                transport=transport,
                stage="served",
            )
        url = running.receivers[transport].url
        for stage in ("received", "served"):
            body = read_latencies(url, stage, CAMERA)
            path[f"{stage}_ms"] = latency_window(body, start_ns, end_ns)
        path["viewer_fps"] = path["viewer_frames"] / seconds if seconds > 0 else 0.0
        viewed += path["viewer_frames"]
    result["viewer_frames"] = viewed
    result["cpu_ms_per_frame"] = cpu_ms_per_frame(cpu, seconds, viewed)
    return result


def summarize(
    changes: Mapping[str, Samples], seconds: float, cpu: Mapping[str, float]
) -> dict[str, Any]:
    """Figures of one window from the metric deltas of each service (keyed by service name)."""
    sender = changes.get("sender", {})

    def per_second(count: float) -> float:
        return count / seconds if seconds > 0 else 0.0

    paths = []
    for name, samples in changes.items():
        if not name.endswith("-receiver"):
            continue
        transport = name.removesuffix("-receiver")
        frames = total(samples, "framewire_frames_received_total", transport=transport)
        count = total(samples, "framewire_frame_bytes_count", transport=transport)
        size = total(samples, "framewire_frame_bytes_sum", transport=transport)
        paths.append(
            {
                "transport": transport,
                "frames": frames,
                "fps": per_second(frames),
                "sent_fps": per_second(
                    total(sender, "framewire_frames_sent_total", transport=transport)
                ),
                "received_hist_ms": latency_ms(samples, transport, "received"),
                "served_hist_ms": latency_ms(samples, transport, "served"),
                "bytes_per_frame": size / count if count else None,
                "drops": drops_by_stage([samples, sender], transport),
                "send_errors": total(sender, "framewire_send_errors_total", transport=transport),
            }
        )
    return {
        "seconds": seconds,
        "captured_fps": per_second(total(sender, "framewire_frames_captured_total")),
        "paths": paths,
        "drops_total": sum(
            total(samples, "framewire_frames_dropped_total") for samples in changes.values()
        ),
        "cpu_percent": dict(cpu),
    }


def drops_by_stage(all_samples: Iterable[Samples], transport: str) -> dict[str, float]:
    """Dropped frames by stage for one transport, plus the sender's shared `capture` drops."""
    drops: dict[str, float] = {}
    for samples in all_samples:
        for labels, value in select(samples, "framewire_frames_dropped_total"):
            if labels.get("transport") in (transport, "none") and value:
                stage = labels.get("stage", "?")
                drops[stage] = drops.get(stage, 0.0) + value
    return drops


def run_scenario(
    scenario: Scenario, redis: RedisServer, duration: float, log_dir: Path
) -> dict[str, Any]:
    """Start the scenario's services, warm up, measure, stop; the figures or an error."""
    record: dict[str, Any] = {
        "scenario": scenario.mode,
        "name": scenario.name,
        "modes": dict(scenario.paths),
        "width": scenario.width,
        "height": scenario.height,
        "resolution": scenario.resolution,
        "rate_fps": scenario.fps,
    }
    redis.client().flushall()
    try:
        running = start_services(scenario, redis, log_dir)
        try:
            time.sleep(WARMUP_SECONDS)
            extra = {"redis-server": redis.pid} if scenario.uses_redis and redis.pid else {}
            record.update(measure(running, duration, extra))
        finally:
            running.stop()
    except (StackError, requests.RequestException, OSError) as exc:
        record["error"] = str(exc) or type(exc).__name__
    return record
