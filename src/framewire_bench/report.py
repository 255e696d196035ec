"""The bench's outputs: results.json, results.md (figures and ratios) and chart.png.

Pass/fail targets are not part of the product's output: they live in
docs/bench/targets.json and `make bench-check` (scripts/bench_check.py)
holds a results.json against them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from framewire_bench.against import (
    ARTICLE_NOTE,
    comparison_table,
    comparisons,
    summary,
    summary_table,
)
from framewire_bench.chart import fmt_cpu, fmt_ms, fmt_number, fmt_rate, write_chart
from framewire_bench.codec_report import codec_lines, over_limit
from framewire_bench.measure import WARMUP_SECONDS
from framewire_bench.run import heading, write

NOISE_PERCENT = 25.0  # other processes' CPU (% of a core) above which a scenario is flagged


def article_quality(options: Mapping[str, Any]) -> str:
    """The sentence saying which JPEG quality the article's design ran at."""
    quality = options.get("article_quality", 80)
    whose = {80: "framewire's, for equal work", 95: "cv2's default, the article's own"}
    return f"The article's sender encoded at JPEG quality {quality}" + (
        f" ({whose[quality]})." if quality in whose else "."
    )


def _triple(values: Mapping[str, Any] | None) -> str:
    """`p50 / p95 / p99`, marked when the latency log overflowed inside the window."""
    values = values or {}
    text = " / ".join(fmt_ms(values.get(key)) for key in ("p50", "p95", "p99"))
    return text + (" (overflow)" if values.get("overflow") else "")


def _drops(by_stage: Mapping[str, float]) -> str:
    """`capture 120, send 3`: the nonzero stages, in pipeline order."""
    order = ["capture", "send", "receive", "process"]
    stages = sorted(by_stage, key=lambda s: order.index(s) if s in order else len(order))
    return ", ".join(f"{s} {by_stage[s]:.0f}" for s in stages if by_stage[s]) or "0"


def table_rows(results: list[dict[str, Any]], codec: Mapping[str, Any]) -> list[list[str]]:
    """One row per transport of each scenario."""
    rows = []
    for result in results:
        head = [result["scenario"], "", result["resolution"], fmt_rate(result["rate_fps"])]
        if "error" in result:
            modes = ", ".join(f"{t} {m}" for t, m in result["modes"].items())
            rows.append([head[0], modes, *head[2:], f"failed: {result['error']}"])
            rows[-1] += [""] * (len(HEADER) - len(rows[-1]))
            continue
        cpu = fmt_cpu(result)
        cost = codec.get(result["resolution"], {}).get("total_ms")
        per_frame = (result.get("cpu_ms_per_frame") or {}).get("total")
        for path in result["paths"]:
            p50 = path["received_ms"].get("p50")
            ratio = f"{p50 / cost:.1f}x" if p50 is not None and cost else "-"
            size = path["bytes_per_frame"]
            rows.append(
                [
                    head[0],
                    f"{path['transport']} {result['modes'][path['transport']]}",
                    *head[2:],
                    f"{path['fps']:.1f}",
                    fmt_number(path.get("viewer_fps")),
                    _triple(path["received_ms"]),
                    _triple(path["served_ms"]),
                    "-" if size is None else f"{size / 1024:.1f} KiB",
                    _drops(path["drops"]),
                    cpu,
                    fmt_number(per_frame, 2),
                    fmt_number(result.get("cpu_over_floor"), 1, "x"),
                    ratio,
                    over_limit(p50, codec.get(result["resolution"])),
                ]
            )
    return rows


HEADER = [
    "scenario",
    "mode",
    "resolution",
    "rate",
    "fps received",
    "fps viewed",
    "received p50 / p95 / p99 ms",
    "served p50 / p95 / p99 ms",
    "bytes/frame",
    "drops",
    "CPU % of one core",
    "CPU ms / viewed frame",
    "CPU / floor",
    "p50 / codec",
    "p50 over the limit",
]


def markdown_table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def noisy(results: list[dict[str, Any]], threshold: float = NOISE_PERCENT) -> list[str]:
    """Scenarios during which other processes used more than `threshold` % of a core."""
    return [
        f"{result['name']} ({result['machine_cpu_percent']['other']:.0f} %)"
        for result in results
        if result.get("machine_cpu_percent", {}).get("other", 0.0) > threshold
    ]


def cpu_per_frame_table(results: list[dict[str, Any]]) -> list[str]:
    """Markdown lines: CPU ms per viewed frame of each process, the total and the floor ratio."""
    measured = [r for r in results if r.get("cpu_ms_per_frame")]
    if not measured:
        return []
    names = list(dict.fromkeys(n for r in measured for n in r["cpu_ms_per_frame"] if n != "total"))
    lines = [
        "## CPU per viewed frame (ms)",
        "",
        "| scenario | viewed frames | "
        + " | ".join(names)
        + " | total | total / floor | total / own floor |",
        "|---|---|" + "---|" * len(names) + "---|---|---|",
    ]
    for result in measured:
        per_frame = result["cpu_ms_per_frame"]
        cells = [fmt_number(per_frame.get(name), 2) for name in names]
        lines.append(
            f"| {result['name']} | {result['viewer_frames']:.0f} | "
            + " | ".join(cells)
            + f" | {per_frame['total']:.2f} | {fmt_number(result.get('cpu_over_floor'), 1, 'x')}"
            + f" | {fmt_number(result.get('cpu_over_own_floor'), 2, 'x')} |"
        )
    return [*lines, ""]


def render_markdown(report: Mapping[str, Any]) -> str:
    """results.md: machine, method, the table and the comparison with the article's design."""
    options, codec = report["options"], report["codec"]
    lines = [
        *heading("framewire bench", report),
        *summary_table(report.get("summary") or [], codec),
        f"Each scenario: {options['duration']:g} s measured after {WARMUP_SECONDS:g} s of "
        "warm-up, one MJPEG viewer open on each receiver, synthetic frames, JPEG quality 80 "
        f"(the article's design: {options.get('article_quality', 80)}), "
        "`--processor none`. Latency is capture to received (decoded) and capture to served "
        "(annotated and encoded for the viewer), exact per frame: each receiver logs every "
        "frame's own latency and the bench reads it (`/latencies`) at the end of the window; "
        "p50/p95/p99 are nearest-rank quantiles (each is a real frame's latency) over every "
        "frame captured in the window, no bucket interpolation; `(overflow)` marks a window "
        "with more frames than the log holds. The article's design (`article-*`) has no "
        "viewer: its `fps viewed` counts the frames its display loop took; its receivers keep "
        "the same per-frame log and serve the same `/latencies`, so its quantiles are exact "
        "too. "
        "`fps received` counts frames decoded at the "
        "receiver, `fps viewed` the frames the bench's MJPEG viewer was written. "
        "Drops are per stage: `capture` at the sender (shared by both transports; "
        "the source outruns the encoder), then `send`, `receive` and `process` of that "
        "transport; unthrottled runs drop by design, the latest frame wins. "
        "CPU is per process in % of one core (receivers include their gunicorn worker; "
        "`bench` is this process, running the viewers; `other` is what the rest of the "
        "machine used meanwhile, `steal` what the hypervisor took: high values mean noise). "
        "`p50 / codec` is received p50 over the in-process JPEG encode + decode time; "
        "`p50 over the limit` is received p50 less the physical limit (below), in ms and "
        "as a multiple. "
        "`CPU ms / viewed frame` is the CPU of every process listed (sender, receivers, "
        "redis-server, the bench's viewers) over the frames written to the viewers; "
        "`CPU / floor` divides it by the codec floor, the in-process sender encode + "
        "receiver decode + viewer encode of one frame (annotation, transport and Python "
        "are the rest); `own floor` is framewire's own: encode + decode + the band splice "
        "its receivers do instead of the viewer encode.",
        "",
    ]
    lines += codec_lines(codec)
    lines += ["## Results", "", markdown_table(table_rows(report["results"], codec)), ""]
    lines += cpu_per_frame_table(report["results"])
    overflowed = [
        result["name"]
        for result in report["results"]
        for path in result.get("paths", [])
        if any(path.get(stage, {}).get("overflow") for stage in ("received_ms", "served_ms"))
    ]
    if overflowed:
        lines += [
            f"**Overflow**: the receivers' latency logs held fewer frames than "
            f"{len(set(overflowed))} windows had, so their quantiles cover only the newest "
            "frames: " + ", ".join(dict.fromkeys(overflowed)) + ".",
            "",
        ]
    if report["comparisons"]:
        note = f"{ARTICLE_NOTE} {article_quality(options)}"
        lines += ["## Against the article's design", "", note, ""]
        lines += comparison_table(report["comparisons"])
    disturbed = noisy(report["results"])
    if disturbed:
        lines += [
            "",
            f"**Noisy**: other processes used more than {NOISE_PERCENT:g} % of a core during "
            f"{len(disturbed)} of {len(report['results'])} scenarios, so those figures "
            "understate what framewire does on an idle machine: " + ", ".join(disturbed) + ".",
        ]
    lines += ["", f"Chart: {report['chart']}", ""]
    return "\n".join(lines)


def write_report(out: Path, report: dict[str, Any]) -> str:
    """Write results.json, chart.png and results.md into `out`; return the Markdown."""
    out.mkdir(parents=True, exist_ok=True)
    report["chart"] = write_chart(out / "chart.png", report["results"], report.get("codec"))
    report["comparisons"] = comparisons(report["results"])
    report["summary"] = summary(report["results"], report["codec"])
    return write(out, report, render_markdown)
