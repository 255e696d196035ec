"""Pluggable processing steps run by the receivers on every decoded frame.

A processor is any callable that takes a BGR image and returns the image to
show (it may draw on it in place). `load_processor(spec)` returns a factory
that makes one processor per camera (processors may keep state, such as a
background model). `spec` is a built-in name (`none`, `motion`) or
`module:attribute`, where the attribute is a zero-argument callable (a class
works) returning a processor.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Protocol

import cv2
import numpy as np


class Processor(Protocol):
    def __call__(self, image: np.ndarray) -> np.ndarray: ...


ProcessorFactory = Callable[[], Processor]


def passthrough(image: np.ndarray) -> np.ndarray:
    """The `none` processor: the frame as it came."""
    return image


class Motion:
    """The `motion` processor: MOG2 background subtraction, a box around each moving blob."""

    def __init__(self, work_width: int = 320, min_area: float = 0.001) -> None:
        self._work_width = work_width
        self._min_area = min_area
        self._subtractor = cv2.createBackgroundSubtractorMOG2(history=200, detectShadows=False)
        self._kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))

    def __call__(self, image: np.ndarray) -> np.ndarray:
        scale = min(1.0, self._work_width / image.shape[1])
        small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        mask = self._subtractor.apply(small)
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, self._kernel)
        mask = cv2.dilate(mask, self._kernel, iterations=2)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        min_area = self._min_area * small.shape[0] * small.shape[1]
        for contour in contours:
            if cv2.contourArea(contour) < min_area:
                continue
            x, y, w, h = (int(v / scale) for v in cv2.boundingRect(contour))
            cv2.rectangle(image, (x, y), (x + w, y + h), (0, 255, 0), 2)
        return image


BUILTIN: dict[str, ProcessorFactory] = {"none": lambda: passthrough, "motion": Motion}


def load_processor(spec: str) -> ProcessorFactory:
    """The processor factory named by `spec`; raises ValueError naming the problem."""
    if spec in BUILTIN:
        return BUILTIN[spec]
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(
            f"unknown processor {spec!r}: use one of {sorted(BUILTIN)} or module:attribute"
        )
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot load processor {spec!r}: {exc}") from exc
    if not callable(factory):
        raise ValueError(f"processor {spec!r} is not callable")
    return factory
