"""The report's codec section: the floor, each JPEG library's table, the physical limit."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# (results.json key, column) of each library table, in order.
LIBRARY_COLUMNS = (
    ("encode_ms", "encode ms"),
    ("encode_rst_ms", "encode, restart every MCU row ms"),
    ("decode_ms", "decode ms"),
    ("decode_half_ms", "decode at 1/2 scale ms"),
    ("bytes", "bytes/frame"),
)
STEP_NAMES = {"encode": "encode", "decode": "decode", "decode_half": "decode at 1/2 scale"}


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _kib(value: float | None) -> str:
    return "-" if value is None else f"{value / 1024:.1f} KiB"


def _timed(figures: Mapping[str, Any], key: str) -> str:
    """`2.01 (1.95 CPU)`: a step's median wall time and, when taken, its median CPU time."""
    cpu = figures.get(key.replace("_ms", "_cpu_ms"))
    return _ms(figures.get(key)) + ("" if cpu is None else f" ({cpu:.2f} CPU)")


def _cost(figures: Mapping[str, Any], step: str) -> str:
    """`1.95 ms CPU`, or the wall time where no CPU time was taken."""
    cpu = figures.get(f"{step}_cpu_ms")
    return f"{cpu:.2f} ms CPU" if cpu is not None else f"{_ms(figures.get(f'{step}_ms'))} ms"


def floor_lines(codec: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The codec floor per resolution, with the libraries framewire uses at each step."""
    used = next((c["floor_libraries"] for c in codec.values() if "floor_libraries" in c), None)
    used = used or {"encode": "cv2", "decode": "simplejpeg", "viewer": "cv2"}
    lines = [
        "## Codec cost (in-process, median of 50 frames)",
        "",
        f"The floor, with the libraries framewire uses: {used['encode']} encode at quality 80 "
        f"(sender), {used['decode']} strict decode to BGR (receiver), {used['viewer']} encode "
        "of the decoded frame at quality 80 (receiver, for viewers). `viewer splice ms` is "
        "what framewire's receivers do instead for the full-size stream: the annotation's band "
        "re-encoded and spliced into the sender's JPEG (restart markers every MCU row), "
        "against `viewer full ms`, the full encode of the same annotated frame.",
        "",
        "| resolution | encode ms | decode ms | encode + decode ms | viewer encode ms "
        "| floor ms | viewer splice ms | viewer full ms | bytes/frame |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for resolution, cost in codec.items():
        lines.append(
            f"| {resolution} | {cost['encode_ms']:.2f} | {cost['decode_ms']:.2f} | "
            f"{cost['total_ms']:.2f} | {_ms(cost.get('viewer_encode_ms'))} | "
            f"{_ms(cost.get('floor_ms'))} | {_ms(cost.get('viewer_splice_ms'))} | "
            f"{_ms(cost.get('viewer_full_ms'))} | {_kib(cost['bytes'])} |"
        )
    return [*lines, ""]


CHOICE = (
    "framewire decodes with simplejpeg (strict) and encodes with cv2, at the sender and for "
    "viewers: cv2 is the only one of these that sets a restart interval, which the band splice "
    "needs, and its encode is within a few percent of the fastest at the same quality."
)


def library_lines(codec: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One table per JPEG library (rows by resolution), then the fastest at each step."""
    measured = {res: c for res, c in codec.items() if c.get("libraries")}
    if not measured:
        return []
    names = list(dict.fromkeys(n for c in measured.values() for n in c["libraries"]))
    first = next(iter(measured.values()))
    lines = [
        "## JPEG libraries (in-process, median of 50 frames, the same frames for each)",
        "",
        f"Quality {first['quality']}, {first['subsampling']} chroma subsampling, BGR in and out; "
        "medians of wall time and, in brackets, of the thread's CPU time (what the library "
        "costs, whatever else the machine runs); "
        "the libraries take turns on each frame (each first in turn). Every library decodes the"
        " same bytes (cv2's encode of each frame, as the sender makes them); simplejpeg and "
        "turbojpeg decode strictly (a warning is an error, as the receivers decode), cv2 does "
        "not. The restart encode puts a restart marker after every MCU row "
        "(`cv2.IMWRITE_JPEG_RST_INTERVAL` = ceil(width / 16)), as band splicing needs; only cv2"
        " exposes it. The 1/2-scale decode scales in the DCT (cv2 `IMREAD_REDUCED_COLOR_2`, "
        "simplejpeg `min_width` and `min_height`, turbojpeg `scaling_factor=(1, 2)`), what a "
        "reduced variant needs.",
        "",
    ]
    columns = " | ".join(label for _, label in LIBRARY_COLUMNS)
    for name in names:
        figures = [(res, c["libraries"].get(name)) for res, c in measured.items()]
        version = next((f["version"] for _, f in figures if f and f.get("available")), None)
        lines += [f"### {name}" + (f" {version}" if version else ""), ""]
        missing = [f for _, f in figures if not f or not f.get("available")]
        if len(missing) == len(figures):
            reason = next((f["reason"] for f in missing if f), "not available")
            lines += [reason, ""]
            continue
        lines += [f"| resolution | {columns} |", "|---|" + "---|" * len(LIBRARY_COLUMNS)]
        for resolution, found in figures:
            if not found or not found.get("available"):
                lines.append(
                    f"| {resolution} | not available |" + " |" * (len(LIBRARY_COLUMNS) - 1)
                )
                continue
            cells = [
                _kib(found.get(key)) if key == "bytes" else _timed(found, key)
                for key, _ in LIBRARY_COLUMNS
            ]
            lines.append(f"| {resolution} | " + " | ".join(cells) + " |")
        lines.append("")
    for resolution, cost in measured.items():
        picks = ", ".join(
            f"{STEP_NAMES[step]} **{name}** ({_cost(cost['libraries'][name], step)})"
            for step, name in cost["fastest"].items()
            if name is not None
        )
        lines.append(f"Fastest at {resolution} (by median CPU time): {picks or 'none measured'}.")
    lines += ["", CHOICE]
    return [*lines, ""]


def limit_lines(codec: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The physical limit per resolution: encode + loopback transfer + decode of one frame."""
    measured = {res: c["limit"] for res, c in codec.items() if c.get("limit")}
    if not measured:
        return []
    used = next(iter(measured.values()))["libraries"]
    lines = [
        "## Physical limit",
        "",
        f"In one process: {used['encode']} encode of a frame, its bytes over a loopback TCP "
        f"connection (127.0.0.1, Nagle off) to a thread that receives them all and "
        f"{used['decode']}-decodes them, then answers one byte; median of 50 frames. No "
        "transport can deliver a frame faster; `p50 over the limit` in the tables below is "
        "each transport's received p50 less this.",
        "",
        "| resolution | encode ms | loopback transfer ms | decode ms | limit ms |",
        "|---|---|---|---|---|",
    ]
    for resolution, limit in measured.items():
        lines.append(
            f"| {resolution} | {_ms(limit['encode_ms'])} | {_ms(limit['transfer_ms'])} "
            f"| {_ms(limit['decode_ms'])} | {_ms(limit['total_ms'])} |"
        )
    return [*lines, ""]


def over_limit(p50: float | None, codec: Mapping[str, Any] | None) -> str:
    """`+1.2 ms (1.3x)`: a received p50 above its resolution's physical limit."""
    limit = ((codec or {}).get("limit") or {}).get("total_ms")
    if p50 is None or not limit:
        return "-"
    return f"{p50 - limit:+.1f} ms ({p50 / limit:.1f}x)"


def codec_lines(codec: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The whole codec section of results.md."""
    return [*floor_lines(codec), *library_lines(codec), *limit_lines(codec)]
