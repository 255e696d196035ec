"""The capacity mode's results.md (a table per setup and trial) and its terminal summary.

Each setup is reported per phase (spread, aligned), its largest N beside the
codec-bound limit of the same run (bench/capacity_mode.py) and the ratio.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from framewire_bench.capacity import MAX_P95_MS, NOISE_PERCENT, noisy
from framewire_bench.chart import fmt_cpu, fmt_ms
from framewire_bench.run import heading

SETUP_NAMES = {
    "http": "HTTP alone",
    "redis": "Redis alone",
    "both": "both together",
    "redis-cluster": "Redis alone, on a Redis Cluster (3 primaries, 3 replicas)",
}
PHASE_NAMES = {"spread": "spread phases", "aligned": "aligned phases"}


def _phase(setup: Mapping[str, Any]) -> str:
    return setup.get("phase", "-")


def _bound(setup: Mapping[str, Any]) -> str:
    """`10.9 | 0.73x`: the codec-bound limit of the setup and the largest N over it."""
    limit, ratio = setup.get("codec_limit"), setup.get("of_codec_limit")
    return (
        f"{'-' if limit is None else f'{limit:.1f}'} | {'-' if ratio is None else f'{ratio:.2f}x'}"
    )


def _cameras(path: Mapping[str, Any]) -> str:
    """`cam0 30.0 fps 7.1 ms, ...`: each camera's fps received and p95, failures marked."""
    cells = []
    for name, figures in path["cameras"].items():
        mark = "" if figures["passed"] else " **x**"
        cells.append(f"{name} {figures['fps']:.1f} / {fmt_ms(figures['p95_ms'])}{mark}")
    return ", ".join(cells)


def trial_rows(setup: Mapping[str, Any]) -> list[str]:
    """Markdown rows, one per transport of each trial of a setup."""
    rows = []
    for trial in setup["trials"]:
        result = "pass" if trial["passed"] else "FAIL"
        result += " (noisy)" if noisy(trial) else ""
        head = f"| {setup['setup']} | {_phase(setup)} | {trial['cameras']} | {result}"
        if "error" in trial:
            rows.append(f"{head} | - | failed: {trial['error']} | | | | |")
            continue
        for path in trial["paths"]:
            served = path["viewed_served_ms"]
            rows.append(
                f"{head} | {path['transport']} | {path['min_fps']:.1f} "
                f"| {fmt_ms(path['max_p95_ms'])} | {path.get('viewer_fps', 0.0):.1f} / "
                f"{fmt_ms(served.get('p95'))} | {fmt_cpu(trial)} | {_cameras(path)} |"
            )
    return rows


def answer(setup: Mapping[str, Any]) -> str:
    """The result of a setup in words: the largest N, or pass/fail at the N tried."""
    if "largest" not in setup:
        return f"{setup['cameras']} cameras: {'pass' if setup['passed'] else 'FAIL'}"
    largest = setup["largest"]
    suffix = " (the cap: raise --max-cameras)" if setup.get("at_limit") else ""
    return f"{largest}{suffix}"


def codec_paragraph(codec: Mapping[str, Any] | None) -> list[str]:
    """How the codec-bound limit was reached, from the run's own codec timings."""
    if not codec:
        return []
    one, both = codec["ms_per_frame"]["one"], codec["ms_per_frame"]["both"]
    head = f"{codec['cores']} x {codec['share']:g} x 1000 / ({codec['fps']:g} x"
    return [
        f"Codec-bound limit: the cameras {codec['cores']} cores carry at "
        f"{codec['share'] * 100:g} % of their time on framewire's own codec work, timed in "
        "this run on the same frames "
        f"({codec['resolution']}: sender encode {codec['encode_ms']:.2f} ms, receiver decode "
        f"{codec['decode_ms']:.2f} ms, band splice of the served frame "
        f"{codec['splice_ms']:.2f} ms). One transport: {head} {one:.2f} ms) = "
        f"{codec['cameras']['one']:.1f} cameras; both (one encode, two decodes, two "
        f"splices): {head} {both:.2f} ms) = {codec['cameras']['both']:.1f}.",
        "",
    ]


def render_markdown(report: Mapping[str, Any]) -> str:
    options = report["options"]
    search = options["cameras"] is None
    lines = [
        *heading("framewire bench: capacity", report),
        f"One `framewire send --cameras-file` with N synthetic {options['camera_size']} cameras "
        f"at {options['camera_fps']:g} fps (JPEG quality 80), the receivers with "
        "`--processor none`, one MJPEG viewer on cam0 at each receiver. Each trial: "
        f"{options['warmup']:g} s of warm-up, then {options['duration']:g} s measured. A trial "
        f"passes when every camera at every receiver gets at least {options['min_fps']:g} fps "
        f"received with p95 at most {MAX_P95_MS:g} ms, capture to received (decoded), exact "
        "per frame (nearest rank over every frame captured in the window, from `/latencies`). "
        + (
            "The search doubles N from 1 until a trial fails, then bisects between the last "
            f"pass and the first failure, up to {options['max_cameras']} cameras; the aligned "
            "search starts at the spread one's answer (and halves down from it if it fails). "
            if search
            else ""
        )
        + "Spread phases: each camera captures at a random instant of its frame period, as "
        "real cameras free-run; aligned: every camera at the same instant, the worst case.",
        "",
        *codec_paragraph(report.get("codec")),
        "| setup | phases | " + ("largest N" if search else "result") + " | codec-bound limit "
        "| largest N / limit | trials (N: pass or FAIL) |",
        "|---|---|---|---|---|---|",
    ]
    for setup in report["capacity"]:
        tried = ", ".join(
            f"{t['cameras']}: {'pass' if t['passed'] else 'FAIL'}" for t in setup["trials"]
        )
        lines.append(
            f"| {SETUP_NAMES[setup['setup']]} | {_phase(setup)} | {answer(setup)} "
            f"| {_bound(setup)} | {tried} |"
        )
    lines += [
        "",
        "## Trials",
        "",
        "Per transport: the lowest fps received and the highest p95 (ms) of any camera; the "
        "viewer's fps and its served p95 (cam0); CPU in % of one core; each camera's fps / p95, "
        "**x** where it missed. `other` is what the rest of the machine used meanwhile: "
        f"a trial with more than {NOISE_PERCENT:g} % is marked noisy, and a noisy failure "
        "runs once more (the later run decides).",
        "",
        "| setup | phases | N | result | transport | lowest fps | highest p95 ms | viewer fps / "
        "served p95 | CPU % | cameras (fps / p95 ms) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for setup in report["capacity"]:
        lines += trial_rows(setup)
    return "\n".join(lines) + "\n"


def summary(report: Mapping[str, Any]) -> str:
    """One line per setup and phase for the terminal."""
    lines = []
    for setup in report["capacity"]:
        phase = PHASE_NAMES.get(setup.get("phase", ""))
        line = f"capacity, {SETUP_NAMES[setup['setup']]}{f', {phase}' if phase else ''}: "
        line += answer(setup)
        if setup.get("of_codec_limit") is not None:
            line += (
                f" ({setup['of_codec_limit']:.2f} of the codec-bound {setup['codec_limit']:.1f})"
            )
        lines.append(line)
    return "\n".join(lines)
