"""Readers of what framewire services serve: MJPEG streams, Prometheus text, /latencies.

The one copy the bench and the tests share.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import requests

from framewire_bench.stack import StackError

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


class MjpegStream:
    """A multipart/x-mixed-replace response, read as raw chunks or as JPEG parts."""

    def __init__(self, response: requests.Response) -> None:
        content_type = response.headers.get("Content-Type", "")
        if not content_type.startswith("multipart/x-mixed-replace") or "boundary=" not in (
            content_type
        ):
            raise StackError(f"not an MJPEG stream: Content-Type {content_type!r}")
        self.response = response
        self.boundary = b"--" + content_type.split("boundary=")[1].encode()

    def chunks(self) -> Iterator[bytes]:
        return self.response.iter_content(chunk_size=65536)

    def parts(self, count: int, max_bytes: int = 50_000_000) -> list[bytes]:
        """The bodies of the next `count` parts; StackError after `max_bytes` without them."""
        buffer, parts, read = b"", [], 0
        for chunk in self.chunks():
            buffer += chunk
            read += len(chunk)
            while True:
                start = buffer.find(self.boundary)
                end = buffer.find(self.boundary, start + len(self.boundary))
                if start < 0 or end < 0:
                    break
                _, _, body = buffer[start + len(self.boundary) : end].partition(b"\r\n\r\n")
                if body:
                    parts.append(body.removesuffix(b"\r\n"))
                buffer = buffer[end:]
                if len(parts) >= count:
                    return parts
            if read >= max_bytes:
                raise StackError(f"{len(parts)} of {count} parts in {read} bytes of stream")
        return parts


def mjpeg_parts(
    response: requests.Response, count: int, max_bytes: int = 50_000_000
) -> list[bytes]:
    """The bodies of the next `count` parts of an MJPEG response."""
    return MjpegStream(response).parts(count, max_bytes)


class Viewer(threading.Thread):
    """An MJPEG client reading 64 KiB at a time, `fps` times a second (0: as fast as it can).

    Connects on construction; `start()` begins reading. `parts` counts the
    boundaries seen (one per part received, also across chunk edges), `bytes`
    what was read.
    """

    def __init__(self, url: str, fps: float = 0) -> None:
        super().__init__(daemon=True, name="mjpeg-viewer")
        self.response = requests.get(url, stream=True, timeout=30)
        self.response.raise_for_status()
        self.stream = MjpegStream(self.response)
        self.fps = fps
        self.parts = 0
        self.bytes = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        keep = len(self.stream.boundary) - 1  # a boundary may straddle two chunks
        tail = b""
        try:
            for chunk in self.stream.chunks():
                seen = tail + chunk
                self.parts += seen.count(self.stream.boundary)
                tail = seen[-keep:]
                self.bytes += len(chunk)
                if self.stopped.is_set():
                    return
                if self.fps:
                    self.stopped.wait(1 / self.fps)
        except (requests.RequestException, AttributeError, ValueError):
            pass  # closed under us

    def close(self) -> None:
        self.stopped.set()
        self.response.close()
        if self.is_alive():
            self.join(timeout=5)


def parse_metrics(text: str) -> Samples:
    """Prometheus text -> {(sample name, sorted labels): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def select(samples: Samples, name: str, **labels: str) -> list[tuple[dict[str, str], float]]:
    """The series called `name` whose labels include `labels`."""
    found = []
    for (sample_name, sample_labels), value in samples.items():
        as_dict = dict(sample_labels)
        if sample_name == name and all(as_dict.get(k) == v for k, v in labels.items()):
            found.append((as_dict, value))
    return found


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the matching series."""
    return sum(value for _, value in select(samples, name, **labels))


def metric_value(text: str, name: str, **labels: str) -> float:
    """The value of the first sample of `name` with `labels` in Prometheus text; 0 when absent."""
    found = select(parse_metrics(text), name, **labels)
    return float(found[0][1]) if found else 0.0


def read_metrics(url: str) -> Samples:
    """Every sample of `url`/metrics."""
    response = requests.get(f"{url}/metrics", timeout=5)
    response.raise_for_status()
    return parse_metrics(response.text)


def read_latencies(url: str, stage: str, camera: str = "", since: int = 0) -> dict[str, Any]:
    """`url`/latencies of one stage (and camera; default: the receiver's default camera)."""
    params = {"stage": stage, "since": str(since), **({"camera": camera} if camera else {})}
    response = requests.get(f"{url}/latencies", params=params, timeout=5)
    response.raise_for_status()
    return response.json()


def scrape(url: str, name: str, **labels: str) -> float:
    """The value of one sample of `url`/metrics; 0 when absent."""
    return metric_value(requests.get(f"{url}/metrics", timeout=5).text, name, **labels)
