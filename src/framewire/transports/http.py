"""The HTTP transport: raw JPEG bytes in `POST /frames`, metadata in headers.

Sending side: `HttpPublisher`, one keep-alive `requests` session with connect
and read timeouts. Receiving side: `ingest_blueprint`, which validates,
refuses bad input with a 4xx and a JSON reason (counted), and hands good
frames to the pipeline.

Mode `form-base64` reproduces the original article for comparison: the JPEG
base64-encoded in a form post. The receiver accepts both, by Content-Type.
"""

from __future__ import annotations

import hmac

import requests
from flask import Blueprint, Response, jsonify, request

from framewire.config import redact
from framewire.frame import (
    CONTENT_TYPE,
    FORM_TYPE,
    Frame,
    WireError,
    frame_from_form,
    frame_from_http,
)
from framewire.pipeline import Pipeline
from framewire.transports import PublishError

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
    "bad_base64": 422,
}


class HttpPublisher:
    """Posts frames to a receiver's `/frames` over one keep-alive session."""

    name = "http"

    def __init__(
        self,
        url: str,
        connect_timeout: float = 1.0,
        read_timeout: float = 2.0,
        token: str = "",
        mode: str = "raw",
    ) -> None:
        self.url = url
        self.mode = mode
        self.target = redact(url)
        self._timeout = (connect_timeout, read_timeout)
        self._session = requests.Session()
        if token:
            self._session.headers["Authorization"] = f"Bearer {token}"

    def send(self, frame: Frame) -> None:
        if self.mode == "raw":
            data, headers = frame.jpeg, frame.http_headers()
        else:
            data, headers = frame.form_fields(), None
        try:
            response = self._session.post(
                self.url, data=data, headers=headers, timeout=self._timeout
            )
        except requests.Timeout as exc:
            raise PublishError("timeout", "receiver did not answer in time") from exc
        except requests.ConnectionError as exc:
            raise PublishError("connect", "cannot connect to the receiver") from exc
        except requests.RequestException as exc:
            raise PublishError("request", type(exc).__name__) from exc
        if response.status_code >= 300:
            reason = _reason(response)
            raise PublishError(f"http_{response.status_code}", f"receiver refused: {reason}")

    def close(self) -> None:
        self._session.close()


def _reason(response: requests.Response) -> str:
    try:
        return str(response.json().get("error", response.reason))
    except ValueError:
        return response.reason or str(response.status_code)


def _read_body(max_body: int) -> bytes | None:
    """The request body, or None when it is over `max_body` bytes (sized or chunked)."""
    if request.content_length is not None:
        if request.content_length > max_body:
            return None
        return request.get_data(cache=False)
    # Chunked: gunicorn terminates the stream itself; read one byte past the cap to tell.
    body = request.environ["wsgi.input"].read(max_body + 1)
    return body if len(body) <= max_body else None


def ingest_blueprint(pipeline: Pipeline, max_body: int, token: str = "") -> Blueprint:
    """`POST /frames`: the HTTP receiving side."""
    bp = Blueprint("ingest", __name__)
    # Form posts are parsed in memory by Werkzeug; allow them the same size as raw bodies.
    bp.record_once(lambda state: state.app.config.update(MAX_FORM_MEMORY_SIZE=max_body))
    expected = f"Bearer {token}".encode() if token else b""

    def refuse(reason: str, detail: str) -> tuple[Response, int]:
        pipeline.reject(reason)
        return jsonify(error=reason, detail=detail), STATUS.get(reason, 400)

    @bp.post("/frames")
    def frames() -> tuple[Response | str, int]:
        if expected:
            given = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return refuse("unauthorized", "a valid bearer token is required")
        try:
            if request.mimetype == CONTENT_TYPE:
                body = _read_body(max_body)
                if body is None:
                    return refuse("too_large", f"body is over {max_body} bytes")
                frame = frame_from_http(request.headers, body)
            elif request.mimetype == FORM_TYPE:  # the article's way, for comparison
                if request.content_length is None or request.content_length > max_body:
                    return refuse("too_large", f"form is over {max_body} bytes or unsized")
                frame = frame_from_form(request.form)
            else:
                return refuse("content_type", f"Content-Type must be {CONTENT_TYPE}")
            pipeline.ingest(frame)
        except WireError as exc:
            return refuse(exc.reason, exc.detail)
        return "", 204

    return bp
