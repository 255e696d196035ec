"""chart.png: three questions a reader has, answered at one resolution (matplotlib).

One panel per question, each titled with its answer computed from the results:
how fast flat out (fps unthrottled, higher is better), how late at a camera's
rate (p50/p95 latency against the physical limit, lower is better) and what a
frame costs (CPU ms per frame against the codec floor, lower is better), for
framewire's HTTP and Redis paths against the article's design.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HEADLINE = "1280x720"  # the resolution the chart answers at, when the run has it
# (scenario, transport, label, colour): framewire's paths, then the article's design.
LINEUP = (
    ("raw", "http", "framewire HTTP", "tab:blue"),
    ("stream", "redis", "framewire Redis", "tab:red"),
    ("article-http", "http", "article's HTTP", "lightsteelblue"),
    ("article-redis", "redis", "article's Redis", "lightpink"),
)


def fmt_rate(fps: float) -> str:
    return f"{fps:g} fps" if fps else "unthrottled"


def fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def fmt_number(value: float | None, digits: int = 1, suffix: str = "") -> str:
    return "-" if value is None else f"{value:.{digits}f}{suffix}"


def fmt_cpu(figures: Mapping[str, Any]) -> str:
    """`sender 40, http-receiver 20, other 11, steal 0`: % of one core, by process."""
    cpu = ", ".join(f"{name} {value:.0f}" for name, value in figures["cpu_percent"].items())
    machine = figures.get("machine_cpu_percent", {})
    return cpu + "".join(f", {k} {machine[k]:.0f}" for k in ("other", "steal") if k in machine)


@dataclass(frozen=True)
class Bar:
    """One path of one scenario, as the chart shows it."""

    label: str
    colour: str
    ours: bool  # framewire's path (else the article's design)
    fps: float
    p50: float | None
    p95: float | None
    cpu_ms: float | None  # total CPU per viewed frame, every process
    floor_ms: float | None  # the codec floor that run was held against


def headline_resolution(results: list[dict[str, Any]]) -> str | None:
    """HEADLINE if the run measured it, else the first resolution it did."""
    resolutions = [r["resolution"] for r in results if r.get("paths")]
    return HEADLINE if HEADLINE in resolutions else next(iter(resolutions), None)


def camera_rate(results: list[dict[str, Any]]) -> float | None:
    """30 fps if measured, else the lowest source rate measured (0, unthrottled, excluded)."""
    rates = sorted({r["rate_fps"] for r in results if r["rate_fps"]})
    return 30.0 if 30.0 in rates else next(iter(rates), None)


def bars(results: list[dict[str, Any]], resolution: str, rate: float | None) -> list[Bar]:
    """framewire's and the article's paths at `resolution` and `rate`, in LINEUP order."""
    found = []
    for scenario, transport, label, colour in LINEUP:
        for result in results:
            if (result["scenario"], result["resolution"]) != (scenario, resolution):
                continue
            if rate is None or result["rate_fps"] != rate:
                continue
            path = next((p for p in result.get("paths", []) if p["transport"] == transport), None)
            if path is None:
                continue
            received = path.get("received_ms") or {}
            cpu = (result.get("cpu_ms_per_frame") or {}).get("total")
            over = result.get("cpu_over_floor")
            found.append(
                Bar(
                    label,
                    colour,
                    not scenario.startswith("article"),
                    path["fps"],
                    received.get("p50"),
                    received.get("p95"),
                    cpu,
                    cpu / over if cpu and over else None,
                )
            )
    return found


def span(values: list[float], digits: int = 1, suffix: str = "") -> str:
    """`6.4x` for one value (or equal ones), `6.4-8.0x` for a range."""
    low, high = f"{min(values):.{digits}f}", f"{max(values):.{digits}f}"
    return f"{low}{suffix}" if low == high else f"{low}-{high}{suffix}"


def _by(found: list[Bar]) -> tuple[dict[str, Bar], dict[str, Bar]]:
    """framewire's bars and the article's, each by transport (`HTTP`, `Redis`)."""
    ours = {b.label.split()[-1]: b for b in found if b.ours}
    theirs = {b.label.split()[-1]: b for b in found if not b.ours}
    return ours, theirs


def fast_answer(found: list[Bar]) -> str:
    """`Redis moves 1.3x HTTP's frames, 6.4-8.0x the article's design`."""
    ours, theirs = _by(found)
    parts = []
    if "HTTP" in ours and "Redis" in ours and ours["HTTP"].fps and ours["Redis"].fps:
        ratio = ours["Redis"].fps / ours["HTTP"].fps
        if ratio >= 1.05:
            parts.append(f"Redis moves {ratio:.1f}x HTTP's frames")
        elif ratio <= 1 / 1.05:
            parts.append(f"HTTP moves {1 / ratio:.1f}x Redis's frames")
        else:
            parts.append("HTTP and Redis move about as many frames")
    against = [ours[t].fps / theirs[t].fps for t in ours if t in theirs and theirs[t].fps]
    if against:
        parts.append(f"{span(against, suffix='x')} the article's design")
    return ", ".join(parts) or "framewire's paths, flat out"


def late_answer(found: list[Bar], limit_ms: float | None) -> str:
    """`A frame arrives in 5.8-6.3 ms (p50), 1.1-1.6 ms over the limit; the article's 12-39 ms`."""
    ours, theirs = _by(found)
    mine = [b.p50 for b in ours.values() if b.p50 is not None]
    others = [b.p50 for b in theirs.values() if b.p50 is not None]
    parts = []
    if mine:
        text = f"A frame arrives in {span(mine, suffix=' ms')} (p50)"
        if limit_ms:
            text += f", {span([p - limit_ms for p in mine], suffix=' ms')} over the limit"
        parts.append(text)
    if others:
        parts.append(f"the article's {span(others, 0, ' ms')}")
    return "; ".join(parts) or "latency, capture to received"


def cost_answer(found: list[Bar]) -> str:
    """`1.4-1.6x the codec floor; the article's design 1.9-3.7x`."""
    ours, theirs = _by(found)

    def over(group: dict[str, Bar]) -> list[float]:
        return [b.cpu_ms / b.floor_ms for b in group.values() if b.cpu_ms and b.floor_ms]

    text = f"{span(over(ours), suffix='x')} the codec floor" if over(ours) else "CPU per frame"
    if over(theirs):
        text += f"; the article's design {span(over(theirs), suffix='x')}"
    return text


def _codec_ms(codec: Mapping[str, Any], resolution: str, *keys: str) -> float | None:
    value: Any = codec.get(resolution, {})
    for key in keys:
        value = value.get(key) if isinstance(value, Mapping) else None
    return float(value) if isinstance(value, int | float) else None


def write_chart(
    path: Path, results: list[dict[str, Any]], codec: Mapping[str, Any] | None = None
) -> str:
    """chart.png: fast, late, cost at the headline resolution; `codec`: results.json's."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "skipped: matplotlib is not installed (pip install 'framewire[bench]')"
    resolution = headline_resolution(results)
    rate = camera_rate(results)
    flat = bars(results, resolution, 0.0) if resolution else []
    paced = bars(results, resolution, rate) if resolution and rate else []
    limit_ms = _codec_ms(codec or {}, resolution or "", "limit", "total_ms")
    panels = []
    if flat:
        panels.append(("fast", flat))
    if paced:
        panels += [("late", paced), ("cost", paced)]
    if not panels:
        return "skipped: no figures"
    figure, axes = plt.subplots(
        len(panels), 1, figsize=(10, 2.55 * len(panels) + 0.5), layout="constrained", squeeze=False
    )
    for (question, found), (axis,) in zip(panels, axes, strict=True):
        positions = list(range(len(found)))
        labels = [b.label for b in found]
        colours = [b.colour for b in found]
        if question == "fast":
            drawn = axis.barh(positions, [b.fps for b in found], color=colours)
            axis.bar_label(drawn, [f"{b.fps:.0f} fps" for b in found], padding=3, fontsize=8)
            axis.set_xlabel("frames per second received, source unthrottled  (higher is better)")
            title = f"How fast, flat out?  {fast_answer(found)}"
        elif question == "late":
            p95 = [b.p95 or 0.0 for b in found]
            axis.barh(positions, p95, color=colours, alpha=0.35)
            axis.barh(positions, [b.p50 or 0.0 for b in found], color=colours)
            axis.barh([0], [0], color="dimgrey", label="p50")  # legend keys in neutral grey
            axis.barh([0], [0], color="dimgrey", alpha=0.35, label="p95")
            text = [f"{fmt_ms(b.p50)} / {fmt_ms(b.p95)} ms" for b in found]
            for y, (x, label) in enumerate(zip(p95, text, strict=True)):
                axis.annotate(label, (x, y), xytext=(3, 0), textcoords="offset points",
                              va="center", fontsize=8)  # fmt: skip
            if limit_ms:
                axis.axvline(limit_ms, color="black", linestyle="--", linewidth=1,
                             label=f"physical limit {limit_ms:.1f} ms")  # fmt: skip
            axis.legend(fontsize=8, loc="upper right")
            axis.set_xlabel("latency, capture to received, ms: p50 / p95  (lower is better)")
            title = f"How late at {fmt_rate(rate or 0.0)}?  {late_answer(found, limit_ms)}"
        else:
            cpu = [b.cpu_ms or 0.0 for b in found]
            drawn = axis.barh(positions, cpu, color=colours)
            axis.bar_label(drawn, [f"{fmt_ms(b.cpu_ms)} ms" for b in found], padding=3, fontsize=8)
            floor = next((b.floor_ms for b in found if b.floor_ms), None)
            if floor:
                axis.axvline(floor, color="black", linestyle="--", linewidth=1,
                             label=f"codec floor {floor:.1f} ms")  # fmt: skip
                axis.legend(fontsize=8, loc="upper right")
            axis.set_xlabel(
                f"CPU ms per frame, every process, at {fmt_rate(rate or 0.0)}  (lower is better)"
            )
            title = f"What does a frame cost?  {cost_answer(found)}"
        axis.set_title(title, loc="left", fontsize=10, fontweight="bold")
        axis.set_yticks(positions, labels, fontsize=9)
        axis.set_ylim(len(found) - 0.5, -0.5)  # top to bottom
        axis.margins(x=0.18)  # room for the value labels
        axis.grid(axis="x", alpha=0.3)
        axis.set_axisbelow(True)
    figure.suptitle(
        f"framewire at {resolution}: HTTP against Redis against the article's design",
        fontsize=12,
    )
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return f"`{path.name}`"
