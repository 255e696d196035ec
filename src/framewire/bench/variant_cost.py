"""What a viewer costs: bytes per second and receiver CPU of one MJPEG stream, by variant.

    .venv/bin/python scripts/variant_cost.py [--seconds 10]

`measure_stream` reads one stream for a window (one viewer, as fast as it
can) and reports its bytes and parts per second, the part size, and the CPU
the receiver used meanwhile (user + system, % of one core, the gunicorn
worker included); `measure_idle` is the same window with no viewer, the
ingest's own cost. `run` starts an HTTP receiver and a synthetic 1280x720
30 fps sender on loopback and measures: no viewer, the full stream and the
640 px 10 fps variant (also at quality 50).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import requests

from framewire.bench.measure import cpu_percent, cpu_seconds
from framewire.bench.readers import MjpegStream
from framewire.bench.stack import Service, Services, wait_until

STREAMS = {
    "full": "",
    "640 px 10 fps": "?width=640&fps=10",
    "640 px 10 fps quality 50": "?width=640&fps=10&quality=50",
}


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


def run(directory: Path, seconds: float = 10.0) -> dict[str, Any]:
    """Start a receiver and a 1280x720 30 fps sender; measure no viewer, then each STREAMS."""
    services = Services(directory)
    try:
        receiver = services.receiver("http")
        services.sender("--http-url", f"{receiver.url}/frames", "--fps", "30")

        def live() -> bool:
            stats = requests.get(f"{receiver.url}/stats", timeout=5).json()
            return stats["cameras"]["cam0"]["state"] == "live"

        wait_until(live, what="frames at the receiver")
        results: dict[str, Any] = {"no viewer": measure_idle(receiver, seconds)}
        for name, query in STREAMS.items():
            results[name] = measure_stream(receiver, query, seconds)
        full = results["full"]["bytes_per_second"]
        for name in list(STREAMS)[1:]:
            small = results[name]
            small["share_of_full_bytes"] = round(small["bytes_per_second"] / full, 4)
            small["goal_met"] = small["bytes_per_second"] <= full / 8  # at most 1/8 of full
        return results
    finally:
        services.stop_all()
