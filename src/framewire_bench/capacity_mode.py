"""The capacity mode's runner (`framewire bench --cameras`), and the codec-bound limit.

For each setup it runs each phase (`--phases`: the cameras at spread phases,
as real cameras free-run, then aligned, every camera capturing at the same
instant, the worst case): one trial at N cameras, or the search for the
largest N (bench/capacity.py). The aligned search starts at the spread one's
answer for the setup, so it costs a few trials, not a whole search.

Before the trials, with the machine quiet, it times framewire's own codec
work on the same frames (codecs.py: the sender's encode, the
receiver's decode, the band splice of the viewer's frame) and states the
codec-bound limit: how many cameras the cores carry if each spends 85 % of
its time on that work and nothing else,

    cores x 0.85 x 1000 / (fps x (encode + decode + splice) ms)

for one transport, and with one encode, two decodes and two splices per
frame for both. Each search's largest N is reported over it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from framewire.runtime import tune_malloc
from framewire_bench.capacity import MAX_P95_MS, SETUPS, WARMUP_SECONDS, Camera, run_setup
from framewire_bench.capacity_report import render_markdown, summary
from framewire_bench.chart import fmt_ms
from framewire_bench.cluster import RedisClusterServers
from framewire_bench.codecs import codec_cost, splice_cost
from framewire_bench.run import Run, write
from framewire_bench.stack import RedisServer, StackError

CODEC_SHARE = 0.85  # of each core, at most, for the codec work of the codec-bound limit


def codec_bound(
    cores: int, fps: float, encode_ms: float, decode_ms: float, splice_ms: float
) -> dict[str, Any]:
    """Cameras the cores carry at CODEC_SHARE of their time on framewire's own codec work.

    cores x 0.85 x 1000 / (fps x ms per frame), where a frame costs one encode
    (the sender's) and per transport one decode and one band splice (the
    receiver's): `one` for HTTP or Redis alone, `both` for the two at once.
    """
    per_frame = {
        "one": encode_ms + decode_ms + splice_ms,
        "both": encode_ms + 2 * (decode_ms + splice_ms),
    }
    budget = cores * CODEC_SHARE * 1000 / fps
    return {
        "cores": cores,
        "share": CODEC_SHARE,
        "fps": fps,
        "encode_ms": encode_ms,
        "decode_ms": decode_ms,
        "splice_ms": splice_ms,
        "ms_per_frame": per_frame,
        "cameras": {key: budget / ms if ms > 0 else None for key, ms in per_frame.items()},
    }


def bound_of(setup: str, bound: Mapping[str, Any]) -> float | None:
    """The codec-bound number of cameras of a setup (both transports, or one)."""
    cameras: dict[str, float | None] = bound["cameras"]
    return cameras["both" if len(SETUPS[setup]) == 2 else "one"]


def of_bound(found: Mapping[str, Any], bound: Mapping[str, Any]) -> float | None:
    """A search's largest N over the codec-bound limit of its setup (None: not a search)."""
    limit = bound_of(found["setup"], bound)
    return found["largest"] / limit if "largest" in found and limit else None


def measure_bound(camera: Camera, cores: int) -> dict[str, Any]:
    """Time the codec work of the cameras' frames in this process; the codec-bound limit."""
    tune_malloc()  # as the services do, so the timings are theirs
    cost = {**codec_cost(camera.width, camera.height), **splice_cost(camera.width, camera.height)}
    bound = codec_bound(
        cores, camera.fps, cost["encode_ms"], cost["decode_ms"], cost["viewer_splice_ms"]
    )
    return {"resolution": camera.resolution, **bound}


def run_capacity(
    count: int | None,
    camera: Camera,
    duration: float,
    out: Path,
    max_cameras: int,
    setups: list[str],
    phases: list[str],
) -> None:
    """Capacity mode: per setup and phase one trial at `count` cameras, or the search (None)."""
    what = f"{count} cameras" if count else f"the largest N up to {max_cameras}"
    run = Run(out, f"capacity, {what}")
    bound = measure_bound(camera, run.machine["cores"] or 1)
    limits = bound["cameras"]
    click.echo(
        f"  codec-bound limit: {limits['one']:.1f} cameras over one transport, "
        f"{limits['both']:.1f} over both ({bound['ms_per_frame']['one']:.2f} ms of codec work "
        "per frame and transport)",
        err=True,
    )

    def progress(trial: Mapping[str, Any]) -> None:
        verdict = "pass" if trial["passed"] else f"FAIL {trial.get('error', '')}".strip()
        worst = ", ".join(
            f"{p['transport']} lowest {p['min_fps']:.1f} fps, p95 up to "
            f"{fmt_ms(p['max_p95_ms'])} ms"
            for p in trial.get("paths", [])
        )
        head = f"{trial['setup']} {trial['phase']} x{trial['cameras']}"
        click.echo(f"  {head}: {verdict}; {worst}", err=True)

    results: list[dict[str, Any]] = []
    try:
        with contextlib.ExitStack() as running:
            redis = RedisServer(log_path=run.logs / "redis-server.log")
            redis.start()
            running.callback(redis.stop)
            brokers: dict[str, RedisServer | RedisClusterServers] = dict.fromkeys(setups, redis)
            if "redis-cluster" in setups:
                cluster = RedisClusterServers(directory=run.logs / "redis-cluster")
                running.callback(cluster.stop)
                cluster.start()
                brokers["redis-cluster"] = cluster
            for setup in setups:
                start = 1
                for phase in phases:
                    found = run_setup(
                        setup,
                        count,
                        camera,
                        brokers[setup],
                        duration,
                        run.logs,
                        max_cameras,
                        progress,
                        phase=phase,
                        start=start,
                    )
                    found["codec_limit"] = bound_of(setup, bound)
                    found["of_codec_limit"] = of_bound(found, bound)
                    results.append(found)
                    if phase == "spread" and found.get("largest"):
                        start = found["largest"]  # where the aligned search starts
    except StackError as exc:
        raise click.ClickException(str(exc)) from None
    report = run.report(
        "capacity",
        options={
            "cameras": count,
            "camera_size": camera.resolution,
            "camera_fps": camera.fps,
            "min_fps": camera.min_fps,
            "max_p95_ms": MAX_P95_MS,
            "duration": duration,
            "warmup": WARMUP_SECONDS,
            "max_cameras": max_cameras,
            "setups": setups,
            "phases": phases,
        },
        codec=bound,
        capacity=results,
        results=[],  # the scenario matrix's list: none in this mode
    )
    run.finish(write(out, report, render_markdown), summary(report))
    errors = [
        f"{t['setup']} {t['phase']} x{t['cameras']}"
        for r in results
        for t in r["trials"]
        if "error" in t
    ]
    if errors and count is not None:
        raise click.ClickException(f"{len(errors)} trial(s) failed to run: {', '.join(errors)}")
