"""The annotation drawn on every processed frame."""

from __future__ import annotations

import cv2
import numpy as np

_FONT = cv2.FONT_HERSHEY_SIMPLEX


def strip_height(width: int) -> int:
    """Rows at the top that `annotate` changes on a frame `width` pixels wide (45 at 720p).

    The strip's bottom edge is row `int(44 * scale)`, drawn too; nothing below it changes: the
    band the viewer's full-size encode re-encodes (splice.py).
    """
    return int(44 * max(width / 1280, 0.35)) + 1


def annotate(
    image: np.ndarray, transport: str, camera: str, seq: int, fps: float, latency_ms: float | None
) -> np.ndarray:
    """Draw a status strip: transport, camera, sequence number, fps and served latency."""
    width = image.shape[1]
    scale = max(width / 1280, 0.35)
    latency = f"{latency_ms:.1f} ms" if latency_ms is not None else "-- ms"
    text = f"{transport.upper()}  {camera}  #{seq}  {fps:.1f} fps  latency {latency}"
    cv2.rectangle(image, (0, 0), (width, strip_height(width) - 1), (0, 0, 0), -1)
    cv2.putText(
        image,
        text,
        (int(12 * scale), int(31 * scale)),
        _FONT,
        0.9 * scale,
        (255, 255, 255),
        max(int(2 * scale), 1),
        cv2.LINE_AA,
    )
    return image


def no_signal(width: int, height: int, camera: str, detail: str) -> np.ndarray:
    """A placeholder picture for a camera with no fresh frame."""
    image = np.full((height, width, 3), 32, np.uint8)
    scale = max(width / 1280, 0.35)
    for text, row, size in (("NO SIGNAL", 0.45, 3.0), (camera, 0.58, 1.2), (detail, 0.68, 1.0)):
        (tw, _), _ = cv2.getTextSize(text, _FONT, size * scale, 2)
        cv2.putText(
            image,
            text,
            ((width - tw) // 2, int(height * row)),
            _FONT,
            size * scale,
            (60, 60, 230) if row < 0.5 else (220, 220, 220),
            max(int(3 * scale), 1),
            cv2.LINE_AA,
        )
    return image
