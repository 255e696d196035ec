"""The wire contract as code: Frame to headers / stream fields / form and back, and every
refusal (the one matrix of refusal reasons; tests/unit/test_routes.py maps them to answers)."""

from __future__ import annotations

import time
from urllib.parse import urlencode

import pytest

from framewire.frame import Frame, WireError
from framewire.transports import http as http_wire
from framewire.transports import redis as redis_wire
from framewire.transports.http import (
    HEADER_CAMERA,
    HEADER_CAPTURED_NS,
    HEADER_SEQ,
    _form_body,
    form_fields,
)
from helpers import make_jpeg

JPEG = make_jpeg()


def test_http_round_trip() -> None:
    frame = Frame("cam-1", 42, 1_700_000_000_123_456_789, JPEG)
    headers = http_wire.headers(frame)
    assert headers["Content-Type"] == "image/jpeg"
    assert http_wire.from_headers(headers, JPEG) == frame


def test_stream_round_trip() -> None:
    frame = Frame("cam.2", 7, 1_700_000_000_000_000_001, JPEG)
    assert redis_wire.key("stream", "cam.2") == "framewire:frames:cam.2"
    assert redis_wire.camera_from_key(b"framewire:frames:cam.2", "stream") == "cam.2"
    assert redis_wire.from_stream("cam.2", redis_wire.stream_fields(frame)) == frame


GOOD = {HEADER_CAMERA: "cam0", HEADER_SEQ: "1", HEADER_CAPTURED_NS: "1"}


@pytest.mark.parametrize(
    ("headers", "body", "reason"),
    [
        ({**GOOD, HEADER_CAMERA: ""}, JPEG, "missing_camera"),
        ({**GOOD, HEADER_CAMERA: "../etc"}, JPEG, "bad_camera"),
        ({**GOOD, HEADER_CAMERA: "x" * 65}, JPEG, "bad_camera"),
        ({HEADER_CAMERA: "cam0", HEADER_CAPTURED_NS: "1"}, JPEG, "missing_seq"),
        ({**GOOD, HEADER_SEQ: "-1"}, JPEG, "bad_seq"),
        ({**GOOD, HEADER_SEQ: "1e3"}, JPEG, "bad_seq"),
        ({**GOOD, HEADER_SEQ: "٣"}, JPEG, "bad_seq"),  # a non-ASCII digit
        ({**GOOD, HEADER_CAPTURED_NS: str(2**63)}, JPEG, "bad_captured_ns"),
        (GOOD, b"", "empty_body"),
        (GOOD, b"GIF89a....", "not_jpeg"),
        (GOOD, JPEG[: len(JPEG) // 2], "truncated_jpeg"),
    ],
)
def test_http_refusals(headers: dict[str, str], body: bytes, reason: str) -> None:
    with pytest.raises(WireError) as caught:
        http_wire.from_headers(headers, body)
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({b"seq": b"1", b"captured_ns": b"1"}, "missing_jpeg"),
        ({b"jpeg": JPEG, b"captured_ns": b"1"}, "missing_seq"),
        ({b"jpeg": JPEG, b"seq": b"x", b"captured_ns": b"1"}, "bad_seq"),
        ({b"jpeg": b"nope", b"seq": b"1", b"captured_ns": b"1"}, "not_jpeg"),
    ],
)
def test_stream_refusals(fields: dict[bytes, bytes], reason: str) -> None:
    with pytest.raises(WireError) as caught:
        redis_wire.from_stream("cam0", fields)
    assert caught.value.reason == reason


def test_foreign_stream_key_is_refused() -> None:
    with pytest.raises(WireError):
        redis_wire.camera_from_key(b"other:key", "stream")


def test_comparison_mode_round_trips() -> None:
    frame = Frame("cam0", 3, 1_700_000_000_000_000_003, JPEG)
    assert http_wire.from_form(urlencode(http_wire.form_fields(frame)).encode()) == frame
    assert redis_wire.from_pubsub("cam0", redis_wire.pubsub_message(frame)) == frame
    assert redis_wire.from_latest("cam0", redis_wire.latest_value(frame)) == frame


@pytest.mark.parametrize(
    ("parse", "reason"),
    [
        (
            lambda: http_wire.from_form(b"camera=c&seq=1&captured_ns=1&image=%25%25"),
            "bad_base64",
        ),
        (lambda: redis_wire.from_pubsub("c", b"no metadata line"), "bad_message"),
        (lambda: redis_wire.from_pubsub("c", b"1 x\n" + JPEG), "bad_captured_ns"),
        (lambda: redis_wire.from_latest("c", b"1 2"), "bad_message"),
        (lambda: redis_wire.from_latest("c", b"1 2 bm90IGEganBlZw=="), "not_jpeg"),
    ],
)
def test_comparison_mode_refusals(parse, reason: str) -> None:
    with pytest.raises(WireError) as caught:
        parse()
    assert caught.value.reason == reason


@pytest.mark.parametrize("order", ["image-first", "image-last"])
def test_form_is_decoded_in_place_across_slices(order: str) -> None:
    """A form bigger than one decoding slice, '+' and '/' percent-encoded, fields in any order."""
    jpeg = make_jpeg(1280, 720, seed=4, quality=95)  # well over 64 KiB of base64
    fields = http_wire.form_fields(Frame("cam7", 9, 123, jpeg))
    if order == "image-last":
        fields = {k: fields[k] for k in ("camera", "seq", "captured_ns", "image")}
    body = urlencode(fields).encode()
    assert b"%2B" in body and b"%2F" in body
    frame = http_wire.from_form(bytearray(body))
    assert (frame.camera, frame.seq, frame.captured_ns) == ("cam7", 9, 123)
    assert bytes(frame.jpeg) == jpeg


@pytest.mark.parametrize(
    ("image", "reason"),
    [
        ("QUFB=QUFB", "bad_base64"),  # padding in the middle
        ("QUF", "bad_base64"),  # not a whole number of groups
        ("QUFB+QUFB", "bad_base64"),  # a form's '+' is a space
        ("", "empty_body"),
    ],
)
def test_form_image_refusals(image: str, reason: str) -> None:
    body = f"camera=c&seq=1&captured_ns=1&image={image}".encode()
    with pytest.raises(WireError) as caught:
        http_wire.from_form(body)
    assert caught.value.reason == reason


def test_the_form_body_is_the_urlencoded_form() -> None:
    for size in (64, 640):
        frame = Frame("cam-1", 7, time.time_ns(), make_jpeg(size, size * 3 // 4))
        assert _form_body(frame) == urlencode(form_fields(frame)).encode()
