"""The request framer (framewire.request_buffer) in process: it hands a request over whole,
ends chunked bodies at the last chunk and measures them by their data, and hands over at
once what will be refused. tests/system/test_slow_clients.py holds the worker built on it."""

from __future__ import annotations

import pytest

from framewire.request_buffer import RequestBuffer

MAX_HEAD, MAX_BODY = 8192, 1000


def test_whole_requests_only() -> None:
    head = b"POST /frames HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n"
    assert not RequestBuffer(MAX_HEAD, MAX_BODY, head[:20]).ready
    assert not RequestBuffer(MAX_HEAD, MAX_BODY, head + b"abc").ready
    assert RequestBuffer(MAX_HEAD, MAX_BODY, head + b"abcde").ready
    assert RequestBuffer(MAX_HEAD, MAX_BODY, b"GET / HTTP/1.1\r\n\r\n").ready
    pieces = RequestBuffer(MAX_HEAD, MAX_BODY)
    assert [pieces.feed(bytes([b])) for b in head + b"abcde"][-2:] == [False, True]


def test_chunked_bodies_end_at_the_last_chunk() -> None:
    head = b"POST /frames HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    partial = RequestBuffer(MAX_HEAD, MAX_BODY, head + b"3\r\nabc\r\n")
    assert not partial.ready
    assert not partial.feed(b"0\r\n")
    assert partial.feed(b"\r\n")
    assert RequestBuffer(MAX_HEAD, MAX_BODY, head + b"3;x=1\r\nabc\r\n0\r\nT: 1\r\n\r\n").ready


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 2000,  # head over the cap: the parser answers 431
        b"POST / HTTP/1.1\r\nContent-Length: 5000\r\n\r\n",  # over the body cap: the app says 413
        b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",  # ambiguous: 400
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",  # bad chunk size: 400
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + b"400\r\n" + b"x" * 1026,
    ],
)
def test_refusable_requests_are_handed_over_at_once(request_bytes: bytes) -> None:
    assert RequestBuffer(MAX_HEAD, MAX_BODY, request_bytes).ready


def test_the_framer_measures_chunked_bodies_by_their_data() -> None:
    start = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    at_cap = RequestBuffer(8192, 1000, start + b"3e8\r\n" + b"x" * 1000 + b"\r\n0\r\n\r\n")
    assert at_cap.ready and at_cap.refused is None
    over = RequestBuffer(8192, 1000, start + b"3e8\r\n" + b"x" * 1000 + b"\r\n1\r\n")
    assert over.ready and over.refused is not None and over.refused.code == 413
    tiny = RequestBuffer(8192, 1000, start + b"1\r\nx\r\n" * 900)  # 900 bytes in 5400
    assert tiny.ready and tiny.refused is not None and tiny.refused.code == 413
