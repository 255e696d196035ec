"""Small helpers shared by tests (importable by receivers started with PYTHONPATH=tests)."""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import requests


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


def mjpeg_parts(response, count: int, max_bytes: int = 50_000_000) -> list[bytes]:
    """Read `count` JPEG parts from a multipart/x-mixed-replace response."""
    content_type = response.headers["Content-Type"]
    assert content_type.startswith("multipart/x-mixed-replace"), content_type
    boundary = b"--" + content_type.split("boundary=")[1].encode()
    buffer, parts, read = b"", [], 0
    for chunk in response.iter_content(chunk_size=65536):
        buffer += chunk
        read += len(chunk)
        while True:
            start = buffer.find(boundary)
            end = buffer.find(boundary, start + len(boundary))
            if start < 0 or end < 0:
                break
            part = buffer[start + len(boundary) : end]
            _, _, body = part.partition(b"\r\n\r\n")
            if body:
                parts.append(body[:-2] if body.endswith(b"\r\n") else body)
            buffer = buffer[end:]
            if len(parts) >= count:
                return parts
        assert read < max_bytes, "stream did not yield enough parts"
    return parts


class Viewer(threading.Thread):
    """An MJPEG client reading 64 KiB at a time, `fps` times a second (0: as fast as it can)."""

    def __init__(self, url: str, fps: float = 0) -> None:
        super().__init__(daemon=True)
        self.response = requests.get(url, stream=True, timeout=30)
        boundary = self.response.headers["Content-Type"].split("boundary=")[1]
        self.boundary = b"--" + boundary.encode()
        self.fps = fps
        self.parts = 0  # boundaries seen: one per part received
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            for chunk in self.response.iter_content(chunk_size=65536):
                self.parts += chunk.count(self.boundary)
                if self.stopped.is_set():
                    return
                if self.fps:
                    self.stopped.wait(1 / self.fps)
        except (requests.RequestException, AttributeError, ValueError):
            pass  # closed under us at the end of the test

    def close(self) -> None:
        self.stopped.set()
        self.response.close()
