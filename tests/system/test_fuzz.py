"""Property-based fuzzing of both ingest paths: no 5xx, no crash, every frame accounted for."""

from __future__ import annotations

import time

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import RedisServer, Service, Services, metric_value, wait_until
from framewire.frame import Frame
from framewire.transports import http as http_wire
from framewire.transports import redis as redis_wire
from framewire.transports.http import HEADER_CAMERA, HEADER_CAPTURED_NS, HEADER_SEQ
from framewire_bench.readers import read_metrics, total
from helpers import make_jpeg

JPEG = make_jpeg(160, 120, seed=5)
# Header values requests can send: printable ASCII, no leading space.
HEADER_TEXT = st.from_regex(r"([!-~][ -~]{0,39})?", fullmatch=True)


@st.composite
def corrupted_jpeg(draw: st.DrawFn) -> bytes:
    """A valid JPEG with some bytes overwritten, cut, or extended."""
    data = bytearray(JPEG)
    for _ in range(draw(st.integers(1, 20))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(data)))
    return bytes(data[:cut] if draw(st.booleans()) else data) + draw(st.binary(max_size=16))


BODIES = st.one_of(
    st.binary(max_size=2048),
    corrupted_jpeg(),
    st.just(JPEG),
    st.binary(max_size=64).map(lambda b: b"\xff\xd8" + b + b"\xff\xd9"),
)
HEADERS = st.fixed_dictionaries(
    {},
    optional={
        "Content-Type": st.sampled_from(
            ["image/jpeg", "image/png", "text/plain", "", "image/jpeg; x=1"]
        ),
        HEADER_CAMERA: st.one_of(st.sampled_from(["cam0", "fuzz"]), HEADER_TEXT),
        HEADER_SEQ: st.one_of(st.integers(-5, 2**64).map(str), HEADER_TEXT),
        HEADER_CAPTURED_NS: st.one_of(st.integers(-5, 2**64).map(str), HEADER_TEXT),
        "Authorization": HEADER_TEXT,
        "X-Whatever": HEADER_TEXT,
    },
)


def counters(receiver: Service, transport: str) -> dict[str, float]:
    samples = read_metrics(receiver.url)
    return {
        "received": total(samples, "framewire_frames_received_total", transport=transport),
        "rejected": total(samples, "framewire_frames_rejected_total", transport=transport),
        "dropped": total(
            samples, "framewire_frames_dropped_total", transport=transport, stage="receive"
        ),
    }


@pytest.fixture(scope="module")
def http_receiver(tmp_path_factory: pytest.TempPathFactory) -> Service:
    services = Services(tmp_path_factory.mktemp("fuzz-http"))
    yield services.receiver("http", "--max-body", "100000", "--max-cameras", "4")
    services.stop_all()


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=BODIES, headers=HEADERS)
def test_post_frames_fuzz(http_receiver: Service, body: bytes, headers: dict[str, str]) -> None:
    before = counters(http_receiver, "http")
    response = requests.post(f"{http_receiver.url}/frames", data=body, headers=headers, timeout=10)
    assert response.status_code < 500, response.text
    after = counters(http_receiver, "http")
    if response.status_code == 204:
        assert after["received"] == before["received"] + 1
    else:
        assert 400 <= response.status_code < 500
        reason = response.json()["error"]
        assert (
            metric_value(
                requests.get(f"{http_receiver.url}/metrics", timeout=5).text,
                "framewire_frames_rejected_total",
                transport="http",
                reason=reason,
            )
            >= 1
        )
        assert after["rejected"] == before["rejected"] + 1


def test_http_receiver_still_serves_after_fuzzing(http_receiver: Service) -> None:
    frame = Frame("cam0", 10**6, time.time_ns(), JPEG)
    assert (
        requests.post(
            f"{http_receiver.url}/frames", data=JPEG, headers=http_wire.headers(frame), timeout=10
        ).status_code
        == 204
    )
    wait_until(
        lambda: (
            requests.get(f"{http_receiver.url}/snapshot/cam0.jpg", timeout=5).headers.get(
                "X-Framewire-Seq"
            )
            == str(10**6)
        ),
        what="the good frame served",
    )


FIELD_NAMES = st.one_of(st.sampled_from([b"jpeg", b"seq", b"captured_ns"]), st.binary(max_size=8))
FIELD_VALUES = st.one_of(
    BODIES, st.integers(-5, 2**64).map(lambda n: str(n).encode()), st.binary(max_size=24)
)
ENTRIES = st.lists(
    st.dictionaries(FIELD_NAMES, FIELD_VALUES, min_size=1, max_size=4), min_size=1, max_size=5
)


def test_redis_entries_fuzz(services: Services, redis_server: RedisServer) -> None:
    receiver = services.receiver("redis", "--redis-url", redis_server.url, "--max-cameras", "4")
    client = redis_server.client()
    cameras = ["cam0", "cam1", "bad camera!"]

    def accounted() -> float:
        return sum(counters(receiver, "redis").values())

    # The receiver follows a stream from the first entry after it finds it: prime each one.
    for camera in cameras:
        before = accounted()
        wait_until(
            lambda c=camera, b=before: (
                client.xadd(redis_wire.key("stream", c), {b"seq": b"0"}) and accounted() > b
            ),
            interval=0.2,
            what=f"stream {camera!r} discovered",
        )
    previous: list[float | None] = [None]

    def settled() -> bool:  # two equal readings 0.3 s apart: the priming entries are all taken
        now, before = accounted(), previous[0]
        previous[0] = now
        return now == before

    wait_until(settled, interval=0.3, what="priming entries accounted for")
    added = accounted()

    @settings(max_examples=40, deadline=None)
    @given(batches=ENTRIES, camera=st.sampled_from(cameras))
    def fuzz(batches: list[dict[bytes, bytes]], camera: str) -> None:
        nonlocal added
        for fields in batches:
            client.xadd(redis_wire.key("stream", camera), fields)
        added += len(batches)
        # Every entry ends up received, rejected (counted by reason) or skipped as older.
        wait_until(lambda: accounted() == added, timeout=10, what=f"{added} entries accounted for")

    fuzz()
    assert receiver.proc.poll() is None
    frame = Frame("cam0", 424242, time.time_ns(), JPEG)
    client.xadd(redis_wire.key("stream", "cam0"), redis_wire.stream_fields(frame))
    wait_until(
        lambda: (
            requests.get(f"{receiver.url}/snapshot/cam0.jpg", timeout=5).headers.get(
                "X-Framewire-Seq"
            )
            == "424242"
        ),
        what="a good frame after the fuzz",
    )
