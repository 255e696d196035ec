"""Slow and silent clients cannot take a receiver down (BufferingWorker).

Half-sent requests wait on the worker's event loop, not in threads, and are
dropped after --request-timeout; a viewer that could not take a whole frame within
--viewer-timeout (reading nothing, or too slowly) is dropped and its slot freed; past the
connection limit the half-sent request that waited longest makes room.
"""

from __future__ import annotations

import socket
import threading
import time

import requests

from conftest import Services, scrape, wait_until
from helpers import Viewer, make_jpeg, post_frame

HALF_SENT = 500


def half_sent(port: int, kind: int) -> socket.socket:
    """A connection that never completes its request: silent, half a head, or half a body."""
    sock = socket.create_connection(("127.0.0.1", port))
    if kind == 1:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    elif kind == 2:
        sock.sendall(
            b"POST /frames HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
            b"Content-Length: 100000\r\n\r\n" + b"\xff\xd8" * 500
        )
    return sock


def closed_by_server(sock: socket.socket) -> bool:
    sock.settimeout(5)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_half_sent_connections_starve_nothing(services: Services) -> None:
    request_timeout = 8.0
    receiver = services.receiver("http", "--request-timeout", str(request_timeout))
    services.sender("--http-url", f"{receiver.url}/frames", "--redis-url", "")
    wait_until(lambda: requests.get(f"{receiver.url}/readyz", timeout=2).ok, what="frames")

    opened = time.monotonic()
    held = [half_sent(int(receiver.url.rsplit(":", 1)[1]), i % 3) for i in range(HALF_SENT)]
    trickling = threading.Event()

    def trickle(sock: socket.socket) -> None:  # a slowloris: a byte every 0.2 s, never done
        sock.sendall(b"GET / HTTP/1.1\r\n")
        try:
            while not trickling.wait(0.2):
                sock.sendall(b"X")
        except OSError:
            pass

    trickler = socket.create_connection(("127.0.0.1", int(receiver.url.rsplit(":", 1)[1])))
    threading.Thread(target=trickle, args=(trickler,), daemon=True).start()

    # While they are held: ingest, /healthz and /metrics answer as usual.
    before, started = scrape(receiver.url, "framewire_frames_received_total"), time.monotonic()
    latencies = []
    while time.monotonic() - started < 3.0:
        asked = time.monotonic()
        assert requests.get(f"{receiver.url}/healthz", timeout=5).ok
        latencies.append(time.monotonic() - asked)
        time.sleep(0.1)
    received = scrape(receiver.url, "framewire_frames_received_total") - before
    fps = received / (time.monotonic() - started)
    assert time.monotonic() - opened < request_timeout, "measured after the drops: too slow"
    print(f"held {HALF_SENT}: ingest {fps:.1f} fps, /healthz max {max(latencies) * 1000:.0f} ms")
    assert fps >= 10, f"ingest starved: {fps:.1f} fps"
    assert max(latencies) < 1.0, latencies

    # After --request-timeout every one is dropped, counted, and closed.
    dropped = "framewire_connections_dropped_total"
    wait_until(
        lambda: scrape(receiver.url, dropped, reason="request_timeout") >= HALF_SENT + 1,
        timeout=request_timeout + 10,
        what="the half-sent requests to be dropped",
    )
    trickling.set()
    assert scrape(receiver.url, dropped, reason="request_timeout") == HALF_SENT + 1
    print(f"dropped after {time.monotonic() - opened:.1f} s")
    assert all(closed_by_server(sock) for sock in held)
    assert closed_by_server(trickler)
    assert scrape(receiver.url, "framewire_frames_received_total") > before + received


def test_buffered_bytes_are_capped_across_connections(services: Services) -> None:
    """Slow senders of big bodies fill --max-buffered, then are dropped; ingest goes on."""
    receiver = services.receiver("http", "--max-body", "200000", "--max-buffered", "1000000")
    port = int(receiver.url.rsplit(":", 1)[1])
    head = b"POST /frames HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
    holders = []
    for _ in range(10):  # 10 x 150 KB of unfinished bodies against a 1 MB cap
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(head + b"Content-Length: 200000\r\n\r\n" + b"\xff" * 150_000)
        holders.append(sock)
    dropped = "framewire_connections_dropped_total"
    wait_until(lambda: scrape(receiver.url, dropped, reason="buffer_full") >= 1, what="a drop")
    assert sum(closed_by_server(sock) for sock in holders[-3:]) >= 1
    jpeg = make_jpeg(160, 120)
    for sock in holders:
        sock.close()
    wait_until(
        lambda: post_frame(receiver.url, "cam0", jpeg).status_code == 204,
        what="ingest after the drops",
    )


def test_viewer_reading_nothing_is_dropped(services: Services) -> None:
    receiver = services.receiver("http", "--viewer-timeout", "2")
    services.sender("--http-url", f"{receiver.url}/frames", "--redis-url", "")
    wait_until(lambda: requests.get(f"{receiver.url}/readyz", timeout=2).ok, what="frames")
    reader = Viewer(f"{receiver.url}/stream.mjpg")
    reader.start()

    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(("127.0.0.1", int(receiver.url.rsplit(":", 1)[1])))
    stalled.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n")
    viewers = "framewire_viewers"
    wait_until(lambda: scrape(receiver.url, viewers) == 2, what="two viewers")
    opened = time.monotonic()
    wait_until(
        lambda: scrape(receiver.url, viewers) == 1, timeout=60, what="the stalled viewer dropped"
    )
    print(f"stalled viewer dropped after {time.monotonic() - opened:.1f} s")
    assert scrape(receiver.url, "framewire_connections_dropped_total", reason="send_timeout") == 1
    assert "could not take a whole frame within --viewer-timeout (2 s)" in receiver.log()
    parts = reader.parts
    wait_until(lambda: reader.parts > parts + 5, what="the reading viewer to keep getting frames")
    reader.close()
    wait_until(lambda: scrape(receiver.url, viewers) == 0, what="no viewer left")
    stalled.close()


def test_viewer_reading_too_slowly_is_dropped(services: Services) -> None:
    """Still reading, 2 KB/s, but a frame takes it far longer than --viewer-timeout."""
    receiver = services.receiver("http", "--viewer-timeout", "2")
    services.sender("--http-url", f"{receiver.url}/frames", "--redis-url", "")
    wait_until(lambda: requests.get(f"{receiver.url}/readyz", timeout=2).ok, what="frames")
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect(("127.0.0.1", int(receiver.url.rsplit(":", 1)[1])))
    slow.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n")
    got, done = [0], threading.Event()

    def read_slowly() -> None:
        try:
            while not done.wait(0.25) and (chunk := slow.recv(512)):
                got[0] += len(chunk)
        except OSError:
            pass

    threading.Thread(target=read_slowly, daemon=True).start()
    dropped = "framewire_connections_dropped_total"
    wait_until(
        lambda: scrape(receiver.url, dropped, reason="send_timeout") == 1,
        timeout=60,
        what="the slow viewer dropped",
    )
    done.set()
    assert got[0] > 0, "it was reading"
    assert "could not take a whole frame within --viewer-timeout (2 s)" in receiver.log()
    wait_until(lambda: scrape(receiver.url, "framewire_viewers") == 0, what="its slot freed")
    slow.close()


def test_expect_100_continue_is_answered_before_the_body(services: Services) -> None:
    receiver = services.receiver("http")
    sock = socket.create_connection(("127.0.0.1", int(receiver.url.rsplit(":", 1)[1])))
    sock.settimeout(5)
    sock.sendall(
        b"POST /frames HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
        b"Content-Length: 4\r\nExpect: 100-continue\r\n\r\n"
    )
    assert sock.recv(1024).startswith(b"HTTP/1.1 100 Continue")
    sock.sendall(b"nope")
    answer = b""
    while b"\r\n\r\n" not in answer.replace(b"HTTP/1.1 100 Continue\r\n\r\n", b""):
        answer += sock.recv(4096)
    assert b"\r\n\r\nHTTP/1.1 400 " in answer, answer  # refused (no camera id), not stalled
    sock.close()


def test_pipelined_and_kept_alive_requests_are_all_answered(services: Services) -> None:
    receiver = services.receiver("http")
    sock = socket.create_connection(("127.0.0.1", int(receiver.url.rsplit(":", 1)[1])))
    sock.settimeout(5)
    get = b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
    sock.sendall(get + b"\r\n" + get + b"\r\n" + get[:10])  # two whole, a third begun
    answers = b""
    while answers.count(b"HTTP/1.1 200") < 2:
        answers += sock.recv(4096)
    sock.sendall(get[10:] + b"Connection: close\r\n\r\n")
    while chunk := sock.recv(4096):
        answers += chunk
    assert answers.count(b"HTTP/1.1 200") == 3, answers
    sock.close()


def test_probes_answer_past_the_connection_limit(services: Services) -> None:
    """1,100 half-sent connections against a worker that holds 1,000: each new connection
    closes the half-sent request that waited longest, so probes are answered at once."""
    receiver = services.receiver("http", "--request-timeout", "60")
    services.sender("--http-url", f"{receiver.url}/frames", "--redis-url", "")
    wait_until(lambda: requests.get(f"{receiver.url}/readyz", timeout=2).ok, what="frames")
    port = int(receiver.url.rsplit(":", 1)[1])
    held = [half_sent(port, i % 3) for i in range(1100)]

    latencies = []
    for path in ["/healthz", "/readyz"] * 10:  # each on a new connection
        asked = time.monotonic()
        assert requests.get(f"{receiver.url}{path}", timeout=3).status_code == 200
        latencies.append(time.monotonic() - asked)
    print(f"1100 half-sent: probes max {max(latencies) * 1000:.0f} ms")
    assert max(latencies) < 1.0, latencies

    dropped = scrape(receiver.url, "framewire_connections_dropped_total", reason="connection_limit")
    assert dropped >= 100
    assert closed_by_server(held[0])  # the longest waiting went first
    assert receiver.log().count("at the connection limit") == 1
    for sock in held:
        sock.close()
