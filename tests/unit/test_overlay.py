"""The status strip: drawn in place on the band it covers, each text rendered once per change."""

from __future__ import annotations

import numpy as np
import pytest

from framewire.overlay import Strip, strip_height


@pytest.mark.parametrize(("width", "height"), [(1280, 720), (640, 480), (1920, 1080), (16, 12)])
def test_the_strip_is_drawn_in_place_on_its_band_only(width: int, height: int) -> None:
    image = np.random.default_rng(0).integers(0, 255, (height, width, 3), np.uint8)
    original = image.copy()
    drawn = Strip("http", "cam0").draw(image, 1234, 29.97, 5.43)
    assert drawn is image  # no copy of the frame
    band = min(strip_height(width), height)
    assert np.array_equal(image[band:], original[band:])
    assert not np.array_equal(image[:band], original[:band])
    if width >= 640:
        assert (image[:band] == 255).any()  # white text on the black band
        assert (image[:band] == 0).mean() > 0.5


def test_strip_height_is_44_rows_at_720p() -> None:
    assert strip_height(1280) == 44
    assert strip_height(1920) == 66


def test_text_is_rendered_once_per_change_not_per_frame() -> None:
    strip = Strip("redis", "door")
    image = np.zeros((720, 1280, 3), np.uint8)
    strip.draw(image, 1, 30.0, 5.0)
    assert strip.rendered == 4  # label, seq, fps, latency
    for seq in range(2, 12):
        strip.draw(image, seq, 30.0, 5.0)
    assert strip.rendered == 4 + 10  # only each new sequence number
    strip.draw(image, 12, 29.5, None)
    assert strip.rendered == 14 + 3  # seq, a new fps, "-- ms"
    first = image.copy()
    strip.draw(image, 12, 29.5, None)
    assert np.array_equal(image, first)  # cached pieces draw the same strip


def test_a_differently_sized_frame_gets_its_own_pieces() -> None:
    strip = Strip("http", "cam0")
    strip.draw(np.zeros((720, 1280, 3), np.uint8), 1, 30.0, 5.0)
    small = np.zeros((360, 640, 3), np.uint8)
    strip.draw(small, 2, 30.0, 5.0)
    assert strip.rendered == 8
    assert small[: strip_height(640)].any() and not small[strip_height(640) :].any()
