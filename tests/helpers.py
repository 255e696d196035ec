"""Small helpers shared by tests (importable by receivers started with PYTHONPATH=tests)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np
import requests
from flask import Flask

from framewire import grid as grid_module
from framewire.frame import Frame
from framewire.transports import http as http_wire
from framewire_bench.readers import Viewer, mjpeg_parts, read_latencies
from framewire_bench.stack import Service, wait_until

__all__ = [
    "Viewer",
    "claiming",
    "decode",
    "make_jpeg",
    "mjpeg_parts",
    "post_frame",
    "received_fps",
    "tiles",
    "write_clip",
]


def post_frame(
    url: str, camera: str, jpeg: bytes, seq: int = 1, token: str | None = None
) -> requests.Response:
    """POST one frame to a receiver at `url` as the wire contract says (now as capture time)."""
    headers = http_wire.headers(Frame(camera, seq, time.time_ns(), jpeg))
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return requests.post(f"{url}/frames", data=jpeg, headers=headers, timeout=10)


def make_jpeg(width: int = 320, height: int = 240, seed: int = 0, quality: int = 80) -> bytes:
    """A real JPEG of a textured picture."""
    rng = np.random.default_rng(seed)
    image = cv2.resize(
        rng.integers(0, 256, (height // 8, width // 8, 3), dtype=np.uint8), (width, height)
    )
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buffer.tobytes()


def claiming(jpeg: bytes, width: int, height: int) -> bytes:
    """`jpeg` with its frame header rewritten to claim other dimensions (a decompression bomb)."""
    data = bytearray(jpeg)
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


def decode(jpeg: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not a decodable JPEG"
    return image


class Slow:
    """A processing step slower than the source: 0.2 s per frame."""

    def __call__(self, image: np.ndarray) -> np.ndarray:
        time.sleep(0.2)
        return image


def received_fps(receiver: Service, camera: str, start_ns: int, seconds: float) -> float:
    """Frames captured in [start, start + seconds) that reached `receiver`, per second.

    Waits until a frame captured after the window has arrived (so the window is complete).
    """
    end_ns = start_ns + int(seconds * 1e9)

    def captured() -> list[int]:
        return read_latencies(receiver.url, "received", camera)["captured_ns"]

    wait_until(
        lambda: captured() and captured()[-1] >= end_ns,
        timeout=seconds + 15,
        what=f"{camera} frames captured after the window at {receiver.name}",
    )
    return sum(start_ns <= ns < end_ns for ns in captured()) / seconds


def ends_at_shutdown(app: Flask, parts: Iterator[bytes], timeout: float = 5.0) -> bool:
    """Whether a streaming response's `parts` end once the app shuts down (read on a thread)."""
    ended = threading.Event()

    def drain() -> None:
        for _ in parts:
            pass
        ended.set()

    threading.Thread(target=drain, daemon=True).start()
    app.extensions["framewire.shutdown"]()
    return ended.wait(timeout)


def live(receiver: Service, cameras: Iterable[str]) -> bool:
    """Whether every one of `cameras` is live (a fresh frame) at `receiver`, by its /stats."""
    stats = requests.get(f"{receiver.url}/stats", timeout=5).json()["cameras"]
    return all(stats.get(camera, {}).get("state") == "live" for camera in cameras)


def tiles(image: np.ndarray, count: int) -> list[np.ndarray]:
    """The `count` tiles of a grid picture, in camera order (framewire.grid's layout)."""
    columns, _, width, height = grid_module.layout(count)
    found = []
    for index in range(count):
        row, column = divmod(index, columns)
        found.append(
            image[row * height : (row + 1) * height, column * width : (column + 1) * width]
        )
    return found


def write_clip(
    path: Path, frames: int = 10, fps: float = 50.0, size: tuple[int, int] = (160, 120)
) -> Path:
    """An MJPEG video file at `path` (`size` (width, height), 160x120 by default; each frame
    one grey level brighter)."""
    writer = cv2.VideoWriter(
        str(path), cv2.CAP_OPENCV_MJPEG, cv2.VideoWriter_fourcc(*"MJPG"), fps, size
    )
    assert writer.isOpened()
    for i in range(frames):
        image = np.full((size[1], size[0], 3), i * 20 % 256, np.uint8)
        writer.write(image)
    writer.release()
    return path
