"""The replicas mode's runner (`framewire bench --replicas`), its results.md and its summary.

`run_mode` runs the sharing part (bench/replicas.py: one trial per number of
replicas) and, with `--replicas-pinned`, the pinned capacity searches, then
writes results.json (`kind` "replicas": `replicas`, one trial per n;
`pinned`, the searches and the ratio) and results.md.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from framewire_bench.capacity import MAX_P95_MS, NOISE_PERCENT, WARMUP_SECONDS, Camera, noisy
from framewire_bench.chart import fmt_ms
from framewire_bench.replicas import PINNED, PINNED_FPS, run_pinned, run_sharing
from framewire_bench.run import Run, heading, write
from framewire_bench.stack import RedisServer, StackError


def _ratio(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _cpu(trial: Mapping[str, Any]) -> str:
    return ", ".join(f"{row['cpu_percent']:.1f}" for row in trial["replicas"])


def _owned(trial: Mapping[str, Any]) -> str:
    return " / ".join(
        f"{len(row['owned'])} ({' '.join(row['owned']) or '-'})" for row in trial["replicas"]
    )


def describe(trial: Mapping[str, Any]) -> str:
    """One line for the terminal: n, decodes per frame sent, CPU per replica, the worst camera."""
    head = f"{trial['replica_count']} replica(s), {trial['camera_count']} cameras"
    head += ", pinned" if trial["pinned"] else ""
    if "error" in trial:
        return f"{head}: failed: {trial['error']}"
    verdict = "pass" if trial["passed"] else "FAIL"
    return (
        f"{head}: {verdict}; {_ratio(trial['decodes_per_frame_sent'])} decodes per frame sent; "
        f"CPU per replica {_cpu(trial)} %; lowest {trial['min_fps']:.1f} fps, p95 up to "
        f"{fmt_ms(trial['max_p95_ms'])} ms"
    )


def sharing_rows(trials: Sequence[Mapping[str, Any]]) -> list[str]:
    rows = []
    for trial in trials:
        n = trial["replica_count"]
        if "error" in trial:
            rows.append(f"| {n} | failed: {trial['error']} | | | | | |")
            continue
        decode = ", ".join(f"{row['decode_percent']:.1f}" for row in trial["replicas"])
        elsewhere = sum(row["decodes_not_owned"] for row in trial["replicas"])
        rows.append(
            f"| {n} | {_ratio(trial['decodes_per_frame_sent'])} ({trial['decodes']:.0f} / "
            f"{trial['frames_sent']:.0f}; {elsewhere:.0f} not by the owner, "
            f"{trial['dropped']:.0f} skipped) | {_cpu(trial)} | "
            f"{trial['cpu_per_replica_mean']:.1f} ({_ratio(trial['cpu_per_replica_over_ideal'], 2)}"
            f"x) | {decode} | {_owned(trial)} | {trial['min_fps']:.1f} / "
            f"{fmt_ms(trial['max_p95_ms'])} |"
        )
    return rows


def pinned_lines(pinned: Mapping[str, Any]) -> list[str]:
    lines = [
        "## Pinned capacity",
        "",
        f"Replica i under `taskset -c` on core i mod {len(pinned['cores'])} (cores "
        f"{', '.join(map(str, pinned['cores']))}); the sender and redis-server are not pinned "
        "and share the same cores. The largest number of cameras at "
        f"{pinned['fps']:g} fps passing the capacity rule at their owners; n = 2 searches up "
        "from n = 1's answer.",
        "",
        "| replicas | largest N | trials (N: pass or FAIL) |",
        "|---|---|---|",
    ]
    for found in pinned["searches"]:
        tried = ", ".join(
            f"{t['camera_count']}: {'pass' if t['passed'] else 'FAIL'}"
            + (" (noisy)" if noisy(t) else "")
            for t in found["trials"]
        )
        cap = " (the cap: raise --max-cameras)" if found["at_limit"] else ""
        lines.append(f"| {found['replicas']} | {found['largest']}{cap} | {tried} |")
    lines += ["", f"Two replicas over one: {_ratio(pinned['two_over_one'], 2)}x.", ""]
    lines += [
        "| replicas | N | result | lowest fps / highest p95 ms | CPU per replica % | sender % "
        "| redis % | other % | cameras each owns |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for found in pinned["searches"]:
        for t in found["trials"]:
            if "error" in t:
                lines.append(
                    f"| {found['replicas']} | {t['camera_count']} | failed: "
                    f"{t['error']} | | | | | | |"
                )
                continue
            cpu = t["cpu_percent"]
            lines.append(
                f"| {found['replicas']} | {t['camera_count']} | "
                f"{'pass' if t['passed'] else 'FAIL'} | {t['min_fps']:.1f} / "
                f"{fmt_ms(t['max_p95_ms'])} | {_cpu(t)} | {cpu.get('sender', 0):.0f} | "
                f"{cpu.get('redis-server', 0):.0f} | {t['machine_cpu_percent']['other']:.0f} | "
                f"{_owned(t)} |"
            )
    return lines


def render_markdown(report: Mapping[str, Any]) -> str:
    options = report["options"]
    lines = [
        *heading("framewire bench: Redis receiver replicas sharing the cameras", report),
        f"n `framewire redis-receiver` replicas with `--advertise-url` on one redis-server "
        "(each camera read and decoded by its owner alone, rendezvous hashing), one "
        f"`framewire send --cameras-file`, `--processor none`, no viewers. Each trial waits "
        f"until every replica sees n members and every camera has one owner, warms up "
        f"{options['warmup']:g} s, then measures {options['duration']:g} s. Pass rule per "
        f"camera at its owner: at least fps - 0.5 decoded, p95 at most {MAX_P95_MS:g} ms "
        "capture to received (exact, from the owner's `/latencies`).",
        "",
    ]
    if report["replicas"]:
        lines += [
            "## Sharing",
            "",
            f"{options['cameras']} synthetic cameras, {options['camera_size']} at "
            f"{options['camera_fps']:g} fps, replicas not pinned. Decodes per frame sent: "
            "frames decoded by all replicas (`framewire_frames_received_total`) over frames "
            'the sender delivered to Redis (`framewire_frames_sent_total{transport="redis"}`);'
            " skipped: frames the replicas' readers passed over for a newer one (latest wins,"
            " `framewire_frames_dropped_total`), fewer decodes where a reader lagged."
            " CPU: each replica's process (gunicorn master and worker) in % of one core; the "
            "mean's ratio is over n = 1's CPU / n (1.00x: falls exactly as 1/n). Decode: time "
            "in `framewire_decode_seconds` in % of the window.",
            "",
            "| n | decodes per frame sent | CPU per replica % | mean % (over 1/n) | decode % "
            "per replica | cameras each owns | lowest fps / highest p95 ms |",
            "|---|---|---|---|---|---|---|",
            *sharing_rows(report["replicas"]),
            "",
        ]
    if report.get("pinned"):
        lines += pinned_lines(report["pinned"])
    lines += [
        "",
        f"`other`: what the rest of the machine used meanwhile (% of a core); a failure with "
        f"more than {NOISE_PERCENT:g} % is noisy and runs once more.",
    ]
    return "\n".join(lines) + "\n"


def summary(report: Mapping[str, Any]) -> str:
    lines = []
    for trial in report["replicas"]:
        lines.append(f"replicas, sharing: {describe(trial)}")
    pinned = report.get("pinned")
    if pinned:
        found = ", ".join(f"{f['replicas']}: {f['largest']}" for f in pinned["searches"])
        lines.append(
            f"replicas, pinned capacity (cameras): {found}; two over one "
            f"{_ratio(pinned['two_over_one'], 2)}x"
        )
    return "\n".join(lines)


def run_mode(
    out: Path,
    counts: Sequence[int],
    cameras: int,
    camera: Camera,
    duration: float,
    pinned: bool,
    max_cameras: int,
) -> None:
    """`framewire bench --replicas`: the sharing trials, the pinned searches, the report."""
    parts = [f"{', '.join(map(str, counts))} replicas sharing {cameras} cameras"] if counts else []
    parts += [f"pinned capacity of {' and '.join(map(str, PINNED))} replicas"] if pinned else []
    run = Run(out, "; ".join(parts))

    def progress(trial: Mapping[str, Any]) -> None:
        click.echo(f"  {describe(trial)}", err=True)

    sharing: list[dict[str, Any]] = []
    capacity: dict[str, Any] | None = None
    try:
        with contextlib.ExitStack() as running:
            redis = RedisServer(log_path=run.logs / "redis-server.log")
            redis.start()
            running.callback(redis.stop)
            if counts:
                sharing = run_sharing(counts, cameras, camera, redis, duration, run.logs, progress)
            if pinned:
                fast = Camera(camera.width, camera.height, PINNED_FPS)
                capacity = run_pinned(fast, redis, duration, run.logs, max_cameras, progress)
    except StackError as exc:
        raise click.ClickException(str(exc)) from None
    report = run.report(
        "replicas",
        options={
            "replicas": list(counts),
            "cameras": cameras,
            "camera_size": camera.resolution,
            "camera_fps": camera.fps,
            "pinned": pinned,
            "pinned_replicas": list(PINNED) if pinned else [],
            "pinned_fps": PINNED_FPS,
            "max_cameras": max_cameras,
            "max_p95_ms": MAX_P95_MS,
            "duration": duration,
            "warmup": WARMUP_SECONDS,
        },
        replicas=sharing,
        pinned=capacity,
        results=[],  # the scenario matrix's list: none in this mode
    )
    run.finish(write(out, report, render_markdown), summary(report))
    failed = [str(t["replica_count"]) for t in sharing if "error" in t]
    if failed:
        raise click.ClickException(f"sharing trial(s) of {', '.join(failed)} replicas failed")
