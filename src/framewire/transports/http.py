"""The HTTP transport's wire codec and sending side: raw JPEG in `POST /frames`.

The body is the JPEG; the metadata rides in headers. Mode `form-base64`
reproduces the original article for comparison: the JPEG base64-encoded in
a form post. The receiving side (a Flask blueprint) is in http_ingest.py,
so the sender never loads Flask.
"""

from __future__ import annotations

import base64
import os
import ssl
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_plus, unquote_to_bytes, urlsplit

import requests
from requests.adapters import HTTPAdapter

from framewire.config import redact
from framewire.frame import Frame, WireError, b64decode, check_jpeg, parse_camera, parse_int
from framewire.transports import FrameSender, PublishError, Refused, Unreachable

CONTENT_TYPE = "image/jpeg"
HEADER_CAMERA = "X-Framewire-Camera"
HEADER_SEQ = "X-Framewire-Seq"
HEADER_CAPTURED_NS = "X-Framewire-Captured-Ns"
FORM_TYPE = "application/x-www-form-urlencoded"  # form-base64: the fields below
FORM_IMAGE = "image"  # base64 JPEG; camera, seq and captured_ns ride as form fields too
MAX_FORM_FIELD = 256  # a form's other fields are short; longer ones are ignored
_STEP = 64 * 1024  # base64 characters decoded at a time

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
    "bad_timestamp": 422,
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


def from_form(body: bytes | bytearray) -> Frame:
    """Build a Frame from the article's form post (its urlencoded body); raises WireError.

    The base64 image is decoded in place, in the body's own buffer, a slice at a time:
    the request costs one body of memory, as a raw one does (a parsed form would hold the
    body, the field's text, its bytes and the JPEG at once).
    """
    buffer = body if isinstance(body, bytearray) else bytearray(body)
    fields: dict[str, str] = {}
    image = (0, 0)
    at = 0
    while at < len(buffer):
        end = buffer.find(b"&", at)
        end = len(buffer) if end < 0 else end
        equals = buffer.find(b"=", at, end)
        stop = end if equals < 0 else equals
        name = unquote_plus(bytes(buffer[at:stop]).decode("latin-1"))
        if name == FORM_IMAGE:
            image = image if image != (0, 0) else (min(stop + 1, end), end)
        elif name not in fields and end - stop <= MAX_FORM_FIELD:
            fields[name] = unquote_plus(bytes(buffer[stop + 1 : end]).decode("latin-1"))
        at = end + 1
    camera = parse_camera(fields.get("camera"))
    seq = parse_int("seq", fields.get("seq"))
    captured_ns = parse_int("captured_ns", fields.get("captured_ns"))
    size = _b64decode_in_place(buffer, *image)
    del buffer[size:]
    check_jpeg(buffer)
    return Frame(camera, seq, captured_ns, buffer)


def _unquote(text: bytes) -> bytes:
    """Form-decode base64 text: a `+` is a space (so not base64), the escapes of `+`, `/`
    and `=` are replaced in place, any other escape (rare) is decoded the general way."""
    if b"+" in text:
        text = text.replace(b"+", b" ")
    for escape, char in ((b"%2B", b"+"), (b"%2F", b"/"), (b"%3D", b"=")):
        text = text.replace(escape, char).replace(escape.lower(), char)
    return unquote_to_bytes(text) if b"%" in text else text


def _b64decode_in_place(buffer: bytearray, start: int, end: int) -> int:
    """Percent- and base64-decode `buffer[start:end]` into `buffer[0:n]`; returns n.

    Writing never overtakes reading: every 4 characters read (more, percent-encoded)
    become at most 3 bytes written, so each slice is read before it is overwritten.
    """
    written, carry = 0, b""
    while start < end or carry:
        stop = min(end, start + _STEP)
        while (
            stop < end and stop > start + 2 and b"%" in buffer[stop - 2 : stop]
        ):  # never split a %XX escape
            stop -= 1
        text = carry + _unquote(bytes(buffer[start:stop]))
        start = stop
        whole = len(text) if start >= end else len(text) - len(text) % 4
        if start < end and b"=" in text[:whole]:  # padding is only allowed at the very end
            raise WireError("bad_base64", "image is not valid base64")
        decoded = b64decode(text[:whole])
        buffer[written : written + len(decoded)] = decoded
        written += len(decoded)
        carry = text[whole:]
        if start >= end:
            break
    return written


class NamedTLSAdapter(HTTPAdapter):
    """HTTPS to an address, verified as a name: urllib3's `server_hostname` (SNI) and
    `assert_hostname` (the certificate's name check) are `name`, not the address dialled."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__()

    def init_poolmanager(self, *args: Any, **pool_kwargs: Any) -> None:
        pool_kwargs.update(server_hostname=self.name, assert_hostname=self.name)
        super().init_poolmanager(*args, **pool_kwargs)


def _tls_reason(exc: BaseException) -> str:
    """Why a TLS handshake or certificate check failed, from the exception's chain."""
    seen: BaseException | None = exc
    for _ in range(16):  # a chain is short; never loop on a strange one
        if seen is None:
            break
        if isinstance(seen, ssl.SSLCertVerificationError):
            return str(seen.verify_message or seen.reason)
        if isinstance(seen, ssl.SSLError):
            return str(seen.reason or seen)
        if isinstance(seen, ValueError) and "match" in str(seen):  # urllib3's name check
            return str(seen)
        inner = getattr(seen, "reason", None)  # urllib3's MaxRetryError and friends
        if not isinstance(inner, BaseException):
            inner = next((a for a in seen.args if isinstance(a, BaseException)), None)
        seen = inner or seen.__cause__ or seen.__context__
    return type(exc).__name__


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
        ca_cert: str = "",
        server_name: str = "",
    ) -> None:
        """`ca_cert`: the CA to verify an https:// receiver with (empty: the system's).
        `server_name`: the name an https:// receiver at an address (a replica's IP) must
        have a certificate for; it is also the SNI and the Host header."""
        super().__init__(camera, quality)
        self.url = url
        self.mode = mode
        self.target = redact(url)
        self._timeout = (connect_timeout, read_timeout)
        self._session = requests.Session()
        # The environment is read once, here, not on every frame: requests would otherwise
        # look up proxies and ~/.netrc per request (syscalls and Python each frame), and a
        # .netrc entry would replace the bearer token.
        self._session.trust_env = False
        self._session.proxies = requests.utils.get_environ_proxies(url)
        env_ca = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        self._verify: str | bool = ca_cert or env_ca or True
        parts = urlsplit(url)
        if server_name and parts.scheme == "https":
            self._session.mount("https://", NamedTLSAdapter(server_name))
            port = f":{parts.port}" if parts.port and parts.port != 443 else ""
            self._session.headers["Host"] = f"{server_name}{port}"
            self.target += f" (as {server_name})"
        if token:
            self._session.headers["Authorization"] = f"Bearer {token}"

    def deliver(self, frame: Frame) -> None:
        if self.mode == "raw":
            data, extra = frame.jpeg, headers(frame)
        else:
            data, extra = form_fields(frame), None
        connect, read = self._timeout
        try:
            response = self._session.post(
                self.url, data=data, headers=extra, timeout=self._timeout, verify=self._verify
            )
        except requests.exceptions.SSLError as exc:
            detail = f"TLS with the receiver at {self.target} refused: {_tls_reason(exc)}"
            raise PublishError("tls", detail) from exc
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
