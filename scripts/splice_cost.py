"""What the band splice saves the viewer's encode, and what restart markers cost the sender.

    .venv/bin/python scripts/splice_cost.py [--frames 100] [--width 1280 --height 720]

In one process, on synthetic frames at quality 80, each step timed on the same frame in
alternating order (so drift of a loaded machine hits both sides alike): the sender's cv2
encode without and with a restart marker every MCU row (time, bytes), the receiver's
strict simplejpeg decode of each, and for the annotated frame the viewer's full cv2 encode
against the band splice (header parse + band encode + join) and the band encode alone.
Prints medians in ms and bytes as JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import cv2
import numpy as np
import simplejpeg

from framewire.overlay import annotate, strip_height
from framewire.sources import SyntheticSource
from framewire.splice import band_rows, encode_band, encode_params, parse_header, splice

QUALITY = 80


def timed(step: Callable[[], bytes]) -> tuple[float, bytes]:
    started = time.perf_counter()
    result = step()
    return (time.perf_counter() - started) * 1000, result


def one_frame(image: np.ndarray, flip: bool) -> dict[str, tuple[float, int]]:
    """(ms, bytes) of each step on one frame; `flip` reverses the order of the compared steps."""
    width = image.shape[1]
    plain, restart = [cv2.IMWRITE_JPEG_QUALITY, QUALITY], encode_params(QUALITY, image)
    found: dict[str, tuple[float, int]] = {}
    encoded: dict[str, bytes] = {}
    for name, params in (("plain", plain), ("restart", restart))[:: -1 if flip else 1]:
        ms, jpeg = timed(lambda p=params: cv2.imencode(".jpg", image, p)[1].tobytes())
        encoded[name] = jpeg
        found[f"sender_encode_{name}"] = (ms, len(jpeg))
    for name, jpeg in list(encoded.items())[::-1]:
        ms, _ = timed(lambda j=jpeg: simplejpeg.decode_jpeg(j, colorspace="BGR", strict=True))
        found[f"receiver_decode_{name}"] = (ms, len(jpeg))
    original = encoded["restart"]
    shown = annotate(
        simplejpeg.decode_jpeg(original, colorspace="BGR", strict=True), "http", "cam0", 1, 30, 5
    )
    band, header = strip_height(width), parse_header(original)
    steps: dict[str, Callable[[], bytes]] = {
        "viewer_full_encode": lambda: cv2.imencode(".jpg", shown, plain)[1].tobytes(),
        "viewer_splice": lambda: splice(original, shown, band, QUALITY),
        "band_encode_only": lambda: encode_band(shown, header, band_rows(header, band), QUALITY),
    }
    for name in list(steps)[:: -1 if flip else 1]:
        ms, jpeg = timed(steps[name])
        found[name] = (ms, len(jpeg))
    return found


def run(frames: int, width: int, height: int) -> dict[str, float]:
    """Medians over `frames` synthetic frames (after 5 of warm-up)."""
    source = SyntheticSource(width, height, fps=0)
    per_step: dict[str, list[tuple[float, int]]] = {}
    for index in range(frames + 5):
        for name, figures in one_frame(source.read(), bool(index % 2)).items():
            if index >= 5:
                per_step.setdefault(name, []).append(figures)
    report: dict[str, float] = {"frames": frames, "width": width, "height": height}
    for name, figures in per_step.items():
        report[f"{name}_ms"] = round(statistics.median(ms for ms, _ in figures), 3)
        report[f"{name}_bytes"] = statistics.median(size for _, size in figures)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    args = parser.parse_args()
    print(json.dumps(run(args.frames, args.width, args.height), indent=2))


if __name__ == "__main__":
    main()
