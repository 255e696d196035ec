"""The annotation drawn on every processed frame."""

from __future__ import annotations

import cv2
import numpy as np

_FONT = cv2.FONT_HERSHEY_SIMPLEX


class Strip:
    """The status strip drawn on every processed frame of one camera: transport, camera,
    sequence number, fps and served latency, in a black band across the top.

    Each piece of text is rendered once per change, not per frame: the label
    (transport and camera) once, fps and latency once per value shown (they
    repeat, to one decimal), and only the sequence number, new every frame,
    is rendered each time. Rendered pieces are kept per frame width, at most
    `MAX_PIECES`. Drawing writes the band of the decoded image in place: no
    copy of the frame is made.
    """

    MAX_PIECES = 512

    def __init__(self, transport: str, camera: str) -> None:
        self.label = f"{transport.upper()}  {camera}"
        self.rendered = 0  # pieces of text rendered so far (the rest came from the cache)
        self._pieces: dict[tuple[int, str], np.ndarray] = {}
        self._gaps: dict[int, int] = {}

    def draw(self, image: np.ndarray, seq: int, fps: float, latency_ms: float | None) -> np.ndarray:
        """Draw the strip on `image` in place and return it."""
        width = image.shape[1]
        height = min(strip_height(width), image.shape[0])
        band = image[:height]
        band[:] = 0
        latency = f"{latency_ms:.1f} ms" if latency_ms is not None else "-- ms"
        x = int(12 * _scale(width))
        for text in (self.label, f"#{seq}", f"{fps:.1f} fps", f"latency {latency}"):
            piece = self._piece(width, text, cache=not text.startswith("#"))
            end = min(x + piece.shape[1], width)
            if end > x:
                band[:, x:end] = piece[:height, : end - x]
            x += piece.shape[1] + self._gap(width)
        return image

    def _gap(self, width: int) -> int:
        """The width of the two spaces between pieces."""
        gap = self._gaps.get(width)
        if gap is None:
            scale = _scale(width)
            (gap, _), _ = cv2.getTextSize("  ", _FONT, 0.9 * scale, max(int(2 * scale), 1))
            self._gaps[width] = gap
        return gap

    def _piece(self, width: int, text: str, cache: bool) -> np.ndarray:
        """`text` rendered white on black, the strip's height, as wide as the text."""
        piece = self._pieces.get((width, text))
        if piece is not None:
            return piece
        scale = _scale(width)
        size, thickness = 0.9 * scale, max(int(2 * scale), 1)
        (text_width, _), _ = cv2.getTextSize(text, _FONT, size, thickness)
        piece = np.zeros((strip_height(width), text_width + thickness + 1, 3), np.uint8)
        baseline = (0, int(31 * scale))
        cv2.putText(piece, text, baseline, _FONT, size, (255, 255, 255), thickness, cv2.LINE_AA)
        self.rendered += 1
        if cache:
            if len(self._pieces) >= self.MAX_PIECES:
                self._pieces.clear()
            self._pieces[(width, text)] = piece
        return piece


def _scale(width: int) -> float:
    return max(width / 1280, 0.35)


def strip_height(width: int) -> int:
    """Rows the status strip covers on a frame `width` pixels wide (44 at 1280)."""
    return int(44 * _scale(width))


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
