"""Small shared pieces: the mailbox, the rate meter, URL redaction, processor loading."""

from __future__ import annotations

import threading

import pytest

from framewire.figures import percentile
from framewire.mailbox import Mailbox
from framewire.metrics import RateMeter
from framewire.processing import Motion, load_processor, passthrough
from framewire.urls import redact


def test_mailbox_keeps_newest_and_counts_drops() -> None:
    dropped: list[int] = []
    box: Mailbox[int] = Mailbox(dropped.append)
    for i in range(5):
        box.put(i)
    assert box.get(0) == 4
    assert dropped == [0, 1, 2, 3]
    assert box.get(0.01) is None


def test_mailbox_get_wakes_on_put_and_close() -> None:
    box: Mailbox[str] = Mailbox()
    threading.Timer(0.05, box.put, ["x"]).start()
    assert box.get(5) == "x"
    threading.Timer(0.05, box.close).start()
    assert box.get(5) is None
    assert box.closed


def test_rate_meter() -> None:
    meter = RateMeter(window=2.0)
    for i in range(21):
        meter.tick(100 + i * 0.05)  # 20 fps for one second
    assert meter.rate(101.0) == pytest.approx(20.0)
    assert meter.rate(110.0) == 0.0  # everything aged out


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://:s3cret@redis:6379/0", "redis://:***@redis:6379/0"),
        ("redis://user:s3cret@redis/0", "redis://user:***@redis/0"),
        ("rtsp://admin:pw@10.0.0.9:554/stream", "rtsp://admin:***@10.0.0.9:554/stream"),
        ("http://host:8001/frames", "http://host:8001/frames"),
        ("rtsp://tokenonly@cam/x", "rtsp://***@cam/x"),
    ],
)
def test_redact(url: str, expected: str) -> None:
    assert redact(url) == expected


def test_load_processor() -> None:
    assert load_processor("none")() is passthrough
    assert isinstance(load_processor("motion")(), Motion)
    assert load_processor("helpers:Slow")().__class__.__name__ == "Slow"
    for bad in ("nope", "no_such_module:x", "helpers:missing", "helpers:"):
        with pytest.raises(ValueError, match="processor"):
            load_processor(bad)


def test_percentile() -> None:
    assert percentile([5.0], 0.95) == 5.0
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 0.5) == 3.0
    assert percentile([float(n) for n in range(1, 101)], 0.95) == pytest.approx(95.05)
