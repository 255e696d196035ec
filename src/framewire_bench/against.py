"""framewire against the article's design and against the codec floor and physical limit.

`comparisons` pairs framewire's default mode with the article's whole design
wherever both ran alike; `summary` is the report's compact table per
transport: fps unthrottled and p50 at 30 fps against the article's, CPU per
viewed frame over the floor, and p50 over the physical limit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from framewire_bench.chart import fmt_ms, fmt_number, fmt_rate
from framewire_bench.codec_report import over_limit

# framewire's default mode against the article's whole design (bench/article.py), per transport.
ARTICLE_PAIRS = (("http", "raw", "article-http"), ("redis", "stream", "article-redis"))
ARTICLE_NOTE = (
    "`article-http` and `article-redis` run the article's whole design step by step "
    "(bench/article.py: raw frames on a LIFO queue trimmed to 3, a 10 ms sleep at the top of "
    "every send loop, the JPEG encoded by the sending thread; a base64 form post on a new "
    "connection to Flask's development server, whose route resizes to 600x600 and sleeps "
    "10 ms before it answers; or GET result, DEL, SET, PUBLISH and the receive-time key "
    "polled every 10 ms), with no viewer: their `served` is capture to taken by the display "
    "loop. Ratios are framewire's / the article's."
)


def find_result(
    results: list[dict[str, Any]], mode: str, resolution: str, fps: float
) -> dict[str, Any] | None:
    """The figures of scenario `mode` at `resolution` and `fps`, if measured without error."""
    for result in results:
        if (
            result["scenario"] == mode
            and result["resolution"] == resolution
            and result["rate_fps"] == fps
            and "error" not in result
        ):
            return result
    return None


def find_path(
    results: list[dict[str, Any]], mode: str, resolution: str, fps: float, transport: str
) -> dict[str, Any] | None:
    """The figures of `transport` in scenario `mode` at `resolution` and `fps`, if measured."""
    result = find_result(results, mode, resolution, fps)
    for path in (result or {}).get("paths", []):
        if path["transport"] == transport:
            return path
    return None


def _ratio(ours: float | None, theirs: float | None) -> float | None:
    if ours is None or theirs is None:
        return None
    return ours / theirs if theirs else None


def comparisons(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """framewire's default mode against the article's design, wherever both were measured alike."""
    found = []
    settings = dict.fromkeys((r["resolution"], r["rate_fps"]) for r in results)
    for resolution, fps in settings:
        for transport, ours_mode, theirs_mode in ARTICLE_PAIRS:
            ours = find_path(results, ours_mode, resolution, fps, transport)
            theirs = find_path(results, theirs_mode, resolution, fps, transport)
            if ours is None or theirs is None:
                continue
            ours_p50, theirs_p50 = ours["received_ms"]["p50"], theirs["received_ms"]["p50"]
            found.append(
                {
                    "transport": transport,
                    "ours": ours_mode,
                    "theirs": theirs_mode,
                    "resolution": resolution,
                    "rate_fps": fps,
                    "fps": [ours["fps"], theirs["fps"]],
                    "fps_ratio": _ratio(ours["fps"], theirs["fps"]),
                    "p50_ms": [ours_p50, theirs_p50],
                    "p50_ratio": _ratio(ours_p50, theirs_p50),
                }
            )
    return found


def _times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def comparison_table(found: list[dict[str, Any]]) -> list[str]:
    """Markdown rows: fps and p50 of ours against theirs, with the ratios."""
    lines = [
        "| transport | ours against the article's | resolution | rate | fps | fps ratio "
        "| p50 ms | p50 ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for item in found:
        fps, p50 = item["fps"], item["p50_ms"]
        lines.append(
            f"| {item['transport']} | `{item['ours']}` against `{item['theirs']}` "
            f"| {item['resolution']} | {fmt_rate(item['rate_fps'])} "
            f"| {fps[0]:.1f} against {fps[1]:.1f} | {_times(item['fps_ratio'])} "
            f"| {fmt_ms(p50[0])} against {fmt_ms(p50[1])} | {_times(item['p50_ratio'])} |"
        )
    return lines


def summary(results: list[dict[str, Any]], codec: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per resolution and transport: ours against the article's design and the codec limits.

    fps unthrottled and p50 at 30 fps of framewire's default mode against the
    article's design (ratios ours / theirs), CPU per viewed frame over the
    floor of each at 30 fps, and our 30 fps p50 less the physical limit.
    """

    def figure(mode: str, resolution: str, fps: float, transport: str, key: str) -> Any:
        path = find_path(results, mode, resolution, fps, transport)
        if path is None:
            return None
        return path["fps"] if key == "fps" else path["received_ms"]["p50"]

    rows = []
    for resolution in dict.fromkeys(r["resolution"] for r in results):
        limit = ((codec.get(resolution) or {}).get("limit") or {}).get("total_ms")
        for transport, ours, theirs in ARTICLE_PAIRS:
            modes = (ours, theirs)
            fps = [figure(m, resolution, 0.0, transport, "fps") for m in modes]
            p50 = [figure(m, resolution, 30.0, transport, "p50") for m in modes]
            if all(v is None for v in (*fps, *p50)):
                continue
            found = [find_result(results, m, resolution, 30.0) for m in modes]
            rows.append(
                {
                    "transport": transport,
                    "resolution": resolution,
                    "ours": ours,
                    "theirs": theirs,
                    "fps": fps,
                    "fps_ratio": _ratio(*fps),
                    "p50_ms": p50,
                    "p50_ratio": _ratio(*p50),
                    "cpu_over_floor": [(r or {}).get("cpu_over_floor") for r in found],
                    "limit_ms": limit,
                    "over_limit_ms": None if p50[0] is None or not limit else p50[0] - limit,
                }
            )
    return rows


def summary_table(rows: list[dict[str, Any]], codec: Mapping[str, Any]) -> list[str]:
    """Markdown lines of `summary` (nothing when neither transport was measured)."""
    if not rows:
        return []

    def pair(values: list[float | None], ratio: float | None, digits: int) -> str:
        ours, theirs = (fmt_number(v, digits) for v in values)
        return f"{ours} / {theirs}" + (f" ({ratio:.2f}x)" if ratio is not None else "")

    lines = [
        "## Summary",
        "",
        "framewire's default mode (HTTP `raw`, Redis `stream`) against the article's design "
        "(`article-http`, `article-redis`) in this run, ours / the article's (ratio ours / "
        "theirs); CPU per viewed frame over the codec floor; received p50 at 30 fps less "
        "the physical limit (encode + loopback transfer + decode of one frame in one process).",
        "",
        "| transport | resolution | fps unthrottled | p50 ms at 30 fps | CPU / floor at 30 fps "
        "| p50 at 30 fps over the limit |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        cpu = " / ".join(fmt_number(v, 1, "x") for v in row["cpu_over_floor"])
        lines.append(
            f"| {row['transport']} `{row['ours']}` against `{row['theirs']}` "
            f"| {row['resolution']} | {pair(row['fps'], row['fps_ratio'], 1)} "
            f"| {pair(row['p50_ms'], row['p50_ratio'], 1)} | {cpu} "
            f"| {over_limit(row['p50_ms'][0], codec.get(row['resolution']))} |"
        )
    return [*lines, ""]
