"""Sources through real OpenCV: a looping video file, a missing file, a missing device."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import wait_until
from framewire.config import ConfigError, SenderConfig
from framewire.sender import camera_source
from framewire.sources import (
    CaptureSource,
    Grabber,
    Pacer,
    SourceError,
    SyntheticSource,
    device_index,
    open_source,
    resized,
    wire_size,
)
from helpers import write_clip


class Recorder:
    """Collects Grabber callbacks."""

    def __init__(self) -> None:
        self.states: list[bool] = []
        self.reconnects = 0
        self.changed = threading.Event()

    def state(self, up: bool) -> None:
        self.states.append(up)
        self.changed.set()

    def reconnect(self) -> None:
        self.reconnects += 1


def grab(source, count: int) -> list[np.ndarray]:
    rec = Recorder()
    grabber = Grabber(source, rec.state, rec.reconnect, lambda _: None)
    grabber.start()
    try:
        frames = []
        while len(frames) < count:
            item = grabber.frames.get(timeout=10)
            assert item is not None, "source stopped delivering"
            frames.append(item.image)
        return frames
    finally:
        grabber.stop()


def test_video_file_loops(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "clip.avi", frames=10)
    source = open_source(str(clip), 0, 0, 30, 5, 5)
    assert isinstance(source, CaptureSource)
    frames = grab(source, 25)  # more frames than the file has
    assert all(f.shape == (120, 160, 3) for f in frames)


def test_synthetic_pattern_moves_and_has_realistic_size() -> None:
    source = SyntheticSource(1280, 720, fps=0)
    source.open()
    a, b = source.read(), source.read()
    assert a.shape == (720, 1280, 3)
    assert not np.array_equal(a, b)
    _, jpeg = cv2.imencode(".jpg", b, [cv2.IMWRITE_JPEG_QUALITY, 80])
    assert 50_000 < len(jpeg) < 200_000


def _offset(at: float, phase: float, period: float) -> float:
    """How far (seconds) the instant `at` lies from the nearest tick of `phase` on the grid."""
    offset = (at - phase) % period
    return min(offset, period - offset)


def _tick_offsets(source: SyntheticSource, reads: int) -> list[float]:
    """Each read's return, as its distance from the source's phase on the monotonic grid."""
    offsets = []
    for _ in range(reads):
        source.read()
        offsets.append(_offset(time.monotonic(), source.phase, 1 / source.fps))
    return offsets


def test_synthetic_cameras_start_at_spread_phases_unless_aligned() -> None:
    """Spread (the default) gives each camera its own phase; aligned gives all one instant."""
    period = 1 / 30
    spread = [SyntheticSource(160, 120, 30) for _ in range(12)]
    phases = [source.phase for source in spread]
    assert all(0 <= phase < period for phase in phases)
    assert len(set(phases)) == len(phases), "every camera has its own phase"
    assert max(phases) - min(phases) > period / 4, phases  # 12 draws in one period
    aligned = [SyntheticSource(160, 120, 30, "aligned") for _ in range(3)]
    assert {source.phase for source in aligned} == {0.0}

    # The frames come at those phases: a spread camera's reads return at its own ticks, and
    # an aligned camera ticks at the same instants as the others, whenever it was opened.
    spread[0].open()
    assert min(_tick_offsets(spread[0], 4)) < 0.006
    aligned[0].open()
    aligned[0].read()
    aligned[1].open()  # a frame after the first aligned camera's opening
    assert min(_tick_offsets(aligned[1], 4)) < 0.006
    far = max(phases, key=lambda phase: _offset(phase, 0.0, period))
    assert _offset(far, 0.0, period) > period / 8  # a spread phase far from the aligned one


def test_pacer_keeps_its_phase_after_a_stall() -> None:
    pacer = Pacer(100, phase=0.004)
    assert pacer.phase == 0.004
    pacer.wait()
    stalled_until = time.monotonic() + 0.05
    while time.monotonic() < stalled_until:  # busy: a stall of five periods, no sleep
        pass
    pacer.wait()  # late: returns at once
    pacer.wait()
    pacer.wait()
    # Its schedule (not when a loaded machine woke it) is back on its own ticks, ahead of now.
    ticks = (pacer._next - 0.004) / 0.01
    assert abs(ticks - round(ticks)) < 1e-6, "back on its own ticks"
    assert pacer._next > time.monotonic() - 0.01, "no burst of missed ticks left to catch up"


def test_the_senders_option_sets_its_synthetic_cameras_phase() -> None:
    default = camera_source(SenderConfig())
    aligned = camera_source(SenderConfig(synthetic_phase="aligned"))
    assert isinstance(default, SyntheticSource) and isinstance(aligned, SyntheticSource)
    assert aligned.phase == 0.0 and 0 < default.phase < 1 / 30
    with pytest.raises(ConfigError) as refused:
        SenderConfig(synthetic_phase="random")
    assert refused.value.name == "synthetic_phase" and "spread, aligned" in refused.value.message


def test_a_device_is_its_index_or_its_path() -> None:
    """`/dev/video2` is device 2, as `2` is; it is never taken for a missing video file."""
    for spec, index in (("2", 2), ("/dev/video2", 2), ("/dev/video10", 10)):
        assert device_index(spec) == index
        source = open_source(spec, 0, 0, 30, 1, 1)
        assert isinstance(source, CaptureSource) and source.device == index
        assert source.description == f"device {spec}"
    for spec in ("/dev/video", "/dev/videoX", "video0", "/dev/video0.mp4", "-1"):
        assert device_index(spec) is None
    with pytest.raises(SourceError, match="cannot open device /dev/video97"):
        open_source("/dev/video97", 0, 0, 30, 1, 1).open()


def test_missing_source_is_down_and_retried(tmp_path: Path) -> None:
    # A file and devices that do not exist.
    for spec in (str(tmp_path / "nope.avi"), "97", "/dev/video97"):
        rec = Recorder()
        grabber = Grabber(
            open_source(spec, 0, 0, 30, 1, 1),
            rec.state,
            rec.reconnect,
            lambda _: None,
            backoff_max=0.2,
        )
        grabber.start()
        try:
            wait_until(lambda r=rec: r.reconnects >= 3, what=f"retries of {spec}")
        finally:
            grabber.stop()
        assert rec.states == [False], "one state change, however many retries"


@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [
        (0, 0, (3840, 2160)),  # as the source sends
        (1280, 720, (1280, 720)),
        (1280, 0, (1280, 720)),  # the other side follows the source's aspect ratio
        (0, 1080, (1920, 1080)),
        (640, 640, (640, 640)),  # both set: that size, whatever the source's shape
    ],
)
def test_the_wire_size_is_the_options_else_the_sources(
    width: int, height: int, expected: tuple[int, int]
) -> None:
    assert wire_size((3840, 2160), width, height) == expected


def test_a_4k_video_is_read_at_4k_and_resized_once_to_the_wire_size(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "uhd.avi", frames=3, size=(3840, 2160))
    config = SenderConfig(source=str(clip), width=1280, height=720, metrics_bind="")
    source = camera_source(config)  # a file: its pictures come at their own size
    source.open()
    try:
        image = source.read()
    finally:
        source.close()
    assert image is not None and image.shape == (2160, 3840, 3)
    sent = resized(image, config.width, config.height)
    assert sent.shape == (720, 1280, 3)
    assert resized(sent, config.width, config.height) is sent  # at its size: untouched
    assert resized(image, 0, 0) is image  # the default: as the source sends


def test_the_synthetic_pattern_is_1280x720_unless_a_wire_size_is_set() -> None:
    def size(**options: int) -> tuple[int, int]:
        source = camera_source(SenderConfig(metrics_bind="", **options))
        assert isinstance(source, SyntheticSource)
        return source.width, source.height

    assert size() == (1280, 720)
    assert size(width=640, height=360) == (640, 360)
    assert size(width=1920) == (1920, 1080)


@pytest.mark.parametrize("value", [1, 15, -1])
def test_a_wire_size_under_16_is_refused_and_0_means_as_sent(value: int) -> None:
    with pytest.raises(ConfigError) as caught:
        SenderConfig(width=value)
    assert caught.value.name == "width"
    assert SenderConfig(width=0, height=0).width == 0
