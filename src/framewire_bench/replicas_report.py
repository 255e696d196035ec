"""The replicas mode's runner (`framewire bench --replicas`), its results.md and its summary.

`run_mode` runs the sharing part (bench/replicas.py: one trial per number of
replicas) and, with `--replicas-pinned`, the pinned capacity searches, then
writes results.json (`kind` "replicas": `replicas`, one trial per n;
`pinned`, the searches and the ratio) and results.md. With the producer
`replay` (`--replicas-producer replay`: bench/replay.py instead of `framewire
send`), the pinned part also searches 1 replica fed by the real sender, for
comparison (`pinned["sender_one"]`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from framewire_bench.capacity import MAX_P95_MS, NOISE_PERCENT, WARMUP_SECONDS, Camera, noisy
from framewire_bench.chart import fmt_ms
from framewire_bench.replicas import PINNED, PINNED_FPS, PRODUCERS, run_pinned, run_sharing
from framewire_bench.run import Run, heading, write
from framewire_bench.stack import RedisServer, StackError


def _ratio(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _cpu(trial: Mapping[str, Any]) -> str:
    return ", ".join(f"{row['cpu_percent']:.1f}" for row in trial["replicas"])


def _producer(trial: Mapping[str, Any]) -> str:
    """The producer's CPU in % of one core, and per camera: `30.0 (2.14 per camera)`."""
    name = trial.get("producer", "sender")
    used = trial["cpu_percent"].get(name, 0.0)
    return f"{used:.1f} ({used / max(trial['camera_count'], 1):.2f} per camera)"


REPLAY_NOTE = (
    "The replay producer (bench/replay.py) XADDs frames it encoded once at its start, with the "
    "sender's encode parameters (the receivers decode the same work); its `captured_ns` is the "
    "time of the XADD, so capture to received leaves out the encode the real sender does "
    "before it (about 4-5 ms at 720p): the p95 rule is slightly easier than with the sender."
)


def _owned(trial: Mapping[str, Any]) -> str:
    return " / ".join(
        f"{len(row['owned'])} ({' '.join(row['owned']) or '-'})" for row in trial["replicas"]
    )


PRODUCED = {
    "sender": "one `framewire send --cameras-file`",
    "replay": "the replay producer (`--replicas-producer replay`: frames encoded once, XADDed "
    "at the cameras' rate)",
}


def describe(trial: Mapping[str, Any]) -> str:
    """One line for the terminal: n, decodes per frame sent, CPU per replica, the worst camera."""
    head = f"{trial['replica_count']} replica(s), {trial['camera_count']} cameras"
    head += ", pinned" if trial["pinned"] else ""
    if "error" in trial:
        return f"{head}: failed: {trial['error']}"
    verdict = "pass" if trial["passed"] else "FAIL"
    return (
        f"{head}: {verdict}; {_ratio(trial['decodes_per_frame_sent'])} decodes per frame sent; "
        f"CPU per replica {_cpu(trial)} %, {trial.get('producer', 'sender')} {_producer(trial)} "
        f"% of a core; lowest {trial['min_fps']:.1f} fps, p95 up to "
        f"{fmt_ms(trial['max_p95_ms'])} ms"
    )


def sharing_rows(trials: Sequence[Mapping[str, Any]]) -> list[str]:
    rows = []
    for trial in trials:
        n = trial["replica_count"]
        if "error" in trial:
            rows.append(f"| {n} | failed: {trial['error']} | | | | | | |")
            continue
        decode = ", ".join(f"{row['decode_percent']:.1f}" for row in trial["replicas"])
        elsewhere = sum(row["decodes_not_owned"] for row in trial["replicas"])
        rows.append(
            f"| {n} | {_ratio(trial['decodes_per_frame_sent'])} ({trial['decodes']:.0f} / "
            f"{trial['frames_sent']:.0f}; {elsewhere:.0f} not by the owner, "
            f"{trial['dropped']:.0f} skipped) | {_cpu(trial)} | "
            f"{trial['cpu_per_replica_mean']:.1f} ({_ratio(trial['cpu_per_replica_over_ideal'], 2)}"
            f"x) | {decode} | {_owned(trial)} | {trial['min_fps']:.1f} / "
            f"{fmt_ms(trial['max_p95_ms'])} | {_producer(trial)} |"
        )
    return rows


def _searched(found: Mapping[str, Any], producer: str) -> str:
    tried = ", ".join(
        f"{t['camera_count']}: {'pass' if t['passed'] else 'FAIL'}"
        + (" (noisy)" if noisy(t) else "")
        for t in found["trials"]
    )
    cap = " (the cap: raise --max-cameras)" if found["at_limit"] else ""
    return f"| {found['replicas']} | {producer} | {found['largest']}{cap} | {tried} |"


def _trial_rows(found: Mapping[str, Any], producer: str) -> list[str]:
    rows = []
    for t in found["trials"]:
        head = f"| {found['replicas']} | {producer} | {t['camera_count']} |"
        if "error" in t:
            rows.append(f"{head} failed: {t['error']} | | | | | | |")
            continue
        rows.append(
            f"{head} {'pass' if t['passed'] else 'FAIL'} | {t['min_fps']:.1f} / "
            f"{fmt_ms(t['max_p95_ms'])} | {_cpu(t)} | {_producer(t)} | "
            f"{t['cpu_percent'].get('redis-server', 0):.0f} | "
            f"{t['machine_cpu_percent']['other']:.0f} | {_owned(t)} |"
        )
    return rows


def pinned_lines(pinned: Mapping[str, Any]) -> list[str]:
    producer = pinned.get("producer", "sender")
    sender_one = pinned.get("sender_one")
    lines = [
        "## Pinned capacity",
        "",
        f"Replica i under `taskset -c` on core i mod {len(pinned['cores'])} (cores "
        f"{', '.join(map(str, pinned['cores']))}); the producer (`{producer}`) and "
        "redis-server are not pinned and share the same cores. The largest number of cameras at "
        f"{pinned['fps']:g} fps passing the capacity rule at their owners; n = 2 searches up "
        "from n = 1's answer.",
        "",
    ]
    if producer == "replay":
        lines += [REPLAY_NOTE, ""]
    if sender_one:
        lines += [
            "For comparison, 1 replica fed by the real sender (`framewire send`, an encode per "
            "frame), searched from the replay producer's answer.",
            "",
        ]
    searches = [(f, producer) for f in pinned["searches"]]
    searches += [(f, "sender") for f in (sender_one or {}).get("searches", [])]
    lines += ["| replicas | producer | largest N | trials (N: pass or FAIL) |", "|---|---|---|---|"]
    lines += [_searched(found, name) for found, name in searches]
    lines += ["", f"Two replicas over one: {_ratio(pinned['two_over_one'], 2)}x"]
    lines[-1] += f" (producer `{producer}`)." if producer != "sender" else "."
    lines += [
        "",
        "| replicas | producer | N | result | lowest fps / highest p95 ms | CPU per replica % "
        "| producer % (per camera) | redis % | other % | cameras each owns |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for found, name in searches:
        lines += _trial_rows(found, name)
    return lines


def render_markdown(report: Mapping[str, Any]) -> str:
    options = report["options"]
    lines = [
        *heading("framewire bench: Redis receiver replicas sharing the cameras", report),
        f"n `framewire redis-receiver` replicas with `--advertise-url` on one redis-server "
        "(each camera read and decoded by its owner alone, rendezvous hashing), "
        f"{PRODUCED[options.get('producer', 'sender')]}, `--processor none`, no viewers. "
        "Each trial waits until every replica sees n members and every camera has one owner, "
        "warms up "
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
            'the producer delivered to Redis (`framewire_frames_sent_total{transport="redis"}`);'
            " skipped: frames the replicas' readers passed over for a newer one (latest wins,"
            " `framewire_frames_dropped_total`), fewer decodes where a reader lagged."
            " CPU: each replica's process (gunicorn master and worker) in % of one core; the "
            "mean's ratio is over n = 1's CPU / n (1.00x: falls exactly as 1/n). Decode: time "
            "in `framewire_decode_seconds` in % of the window. Producer: its process CPU in % "
            "of one core (and per camera).",
            "",
            "| n | decodes per frame sent | CPU per replica % | mean % (over 1/n) | decode % "
            "per replica | cameras each owns | lowest fps / highest p95 ms | producer % |",
            "|---|---|---|---|---|---|---|---|",
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
        producer = pinned.get("producer", "sender")
        lines.append(
            f"replicas, pinned capacity (cameras, producer {producer}): {found}; two over one "
            f"{_ratio(pinned['two_over_one'], 2)}x"
        )
        for f in (pinned.get("sender_one") or {}).get("searches", []):
            lines.append(f"replicas, pinned capacity with the real sender: 1: {f['largest']}")
    return "\n".join(lines)


def run_mode(
    out: Path,
    counts: Sequence[int],
    cameras: int,
    camera: Camera,
    duration: float,
    pinned: bool,
    max_cameras: int,
    producer: str = "sender",
) -> None:
    """`framewire bench --replicas`: the sharing trials, the pinned searches, the report."""
    parts = [f"{', '.join(map(str, counts))} replicas sharing {cameras} cameras"] if counts else []
    parts += [f"pinned capacity of {' and '.join(map(str, PINNED))} replicas"] if pinned else []
    parts += [f"producer {producer}"]
    if producer not in PRODUCERS:
        raise click.UsageError(f"--replicas-producer must be one of {', '.join(PRODUCERS)}")
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
                sharing = run_sharing(
                    counts, cameras, camera, redis, duration, run.logs, progress, producer
                )
            if pinned:
                fast = Camera(camera.width, camera.height, PINNED_FPS)
                search = (fast, redis, duration, run.logs, max_cameras, progress)
                capacity = run_pinned(*search, producer=producer)
                if producer != "sender":  # 1 replica fed by the real sender, for comparison
                    start = max(capacity["searches"][0]["largest"], 1)
                    capacity["sender_one"] = run_pinned(*search, counts=(1,), start=start)
    except StackError as exc:
        raise click.ClickException(str(exc)) from None
    report = run.report(
        "replicas",
        options={
            "replicas": list(counts),
            "producer": producer,
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
