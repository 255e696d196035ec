"""The motion processor draws boxes where something moves, and nowhere else."""

from __future__ import annotations

import cv2
import numpy as np

from framewire.processing import Motion

GREEN = np.array([0, 255, 0], np.uint8)


def scene(x: int) -> np.ndarray:
    image = np.full((360, 640, 3), 90, np.uint8)
    cv2.rectangle(image, (x, 150), (x + 60, 210), (255, 255, 255), -1)
    return image


def test_motion_boxes_the_moving_square() -> None:
    motion = Motion()
    for _ in range(30):  # learn the still background
        motion(np.full((360, 640, 3), 90, np.uint8))
    for x in range(100, 400, 10):
        out = motion(scene(x))
    box = np.all(out == GREEN, axis=2)
    ys, xs = np.nonzero(box)
    assert xs.size > 0, "no box drawn around the moving square"
    # The box surrounds the square's latest position (390..450, 150..210), give or take.
    assert 330 <= xs.min() <= 400 and 440 <= xs.max() <= 500
    assert 120 <= ys.min() <= 160 and 200 <= ys.max() <= 240
    # And nothing is drawn far from it.
    assert not box[:, :300].any() and not box[260:, :].any()


def test_still_scene_has_no_boxes() -> None:
    motion = Motion()
    still = scene(200)
    for _ in range(40):
        out = motion(still.copy())
    assert not np.all(out == GREEN, axis=2).any()
