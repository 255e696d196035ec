"""The hub, the pipeline and the decoder in-process, with real JPEGs and real threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack

import pytest
from prometheus_client import generate_latest

from conftest import metric_value, wait_until
from framewire import mjpeg
from framewire.config import ReceiverConfig
from framewire.frame import Frame, WireError, decode
from framewire.hub import CameraNotFound, Hub
from framewire.metrics import ReceiverMetrics
from framewire.pipeline import Pipeline
from framewire.processing import passthrough
from framewire.seats import ViewerLimit
from framewire.variants import FULL
from helpers import claiming, make_jpeg

JPEG = make_jpeg(320, 240, seed=3)


def frame(camera: str = "cam0", seq: int = 1, jpeg: bytes = JPEG) -> Frame:
    return Frame(camera, seq, time.time_ns(), jpeg)


@pytest.fixture
def make_pipeline() -> Iterator:
    made: list[Pipeline] = []

    def make(**settings: object) -> Pipeline:
        config = ReceiverConfig(**{"max_cameras": 4, "forget_after": 60.0, **settings})
        metrics = ReceiverMetrics()
        pipeline = Pipeline(Hub(metrics, config), metrics, config, lambda: passthrough)
        made.append(pipeline)
        return pipeline

    yield make
    for pipeline in made:
        pipeline.hub.close()
        pipeline.close()


def published(pipeline: Pipeline, camera: str, seq: int) -> None:
    channel = pipeline.hub.find(camera)
    wait_until(lambda: channel.cache.get().seq == seq, what=f"frame {seq} of {camera} published")


def scrape(pipeline: Pipeline) -> str:
    return generate_latest(pipeline.metrics.registry).decode()


def test_decode_is_strict_and_checks_the_header_first() -> None:
    assert decode(JPEG, 1920 * 1080).shape == (240, 320, 3)
    cut = JPEG[: len(JPEG) // 2] + b"\xff\xd9"
    cases = {
        "undecodable": [cut, b"\xff\xd8" + b"\x00" * 500 + b"\xff\xd9", b"not a jpeg"],
        "too_many_pixels": [claiming(JPEG, 7680, 4320), claiming(JPEG, 1921, 1080)],
        "implausible_size": [claiming(make_jpeg(16, 16), 1920, 1080)],  # 666 bytes
    }
    for reason, bodies in cases.items():
        for body in bodies:
            with pytest.raises(WireError) as caught:
                decode(body, 1920 * 1080)
            assert caught.value.reason == reason, (reason, len(body))


def test_refused_frames_never_create_a_camera(make_pipeline) -> None:
    pipeline = make_pipeline(max_cameras=2, default_camera="cam0")  # declared: a slot from start
    bad = JPEG[: len(JPEG) // 2] + b"\xff\xd9"
    for n in range(100):
        with pytest.raises(WireError):
            pipeline.ingest(frame(f"ghost{n}", jpeg=bad))
    assert [c.camera for c in pipeline.hub.channels()] == ["cam0"]
    assert "ghost" not in scrape(pipeline)
    pipeline.ingest(frame("real"))  # the one free slot is still free
    published(pipeline, "real", 1)
    with pytest.raises(WireError) as caught:  # full: refused before decoding, even a bad frame
        pipeline.ingest(frame("third", jpeg=b"garbage"))
    assert caught.value.reason == "camera_limit"
    pipeline.ingest(frame("cam0", 7))  # the default camera always has its slot
    published(pipeline, "cam0", 7)


QHD, UHD = make_jpeg(2560, 1440, seed=4), make_jpeg(3840, 2160, seed=4)


def test_a_4k_frame_is_accepted_by_default_and_a_refusal_names_its_setting(
    make_pipeline,
) -> None:
    pipeline = make_pipeline()
    for camera, jpeg, shape in (("qhd", QHD, (1440, 2560, 3)), ("uhd", UHD, (2160, 3840, 3))):
        pipeline.ingest(frame(camera, 1, jpeg))
        published(pipeline, camera, 1)
        assert pipeline.hub.find(camera).slot.newest()[0].image.shape == shape
    assert pipeline.hub.stats()["refused"] == {}

    small = make_pipeline(max_pixels=1920 * 1080)
    for seq in (1, 2):
        with pytest.raises(WireError, match="over 2073600 pixels") as refusal:
            small.ingest(frame("uhd", seq, UHD))
        small.reject(refusal.value.reason)  # as the transports do: the count
    stats = small.hub.stats()
    assert stats["cameras"] == {}  # a refused frame creates no camera: receiver-wide
    refused = stats["refused"]["too_many_pixels"]
    assert refused["camera"] == "uhd" and refused["count"] == 2
    assert refused["detail"] == "JPEG is 3840x2160, over 2073600 pixels"
    assert refused["fix"] == "raise --max-pixels (FRAMEWIRE_MAX_PIXELS)"
    assert 0 <= refused["seconds_ago"] < 60


def test_drops_and_fps_are_counted_by_the_hub(make_pipeline) -> None:
    pipeline = make_pipeline()
    for seq in range(1, 6):
        pipeline.ingest(frame("cam1", seq), skipped=3)
        published(pipeline, "cam1", seq)
    stats = pipeline.hub.stats()["cameras"]["cam1"]
    assert stats["drops"] == {"receive": 15, "stale": 0, "process": 0}
    assert stats["fps"] > 0 and stats["seq"] == 5
    text = scrape(pipeline)
    labels = {"camera": "cam1", "transport": "http"}
    assert metric_value(text, "framewire_frames_dropped_total", stage="receive", **labels) == 15
    assert metric_value(text, "framewire_frames_received_total", **labels) == 5


def test_forgetting_removes_camera_threads_series_and_streams(make_pipeline) -> None:
    pipeline = make_pipeline(forget_after=30.0, default_camera="cam0")
    hub = pipeline.hub
    for camera in ("cam0", "cam1"):
        pipeline.ingest(frame(camera, 5))
        published(pipeline, camera, 5)
    with hub.open("cam1", FULL) as channel:
        parts = mjpeg.stream(channel, keepalive=0.05)
        assert next(parts).startswith(b"--")
        first = next(parts)  # a frame's part says which frame it is and when it was captured
        served = channel.cache.get()
        assert first.startswith(
            b"Content-Type: image/jpeg\r\nX-Framewire-Seq: 5\r\n"
            b"X-Framewire-Captured-Ns: %d\r\nContent-Length: " % served.captured_ns
        )
        assert pipeline.sweep() == []  # not idle yet
        assert sorted(pipeline.sweep(time.monotonic() + 31)) == ["cam0", "cam1"]
        assert list(parts) == []  # the open stream ended
    # ... and its handle closed after the camera went: no seat held, no negative gauge
    assert hub.seats.taken == 0 and 'camera="cam1"' not in scrape(pipeline)
    assert [c.camera for c in hub.channels()] == ["cam0"]
    with pytest.raises(CameraNotFound):
        hub.lookup("cam1")
    assert hub.find("cam0").cache.get().seq is None  # the default camera: image released only
    assert b"X-Framewire" not in mjpeg.part(hub.find("cam0").cache.get().jpeg)  # "no signal"
    assert not [t for t in threading.enumerate() if t.name.startswith("framewire-process")]
    assert hub.stats()["cameras"]["cam0"]["viewers"] == 0
    pipeline.ingest(frame("cam1", 6))  # a forgotten camera may come back
    published(pipeline, "cam1", 6)


def test_no_camera_is_made_up(make_pipeline) -> None:
    """Without --default-camera, a camera exists only while something sends it: the bare
    routes mean the first by id, the grid has a tile only for those, and a forgotten one
    is gone whatever its name."""
    pipeline = make_pipeline(forget_after=30.0)
    hub = pipeline.hub
    assert hub.channels() == [] and hub.default() is None
    with pytest.raises(CameraNotFound) as caught:
        hub.lookup(None)
    assert caught.value.reason == "no_camera"
    assert not hub.grid.compose().any()  # an empty mosaic: no NO SIGNAL tile
    for camera in ("door", "cam0"):
        pipeline.ingest(frame(camera, 3))
        published(pipeline, camera, 3)
    assert hub.default() == "cam0" and hub.lookup(None).camera == "cam0"
    assert [c.camera for c in hub.channels()] == ["cam0", "door"]
    pipeline.ingest(frame("door", 4))
    assert sorted(pipeline.sweep(time.monotonic() + 31)) == ["cam0", "door"]
    assert hub.channels() == [] and 'camera="cam0"' not in scrape(pipeline)


@pytest.mark.parametrize("max_viewers", [48, 1])
def test_a_stream_asked_for_as_its_camera_is_forgotten_is_unknown(
    make_pipeline, max_viewers: int
) -> None:
    """Looked up, then forgotten before the viewer is counted: 404 unknown_camera, never the
    viewer cap's 503 (also when the cap is full), and no viewer is counted."""
    pipeline = make_pipeline(forget_after=30.0, max_viewers=max_viewers, default_camera="cam0")
    hub = pipeline.hub
    pipeline.ingest(frame("cam1", 1))
    published(pipeline, "cam1", 1)
    viewer = hub.open("cam1", FULL)  # the stream route has found its camera ...
    with ExitStack() as held:
        if max_viewers == 1:
            held.enter_context(hub.open(None, FULL))  # ... every viewer seat is taken ...
        assert pipeline.sweep(time.monotonic() + 31) == ["cam1"]  # ... and it is forgotten
        with pytest.raises(CameraNotFound) as caught, viewer:
            pass
        assert caught.value.reason == "unknown_camera"
        assert sum(c["viewers"] for c in hub.stats()["cameras"].values()) == (max_viewers == 1)
        assert hub.seats.taken == (max_viewers == 1)


def test_viewer_cap_and_count(make_pipeline) -> None:
    pipeline = make_pipeline(max_viewers=2, default_camera="cam0")
    hub = pipeline.hub
    with hub.open(None, FULL), hub.open_grid():
        with pytest.raises(ViewerLimit), hub.open("cam0", FULL):
            pass
        assert hub.stats()["cameras"]["cam0"]["viewers"] == 1
    assert hub.stats()["cameras"]["cam0"]["viewers"] == 0
    with hub.open(None, FULL), hub.open(None, (320, None, True)):
        assert hub.stats()["cameras"]["cam0"]["viewers"] == 2
    hub.close()
    with pytest.raises(ViewerLimit), hub.open(None, FULL):  # at shutdown: the cap's 503
        pass
    with pytest.raises(CameraNotFound) as caught:
        hub.lookup("../x")
    assert caught.value.reason == "bad_camera"


def test_served_frame_is_encoded_once_and_its_latency_annotates_the_next(make_pipeline) -> None:
    pipeline = make_pipeline()
    pipeline.ingest(frame("cam0", 1))
    published(pipeline, "cam0", 1)
    channel = pipeline.hub.find("cam0")
    assert channel.figures.served_latency_ms() is not None
    first = channel.cache.get()
    assert channel.cache.get() is first  # shared, not re-encoded
    assert pipeline.hub.stats()["cameras"]["cam0"]["latency_ms"]["samples"] == 1


class Flaky:
    """Fails on odd frames: the frame is shown unprocessed, the failure counted."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, image):
        self.calls += 1
        if self.calls % 2:
            raise RuntimeError("flaky")
        return image


def unbuildable():
    raise RuntimeError("cannot build")


@pytest.mark.parametrize("factory", [Flaky, unbuildable])
def test_processor_failures_are_counted_and_frames_still_shown(make_pipeline, factory) -> None:
    pipeline = make_pipeline()
    pipeline.processor_factory = factory
    for seq in (1, 2, 3):
        pipeline.ingest(frame("cam0", seq))
        published(pipeline, "cam0", seq)
    errors = metric_value(
        scrape(pipeline), "framewire_receive_errors_total", transport="http", reason="processor"
    )
    assert errors == (2 if factory is Flaky else 1)


def test_close_joins_every_thread(make_pipeline) -> None:
    pipeline = make_pipeline()
    for n in range(3):
        pipeline.ingest(frame(f"cam{n}"))
    pipeline.hub.close()
    pipeline.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("framewire-")]
