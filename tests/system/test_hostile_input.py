"""Hostile input, round two, against real receivers: bodies over --max-body however they are
framed, and capture times that fit in 64 bits but cannot be true."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests

from conftest import RedisServer, Service, Services, scrape, wait_until
from framewire.frame import Frame
from framewire.transports import http as http_wire
from framewire.transports import redis as redis_wire
from framewire_bench.readers import read_latencies
from helpers import make_jpeg, post_frame

MAX_BODY = 2 * 1024 * 1024  # --max-body's default
KIB = 1024
REJECTED = "framewire_frames_rejected_total"
JPEG = make_jpeg(320, 240, seed=30)


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Service:
    services = Services(tmp_path_factory.mktemp("hostile"))
    yield services.receiver("http", "--stale-after", "30")
    services.stop_all()


def port(service: Service) -> int:
    return int(service.url.rsplit(":", 1)[1])


def head(mode: str, framing: str) -> bytes:
    kind = http_wire.CONTENT_TYPE if mode == "raw" else http_wire.FORM_TYPE
    fields = f"{http_wire.HEADER_CAMERA}: cam0\r\n{http_wire.HEADER_SEQ}: 1\r\n"
    fields += f"{http_wire.HEADER_CAPTURED_NS}: {time.time_ns()}\r\n"
    start = f"POST /frames HTTP/1.1\r\nHost: x\r\nContent-Type: {kind}\r\n"
    return f"{start}{fields}{framing}\r\n".encode()


def chunked(total: int, size: int, end: bool = True) -> Iterable[bytes]:
    """`total` bytes of body in chunks of `size`, and the last chunk if `end`."""
    filler = b"image=" + b"A" * size  # base64 text: also the start of a form
    sent = 0
    while sent < total:
        n = min(size, total - sent)
        yield b"%x\r\n" % n + filler[:n] + b"\r\n"
        sent += n
    if end:
        yield b"0\r\n\r\n"


def exchange(service: Service, parts: Iterable[bytes], half_close: bool = False) -> bytes:
    """Send `parts` on a new connection (on a thread, as a client that does not wait for the
    answer) and read until the server closes: everything it answered."""
    sock = socket.create_connection(("127.0.0.1", port(service)))
    sock.settimeout(10)

    def send() -> None:
        try:
            for part in parts:
                sock.sendall(part)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except OSError:  # the server answered and closed before taking it all: allowed
            pass

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    answer = b""
    try:
        while chunk := sock.recv(64 * KIB):
            answer += chunk
    except ConnectionResetError:
        pass
    sender.join(10)
    sock.close()
    return answer


def refusal(answer: bytes) -> tuple[int, str, bool]:
    """(status, JSON error, whether the answer said it closes) of one HTTP answer."""
    header, _, body = answer.partition(b"\r\n\r\n")
    lines = header.decode("latin-1").split("\r\n")
    closes = any(line.lower() == "connection: close" for line in lines[1:])
    return int(lines[0].split()[1]), json.loads(body)["error"], closes


def stats_cameras(service: Service) -> set[str]:
    return set(requests.get(f"{service.url}/stats", timeout=5).json()["cameras"])


def log_lines(service: Service) -> int:
    return len(Path(service.log_path).read_text(errors="replace").splitlines())


BODIES = [  # (total bytes, chunk size): the cap inside a chunk, or on a chunk's edge
    (5_000_000, 64 * KIB),
    (10_000_000, 64 * KIB),
    (2_500_000, 64 * KIB),
    (3_000_000, 64 * KIB),  # the cap is 32 whole chunks of 64 KiB: the 33rd passes it
    (MAX_BODY + 1, 64 * KIB),
    (3_000_000, 100_000),
    (3_000_000, 3_000_000),  # one chunk, refused from its size line
]


@pytest.mark.parametrize("mode", ["raw", "form-base64"])
@pytest.mark.parametrize(("total", "size"), BODIES)
def test_chunked_body_over_the_cap_gets_413(
    receiver: Service, mode: str, total: int, size: int
) -> None:
    before, lines = scrape(receiver.url, REJECTED, reason="too_large"), log_lines(receiver)
    parts = [head(mode, "Transfer-Encoding: chunked\r\n"), *chunked(total, size)]
    status, error, closes = refusal(exchange(receiver, parts))
    assert (status, error, closes) == (413, "too_large", True)
    assert scrape(receiver.url, REJECTED, reason="too_large") == before + 1
    assert log_lines(receiver) <= lines + 1
    assert "Traceback" not in receiver.log()


@pytest.mark.parametrize("mode", ["raw", "form-base64"])
def test_sized_body_over_the_cap_gets_413_and_the_connection_closes(
    receiver: Service, mode: str
) -> None:
    before = scrape(receiver.url, REJECTED, reason="too_large")
    parts = [head(mode, f"Content-Length: {MAX_BODY + 1}\r\n"), b"\xff" * (MAX_BODY + 1)]
    status, error, closes = refusal(exchange(receiver, parts))
    assert (status, error, closes) == (413, "too_large", True)
    assert scrape(receiver.url, REJECTED, reason="too_large") == before + 1


def test_chunked_bodies_at_the_cap_are_read(receiver: Service) -> None:
    """A chunked body of exactly --max-body is a frame like any (here: not a JPEG, 422)."""
    status, error, _ = refusal(
        exchange(
            receiver, [head("raw", "Transfer-Encoding: chunked\r\n"), *chunked(MAX_BODY, 64 * KIB)]
        )
    )
    assert (status, error) == (422, "not_jpeg")


@pytest.mark.parametrize("mode", ["raw", "form-base64"])
def test_chunked_body_that_ends_early(receiver: Service, mode: str) -> None:
    """Past the cap, the answer is 413 at once; under it, the client's close is counted."""
    over = [head(mode, "Transfer-Encoding: chunked\r\n"), b"%x\r\n" % (3 * MAX_BODY), b"A" * KIB]
    status, error, closes = refusal(exchange(receiver, over))  # and nothing more is sent
    assert (status, error, closes) == (413, "too_large", True)

    dropped = "framewire_connections_dropped_total"
    before = scrape(receiver.url, dropped, reason="incomplete")
    under = [head(mode, "Transfer-Encoding: chunked\r\n"), *chunked(100 * KIB, 64 * KIB, end=False)]
    assert exchange(receiver, under, half_close=True) == b""  # cut short: never served
    assert scrape(receiver.url, dropped, reason="incomplete") == before + 1
    assert post_frame(receiver.url, "cam0", JPEG).status_code == 204
    assert "Traceback" not in receiver.log()


def test_broken_chunk_framing_gets_400(receiver: Service) -> None:
    for broken in (b"zz\r\n", b"1" * 2000):
        answer = exchange(receiver, [head("raw", "Transfer-Encoding: chunked\r\n"), broken])
        assert refusal(answer) == (400, "bad_chunks", True)
    assert "Traceback" not in receiver.log()


# --- capture times ------------------------------------------------------------------------------

DAY_NS = 86400 * 10**9
LATENCY = "framewire_frame_latency_seconds"


def untrue_times() -> dict[str, int]:
    """Capture times that fit in 64 bits but cannot be true, from the clock now."""
    now = time.time_ns()
    return {
        "zero": 0,
        "int64_max": 2**63 - 1,
        "a day ahead": now + DAY_NS,
        "a day behind": now - DAY_NS,
        "seconds": now // 10**9,
    }


def no_negative_latency(receiver: Service, camera: str) -> None:
    """Every latency figure of `camera` is >= 0: histogram sums, /latencies, /stats."""
    for stage in ("received", "served"):
        total = scrape(receiver.url, f"{LATENCY}_sum", camera=camera, stage=stage)
        assert total >= 0, (stage, total)
        assert all(s >= 0 for s in read_latencies(receiver.url, stage, camera)["seconds"])
    stats = requests.get(f"{receiver.url}/stats", timeout=5).json()["cameras"][camera]
    assert all((v or 0) >= 0 for k, v in stats["latency_ms"].items() if k != "samples"), stats


def post_at(
    receiver: Service, mode: str, captured_ns: int, seq: int = 1, camera: str = "skewed"
) -> requests.Response:
    frame = Frame(camera, seq, captured_ns, JPEG)
    if mode == "raw":
        return requests.post(
            f"{receiver.url}/frames", data=JPEG, headers=http_wire.headers(frame), timeout=10
        )
    form = urlencode(http_wire.form_fields(frame))
    headers = {"Content-Type": http_wire.FORM_TYPE}
    return requests.post(f"{receiver.url}/frames", data=form, headers=headers, timeout=10)


@pytest.mark.parametrize("mode", ["raw", "form-base64"])
def test_untrue_capture_times_are_refused_over_http(receiver: Service, mode: str) -> None:
    camera = f"skewed-{mode}"
    before = scrape(receiver.url, REJECTED, transport="http", reason="bad_timestamp")
    times = untrue_times()
    for name, captured_ns in times.items():
        response = post_at(receiver, mode, captured_ns, camera=camera)
        assert response.status_code == 422, (name, response.text)
        assert response.json()["error"] == "bad_timestamp", name
    after = scrape(receiver.url, REJECTED, transport="http", reason="bad_timestamp")
    assert after == before + len(times)
    # Refused before anything else: the camera was never made, no latency was recorded.
    assert camera not in requests.get(f"{receiver.url}/stats", timeout=5).json()["cameras"]

    # A sender's clock a little ahead (within --max-capture-ahead) is taken; latency >= 0.
    assert post_at(receiver, mode, time.time_ns() + 30 * 10**9, 2, camera).status_code == 204
    wait_until(
        lambda: requests.get(f"{receiver.url}/snapshot/{camera}.jpg", timeout=5).ok,
        what="the skewed camera served",
    )
    assert read_latencies(receiver.url, "received", camera)["seconds"][-1] == 0
    no_negative_latency(receiver, camera)


def test_the_window_is_a_setting(services: Services) -> None:
    receiver = services.receiver(
        "http", env={"FRAMEWIRE_MAX_CAPTURE_AHEAD": "0", "FRAMEWIRE_MAX_CAPTURE_BEHIND": "1"}
    )
    assert post_at(receiver, "raw", time.time_ns() + 5 * 10**9).status_code == 422
    assert post_at(receiver, "raw", time.time_ns() - 5 * 10**9).status_code == 422
    assert post_at(receiver, "raw", time.time_ns() - 10**8).status_code == 204


def test_untrue_capture_times_are_skipped_on_redis(
    services: Services, redis_server: RedisServer
) -> None:
    receiver = services.receiver("redis", "--redis-url", redis_server.url, "--stale-after", "30")
    client = redis_server.client()
    seq = iter(range(1, 10**6))

    def add(camera: str, captured_ns: int) -> None:
        frame = Frame(camera, next(seq), captured_ns, JPEG)
        client.xadd(redis_wire.key("stream", camera), redis_wire.stream_fields(frame))

    def rejected() -> float:
        return scrape(receiver.url, REJECTED, transport="redis", reason="bad_timestamp")

    for camera in ("skewed", "other"):  # the receiver follows a stream from its end once found
        wait_until(
            lambda c=camera: (add(c, time.time_ns()), c in stats_cameras(receiver))[1],
            interval=0.2,
            what=f"camera {camera} received",
        )
    count = 0
    for _ in range(2):
        for camera in ("skewed", "other"):
            for captured_ns in untrue_times().values():
                add(camera, captured_ns)
                count += 1  # one at a time: none is skipped as older than the next
                wait_until(lambda n=count: rejected() == n, timeout=5, what=f"{count} refused")
    add("skewed", time.time_ns() + 30 * 10**9)  # a clock a little ahead: taken
    wait_until(
        lambda: read_latencies(receiver.url, "received", "skewed")["seconds"][-1] == 0,
        what="the frame from a clock ahead",
    )
    for camera in ("skewed", "other"):
        assert (
            time.time_ns() // 10**9
            not in read_latencies(receiver.url, "received", camera)["captured_ns"]
        )
        no_negative_latency(receiver, camera)
    log = receiver.log()
    for camera in ("skewed", "other"):  # logged once per camera
        assert log.count(f"(bad_timestamp): camera {camera}:") == 1, log
