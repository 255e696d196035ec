"""What a request body costs an HTTP receiver: peak worker memory under bodies at --max-body.

    .venv/bin/python scripts/body_memory.py [--mode raw|form-base64] [--at-once 48]

Starts an HTTP receiver on loopback (ours, stopped by PID) with its defaults, sends one
small frame, then `--rounds` rounds of `--at-once` POSTs at once of a body of about
--max-body (2 MiB): a 1920x1080 JPEG of noise (raw), or the base64 form of the largest one
whose form fits (form-base64). Prints the worker's peak RSS (VmHWM) before and after, and
the growth per request in units of --max-body, as JSON.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

import cv2
import numpy as np
import psutil
import requests

from framewire.frame import Frame
from framewire.transports import http as wire
from framewire_bench.stack import Services

MAX_BODY = 2 * 1024 * 1024


def noisy_jpeg(limit: int) -> bytes:
    """A 1920x1080 JPEG of noise, as large as fits in `limit` bytes."""
    image = np.random.default_rng(1).integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    for quality in range(100, 10, -1):
        ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok and len(buffer) <= limit:
            return buffer.tobytes()
    raise SystemExit(f"no JPEG under {limit} bytes")


def peak_kib(pid: int) -> int:
    """The process's peak resident memory (VmHWM), KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise SystemExit("no VmHWM in /proc")


def post(url: str, mode: str, jpeg: bytes, seq: int) -> int:
    frame = Frame("cam0", seq, time.time_ns(), jpeg)
    if mode == "raw":
        return requests.post(url, data=jpeg, headers=wire.headers(frame), timeout=30).status_code
    body = urlencode(wire.form_fields(frame)).encode()
    headers = {"Content-Type": wire.FORM_TYPE}
    return requests.post(url, data=body, headers=headers, timeout=30).status_code


def measure(directory: Path, mode: str, at_once: int, rounds: int) -> dict[str, object]:
    services = Services(directory)
    try:
        receiver = services.receiver("http", "--peer-port", "0")
        worker = next(iter(psutil.Process(receiver.proc.pid).children())).pid
        url = f"{receiver.url}/frames"
        jpeg = noisy_jpeg(MAX_BODY if mode == "raw" else int(MAX_BODY * 0.7))
        small = noisy_jpeg(MAX_BODY // 8)
        assert post(url, mode, small, 1) == 204
        before = peak_kib(worker)
        with ThreadPoolExecutor(at_once) as pool:
            for n in range(rounds):
                seqs = range(2 + n * at_once, 2 + (n + 1) * at_once)
                codes = set(pool.map(lambda s: post(url, mode, jpeg, s), seqs))
                assert codes == {204}, codes
        after = peak_kib(worker)
    finally:
        services.stop_all()
    grown_mib = (after - before) / 1024
    return {
        "mode": mode,
        "jpeg_bytes": len(jpeg),
        "requests_at_once": at_once,
        "rounds": rounds,
        "peak_rss_mib": {"before": round(before / 1024), "after": round(after / 1024)},
        "grown_mib": round(grown_mib),
        "grown_per_request_in_max_body": round(grown_mib / at_once / (MAX_BODY / 2**20), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["raw", "form-base64"], default="raw")
    parser.add_argument("--at-once", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="framewire-body-memory-") as directory:
        result = measure(Path(directory), args.mode, args.at_once, args.rounds)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
