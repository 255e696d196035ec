"""The HTTP transport's wire codec and sending side: raw JPEG in `POST /frames`.

The body is the JPEG; the metadata rides in headers. Mode `form-base64`
reproduces the original article for comparison: the JPEG base64-encoded in
a form post. The receiving side (a Flask blueprint) is in http_ingest.py,
so the sender never loads Flask.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping

import requests

from framewire.config import redact
from framewire.frame import Frame, b64decode, check_jpeg, parse_camera, parse_int
from framewire.transports import FrameSender, PublishError, Refused, Unreachable

CONTENT_TYPE = "image/jpeg"
HEADER_CAMERA = "X-Framewire-Camera"
HEADER_SEQ = "X-Framewire-Seq"
HEADER_CAPTURED_NS = "X-Framewire-Captured-Ns"
FORM_TYPE = "application/x-www-form-urlencoded"  # form-base64: the fields below
FORM_IMAGE = "image"  # base64 JPEG; camera, seq and captured_ns ride as form fields too

# HTTP status for each reason a frame is refused; anything else is a 400.
STATUS = {
    "unauthorized": 401,
    "too_large": 413,
    "content_type": 415,
    "camera_limit": 429,
    "empty_body": 422,
    "not_jpeg": 422,
    "truncated_jpeg": 422,
    "undecodable": 422,
    "too_many_pixels": 422,
    "implausible_size": 422,
    "bad_base64": 422,
    "stopping": 503,
}


def headers(frame: Frame) -> dict[str, str]:
    """The HTTP headers that carry a frame's metadata."""
    return {
        "Content-Type": CONTENT_TYPE,
        HEADER_CAMERA: frame.camera,
        HEADER_SEQ: str(frame.seq),
        HEADER_CAPTURED_NS: str(frame.captured_ns),
    }


def form_fields(frame: Frame) -> dict[str, str]:
    """The article's HTTP form: base64 JPEG plus metadata fields."""
    return {
        FORM_IMAGE: base64.b64encode(frame.jpeg).decode(),
        "camera": frame.camera,
        "seq": str(frame.seq),
        "captured_ns": str(frame.captured_ns),
    }


def from_headers(fields: Mapping[str, str], body: bytes) -> Frame:
    """Build a Frame from a `POST /frames` request; raises WireError."""
    camera = parse_camera(fields.get(HEADER_CAMERA))
    seq = parse_int("seq", fields.get(HEADER_SEQ))
    captured_ns = parse_int("captured_ns", fields.get(HEADER_CAPTURED_NS))
    check_jpeg(body)
    return Frame(camera, seq, captured_ns, body)


def from_form(form: Mapping[str, str]) -> Frame:
    """Build a Frame from the article's form post; raises WireError."""
    camera = parse_camera(form.get("camera"))
    seq = parse_int("seq", form.get("seq"))
    captured_ns = parse_int("captured_ns", form.get("captured_ns"))
    jpeg = b64decode(form.get(FORM_IMAGE, "").encode())
    check_jpeg(jpeg)
    return Frame(camera, seq, captured_ns, jpeg)


class HttpSender(FrameSender):
    """Posts frames to a receiver's `POST /frames` over one keep-alive session.

    `send(image, camera=...)` takes a BGR image, JPEG bytes or a Frame. A
    refused frame raises `Refused` with the receiver's reason; a receiver
    that cannot be reached or does not answer in time raises `Unreachable`.
    """

    name = "http"

    def __init__(
        self,
        url: str = "http://127.0.0.1:8001/frames",
        token: str = "",
        *,
        connect_timeout: float = 1.0,
        read_timeout: float = 2.0,
        mode: str = "raw",
        camera: str = "cam0",
        quality: int = 80,
    ) -> None:
        super().__init__(camera, quality)
        self.url = url
        self.mode = mode
        self.target = redact(url)
        self._timeout = (connect_timeout, read_timeout)
        self._session = requests.Session()
        if token:
            self._session.headers["Authorization"] = f"Bearer {token}"

    def deliver(self, frame: Frame) -> None:
        if self.mode == "raw":
            data, extra = frame.jpeg, headers(frame)
        else:
            data, extra = form_fields(frame), None
        connect, read = self._timeout
        try:
            response = self._session.post(self.url, data=data, headers=extra, timeout=self._timeout)
        except requests.ConnectionError as exc:  # also a connect timeout
            detail = f"cannot connect to the receiver at {self.target} within {connect:g} s"
            raise Unreachable("connect", detail) from exc
        except requests.Timeout as exc:
            detail = f"no answer from the receiver at {self.target} within {read:g} s"
            raise Unreachable("timeout", detail) from exc
        except requests.RequestException as exc:
            raise PublishError("request", type(exc).__name__) from exc
        if response.status_code >= 300:
            error, detail = _refusal(response)
            raise Refused(error, detail, response.status_code)

    def close(self) -> None:
        self._session.close()


def _refusal(response: requests.Response) -> tuple[str, str]:
    """The receiver's JSON `error` and `detail` (or the status line, for another answer)."""
    try:
        body = response.json()
        return str(body["error"]), str(body.get("detail", ""))
    except (ValueError, KeyError, TypeError, AttributeError):
        return response.reason or str(response.status_code), "not a framewire receiver's answer"
