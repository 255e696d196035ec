"""The HTTP transport's wire codec and sending side: raw JPEG in `POST /frames`.

The body is the JPEG; the metadata rides in headers. Mode `form-base64`
reproduces the original article for comparison: the JPEG base64-encoded in
a form post. The receiving side (a Flask blueprint) is in http_ingest.py,
so the sender never loads Flask.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import select
import socket
import ssl
from collections.abc import Callable, Mapping
from urllib.parse import unquote, unquote_plus, unquote_to_bytes, urlencode, urlsplit

from framewire.frame import Frame, WireError, b64decode, check_jpeg, parse_camera, parse_int
from framewire.transports import FrameSender, PublishError, Refused, Unreachable
from framewire.urls import proxy_for, redact

CONTENT_TYPE = "image/jpeg"
HEADER_CAMERA = "X-Framewire-Camera"
HEADER_SEQ = "X-Framewire-Seq"
HEADER_CAPTURED_NS = "X-Framewire-Captured-Ns"
FORM_TYPE = "application/x-www-form-urlencoded"  # form-base64: the fields below
FORM_IMAGE = "image"  # base64 JPEG; camera, seq and captured_ns ride as form fields too
MAX_FORM_FIELD = 256  # a form's other fields are short; longer ones are ignored
_STEP = 64 * 1024  # base64 characters decoded at a time
_NAME_MISMATCH = (62, 64)  # OpenSSL's X509_V_ERR_HOSTNAME_MISMATCH, _IP_ADDRESS_MISMATCH

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


class _Connection(http.client.HTTPConnection):
    """One keep-alive connection: TCP to `host` (through a proxy's CONNECT tunnel when one is
    set), then TLS when there is a `context`, with `name` as SNI and in the certificate check
    (OpenSSL's, not the address dialled)."""

    def __init__(
        self, host: str, port: int, timeout: float, context: ssl.SSLContext | None, name: str
    ) -> None:
        super().__init__(host, port, timeout=timeout)
        self.context = context
        self.name = name

    def connect(self) -> None:
        super().connect()  # TCP_NODELAY, and the tunnel if one is set
        if self.context is not None:
            self.sock = self.context.wrap_socket(self.sock, server_hostname=self.name)


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
        seen = seen.__cause__ or seen.__context__
    return type(exc).__name__


def _basic(user: str | None, password: str | None) -> str:
    """An HTTP Basic credential from a URL's (percent-encoded) user and password."""
    pair = f"{unquote(user or '')}:{unquote(password or '')}"
    return "Basic " + base64.b64encode(pair.encode()).decode()


def _form_body(frame: Frame) -> bytes:
    """`form_fields(frame)` urlencoded, as `urlencode` does it but with the base64 image
    quoted by three replaces (its only characters to quote are `+`, `/` and `=`)."""
    fields = form_fields(frame)
    image = fields.pop(FORM_IMAGE).replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")
    return f"{FORM_IMAGE}={image}&{urlencode(fields)}".encode()


REQUESTS: dict[str, Callable[[Frame], tuple[bytes, dict[str, str]]]] = {  # mode -> body, headers
    "raw": lambda frame: (frame.jpeg, headers(frame)),
    "form-base64": lambda frame: (_form_body(frame), {"Content-Type": FORM_TYPE}),
}
HTTP_MODES = tuple(REQUESTS)


def _dropped(sock: socket.socket) -> bool:
    """Whether an idle keep-alive connection has something to read: the receiver closed it."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


class HttpSender(FrameSender):
    """Posts frames to a receiver's `POST /frames` over one keep-alive connection (http.client:
    a third of the CPU per frame of a requests session), reconnecting on the next send after
    any error. Each HttpSender is used by one thread.

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
        """`ca_cert`: the CA to verify an https:// receiver with (else REQUESTS_CA_BUNDLE or
        CURL_CA_BUNDLE, else the system's). `server_name`: the name an https:// receiver at an
        address (a replica's IP) must have a certificate for; it is also the SNI and the Host
        header. Proxies come from the environment, read once, here; a ~/.netrc is never read
        (the token is the credential)."""
        super().__init__(camera, quality)
        if mode not in REQUESTS:
            raise ValueError(f"mode must be one of {', '.join(REQUESTS)}")
        self.url = url
        self.mode = mode
        self._request = REQUESTS[mode]
        self.target = redact(url)
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        parts = urlsplit(url)
        https = parts.scheme == "https"
        host = parts.hostname or ""
        port = parts.port or (443 if https else 80)
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        name = server_name if server_name and https else host
        if server_name and https:
            self.target += f" (as {server_name})"
        netloc = f"[{name}]" if ":" in name else name
        netloc += f":{parts.port}" if parts.port and parts.port != (443 if https else 80) else ""
        self._headers = {"Host": netloc}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        elif parts.username:  # credentials in the URL, as requests sent them (never logged)
            self._headers["Authorization"] = _basic(parts.username, parts.password)
        env_ca = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        self._cafile = ca_cert or env_ca or None
        self._context = ssl.create_default_context(cafile=self._cafile) if https else None
        # Dialled: the receiver, or an http:// proxy (a CONNECT tunnel to the receiver for
        # https, else the whole URL in the request line).
        self._name = name
        self._dial, self._tunnel = (host, port), None
        self._proxy_headers: dict[str, str] = {}
        self._invalid = "" if host and (https or parts.scheme == "http") else "not an http(s) URL"
        proxy = urlsplit(proxy_for(url))
        if proxy.scheme not in ("", "http"):
            self._invalid = f"a {proxy.scheme}:// proxy is not supported; use an http:// one"
        elif proxy.scheme:
            self._dial = (proxy.hostname or "", proxy.port or 80)
            if proxy.username:
                auth = _basic(proxy.username, proxy.password)
                self._proxy_headers = {"Proxy-Authorization": auth}
            if https:
                self._tunnel = (host, port)
            else:
                self._path = f"http://{netloc}{self._path}"
                self._headers.update(self._proxy_headers)
        self._connection: _Connection | None = None

    def _connect(self) -> _Connection:
        """The open connection, or a new one (within the connect timeout)."""
        connection = self._connection
        if connection is not None and connection.sock is not None and not _dropped(connection.sock):
            return connection
        self.close()
        if self._invalid:
            raise PublishError("request", self._invalid)
        connection = self._open(self._context)
        try:
            connection.connect()
        except ssl.SSLError as exc:
            connection.close()
            reason = _tls_reason(exc)
            if getattr(exc, "verify_code", 0) in _NAME_MISMATCH:
                reason = reason.rstrip(".") + self._certificate_names()
            raise self._tls_refused(reason) from exc
        except OSError as exc:  # refused, unresolvable, timed out, a proxy's refusal
            connection.close()
            raise self._cannot_connect() from exc
        assert connection.sock is not None
        connection.sock.settimeout(self._read_timeout)
        self._connection = connection
        return connection

    def _open(self, context: ssl.SSLContext | None) -> _Connection:
        connection = _Connection(*self._dial, self._connect_timeout, context, self._name)
        if self._tunnel:
            connection.set_tunnel(*self._tunnel, headers=self._proxy_headers)
        return connection

    def _certificate_names(self) -> str:
        """After a name mismatch: the names the receiver's certificate is for (its chain is
        checked again; only the name check is left out), or "" if they cannot be read."""
        context = ssl.create_default_context(cafile=self._cafile)
        context.check_hostname = False
        connection = self._open(context)
        try:
            connection.connect()
            assert isinstance(connection.sock, ssl.SSLSocket)
            names = connection.sock.getpeercert().get("subjectAltName", ())
        except (OSError, ValueError):
            return ""
        finally:
            connection.close()
        return f"; it is for {', '.join(repr(value) for _, value in names)}" if names else ""

    def deliver(self, frame: Frame) -> None:
        body, fields = self._request(frame)
        status, answer, reason = self._exchange("POST", self._path, body, fields)
        if status >= 300:
            error, detail = _refusal(status, reason, answer)
            raise Refused(error, detail, status)

    def get(self, path: str) -> tuple[int, bytes]:
        """GET `path` (absolute, e.g. `/healthz`) of the receiver on this sender's connection,
        as it is dialled and verified for frames; its status and body. PublishError
        (Unreachable, `tls`) when it does not answer."""
        if self._path.startswith("http://"):  # through a plain proxy: the whole URL
            path = self._path[: self._path.index("/", len("http://"))] + path
        status, answer, _ = self._exchange("GET", path, None, {})
        return status, answer

    def _exchange(
        self, method: str, path: str, body: bytes | None, fields: Mapping[str, str]
    ) -> tuple[int, bytes, str]:
        """One request and its answer: status, body and reason phrase; raise PublishError."""
        connection = self._connect()
        try:
            # The receiver may answer before taking the whole body (a 413) and close: read it.
            with contextlib.suppress(BrokenPipeError):
                connection.request(method, path, body, {**self._headers, **fields})
            response = connection.getresponse()
            answer = response.read()
        except ssl.SSLError as exc:
            self.close()
            raise self._tls_refused(_tls_reason(exc)) from exc
        except TimeoutError as exc:
            self.close()
            detail = f"no answer from the receiver at {self.target} within {self._read_timeout:g} s"
            raise Unreachable("timeout", detail) from exc
        except OSError as exc:  # reset, or closed before answering
            self.close()
            raise self._cannot_connect() from exc
        except (http.client.HTTPException, ValueError) as exc:  # not HTTP; a bad header value
            self.close()
            raise PublishError("request", type(exc).__name__) from None  # a value may be secret
        return response.status, answer, response.reason

    def _tls_refused(self, reason: str) -> PublishError:
        return PublishError("tls", f"TLS with the receiver at {self.target} refused: {reason}")

    def _cannot_connect(self) -> Unreachable:
        within = f"within {self._connect_timeout:g} s"
        return Unreachable("connect", f"cannot connect to the receiver at {self.target} {within}")

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()


def _refusal(status: int, reason: str, body: bytes) -> tuple[str, str]:
    """The receiver's JSON `error` and `detail` (or the status line, for another answer)."""
    try:
        answer = json.loads(body)
        return str(answer["error"]), str(answer.get("detail", ""))
    except (ValueError, KeyError, TypeError, AttributeError):
        return reason or str(status), "not a framewire receiver's answer"
