"""chart.png: fps and latency per mode, grouped by resolution and source rate (matplotlib)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any


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


def chart_groups(results: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Bars of the chart by `resolution @ rate`, one per transport of each mode, as measured.

    Takes whatever modes the results hold; a path of a combined scenario (such
    as `both`) is labelled with the scenario too.
    """
    groups: dict[str, list[dict[str, Any]]] = {}
    for result in results:
        for path in result.get("paths", []):
            mode = result["modes"][path["transport"]]
            label = f"{path['transport']} {mode}"
            if result["scenario"] != mode:
                label = f"{result['scenario']}: {label}"
            group = f"{result['resolution']} @ {fmt_rate(result['rate_fps'])}"
            received = path.get("received_ms") or {}
            groups.setdefault(group, []).append(
                {
                    "label": label,
                    "fps": path["fps"],
                    "viewer_fps": path.get("viewer_fps"),
                    "p50": received.get("p50"),
                    "p95": received.get("p95"),
                }
            )
    return groups


def write_chart(path: Path, results: list[dict[str, Any]]) -> str:
    """chart.png: fps (received, viewed) and p50/p95 per mode, grouped by resolution and rate."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "skipped: matplotlib is not installed (pip install 'framewire[bench]')"
    groups = chart_groups(results)
    if not groups:
        return "skipped: no figures"
    sizes = [len(bars) for bars in groups.values()]
    figure, axes = plt.subplots(
        len(groups),
        2,
        figsize=(13, max(3.0, 0.32 * sum(sizes) + 0.9 * len(groups) + 1.0)),
        gridspec_kw={"height_ratios": [size + 1.2 for size in sizes]},
        squeeze=False,
    )
    for (group, bars), (left, right) in zip(groups.items(), axes, strict=True):
        positions = list(range(len(bars)))
        left.barh(positions, [b["fps"] for b in bars], color="tab:blue", label="received")
        viewed = [b["viewer_fps"] or 0.0 for b in bars]
        left.barh(positions, viewed, height=0.35, color="tab:cyan", label="viewed")
        p95 = [b["p95"] or 0.0 for b in bars]
        right.barh(positions, p95, color="navajowhite", label="p95")
        right.barh(positions, [b["p50"] or 0.0 for b in bars], color="tab:orange", label="p50")
        left.set_yticks(positions, [b["label"] for b in bars], fontsize=8)
        right.set_yticks(positions, [""] * len(bars))
        left.set_ylabel(group, fontsize=9)
        for axis in (left, right):
            axis.set_ylim(len(bars) - 0.5, -0.5)  # top to bottom, no empty margins
            axis.grid(axis="x", alpha=0.3)
    axes[-1][0].set_xlabel("fps")
    axes[-1][1].set_xlabel("latency, capture to received (ms, exact per frame)")
    axes[0][0].legend(fontsize=8, loc="lower right")
    axes[0][1].legend(fontsize=8, loc="lower right")
    figure.suptitle("framewire bench: HTTP against Redis")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return f"`{path.name}`"
