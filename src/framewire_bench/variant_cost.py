"""`framewire bench --variant-cost`: what one viewer costs, by variant: bytes/s and receiver CPU.

`measure_stream` reads one stream for a window (one viewer, as fast as it
can) and reports its bytes and parts per second, the part size, and the CPU
the receiver used meanwhile (user + system, % of one core, the gunicorn
worker included); `measure_idle` is the same window with no viewer, the
ingest's own cost. `run` starts an HTTP receiver and a synthetic sender
(1280x720 at 30 fps unless told otherwise) on loopback and measures, one
window each: no viewer, the full stream, the 640 px 10 fps variant and the
same at quality 50 (`STREAMS`). `measure_all` takes the window's measurement
as a function, so its logic runs without services. `run_mode` writes
results.json (`variant_cost`) and results.md (`markdown`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import click
import requests

from framewire_bench.measure import cpu_percent, cpu_seconds
from framewire_bench.readers import MjpegStream
from framewire_bench.run import Run, heading, write
from framewire_bench.stack import Service, Services, StackError, wait_until

IDLE = "no viewer"
STREAMS = {
    "full": "",
    "640 px 10 fps": "?width=640&fps=10",
    "640 px 10 fps quality 50": "?width=640&fps=10&quality=50",
}
# One window: the query of a stream (None: no viewer) and its seconds -> the figures.
Window = Callable[[str | None, float], dict[str, Any]]


def measure_idle(receiver: Service, seconds: float) -> dict[str, Any]:
    """The receiver's CPU over `seconds` with no viewer."""
    before, started = cpu_seconds(receiver.proc.pid), time.monotonic()
    time.sleep(seconds)  # a measurement window, not a wait for a condition
    elapsed = time.monotonic() - started
    return {"cpu_percent": round(cpu_percent(before, cpu_seconds(receiver.proc.pid), elapsed), 1)}


def measure_stream(receiver: Service, query: str, seconds: float) -> dict[str, Any]:
    """One viewer of `/stream.mjpg{query}` for `seconds`: bytes/s, parts/s, receiver CPU."""
    response = requests.get(f"{receiver.url}/stream.mjpg{query}", stream=True, timeout=10)
    response.raise_for_status()
    stream = MjpegStream(response)
    chunks = stream.chunks()
    next(chunks)  # the stream is open and flowing
    read, parts, tail = 0, 0, b""
    before, started = cpu_seconds(receiver.proc.pid), time.monotonic()
    for chunk in chunks:
        read += len(chunk)
        seen = tail + chunk
        parts += seen.count(stream.boundary)
        tail = seen[-(len(stream.boundary) - 1) :]
        if time.monotonic() - started >= seconds:
            break
    elapsed = time.monotonic() - started
    used = cpu_percent(before, cpu_seconds(receiver.proc.pid), elapsed)
    response.close()
    return {
        "bytes_per_second": round(read / elapsed),
        "parts_per_second": round(parts / elapsed, 2),
        "bytes_per_part": round(read / max(parts, 1)),
        "cpu_percent": round(used, 1),
    }


def measure_all(window: Window, seconds: float) -> dict[str, Any]:
    """No viewer, then each of STREAMS in turn; each variant's bytes as a share of the full's."""
    results: dict[str, Any] = {IDLE: window(None, seconds)}
    for name, query in STREAMS.items():
        results[name] = window(query, seconds)
    full = results["full"]["bytes_per_second"]
    for name in list(STREAMS)[1:]:
        share = results[name]["bytes_per_second"] / full if full else None
        results[name]["share_of_full_bytes"] = None if share is None else round(share, 4)
    return results


def run(
    directory: Path, seconds: float = 10.0, size: tuple[int, int] = (1280, 720), fps: float = 30
) -> dict[str, Any]:
    """Start a receiver and a synthetic sender of `size` at `fps`; measure every window."""
    services = Services(directory)
    try:
        receiver = services.receiver("http")
        camera = ["--width", str(size[0]), "--height", str(size[1]), "--fps", f"{fps:g}"]
        services.sender("--http-url", f"{receiver.url}/frames", *camera)

        def live() -> bool:
            stats = requests.get(f"{receiver.url}/stats", timeout=5).json()
            return stats["cameras"].get("cam0", {}).get("state") == "live"

        wait_until(live, what="frames at the receiver")

        def window(query: str | None, length: float) -> dict[str, Any]:
            if query is None:
                return measure_idle(receiver, length)
            return measure_stream(receiver, query, length)

        return measure_all(window, seconds)
    finally:
        services.stop_all()


def _cell(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def markdown(report: Mapping[str, Any]) -> str:
    """results.md of the mode: what one viewer costs, per stream."""
    options, figures = report["options"], report["variant_cost"]
    lines = [
        *heading("framewire bench: what one viewer costs", report),
        f"One HTTP receiver, one synthetic camera ({options['camera_size']} at "
        f"{options['camera_fps']:g} fps, quality 80), one viewer at a time reading as fast as "
        f"it can for {options['duration']:g} s per stream; receiver CPU in % of one core (its "
        "gunicorn worker included). The first row is the ingest alone.",
        "",
        "| stream | bytes/s | parts/s | bytes/part | receiver CPU (% of a core) |",
        "|---|---|---|---|---|",
    ]
    for name, row in figures.items():
        query = STREAMS.get(name)
        label = f"`{query}`" if query else name
        size = _cell(row.get("bytes_per_second"))
        if row.get("share_of_full_bytes") is not None:
            size += f" ({100 * row['share_of_full_bytes']:.1f} % of full)"
        lines.append(
            f"| {label} | {size} | {_cell(row.get('parts_per_second'), 1)} "
            f"| {_cell(row.get('bytes_per_part'))} | {_cell(row['cpu_percent'], 1)} |"
        )
    return "\n".join([*lines, ""])


def run_mode(out: Path, duration: float, size: tuple[int, int], fps: float) -> None:
    """`framewire bench --variant-cost`: one window per stream (`run`), then its report."""
    bench = Run(out, f"variant cost, {duration:g} s per stream")
    try:
        figures = run(bench.logs, duration, size, fps)
    except (StackError, requests.RequestException, OSError) as exc:
        raise click.ClickException(f"variant cost: {exc}") from None
    report = bench.report(
        "variant-cost",
        options={"duration": duration, "camera_size": f"{size[0]}x{size[1]}", "camera_fps": fps},
        variant_cost=figures,
        results=[],  # the scenario matrix's list: none in this mode
    )
    bench.finish(write(out, report, markdown))
