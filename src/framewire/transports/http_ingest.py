"""The HTTP transport's receiving side: `POST /frames`, a Flask blueprint.

It validates, refuses bad input with a 4xx and a JSON reason (counted by the
sink) and hands good frames to a `FrameSink` (the receiver's pipeline).
"""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, jsonify, request
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge

from framewire.frame import WireError
from framewire.transports import FrameSink
from framewire.transports.http import CONTENT_TYPE, FORM_TYPE, STATUS, from_form, from_headers


def _read_body(max_body: int) -> bytes | bytearray | None:
    """The request body, or None when it is over `max_body` bytes (sized or chunked).

    Read from the WSGI input in one call, which the receiver's worker answers with the
    buffer the request arrived in (no copy); Werkzeug's stream would copy it in pieces.
    The worker stops reading a body over the cap, or one whose chunks do not parse: its
    input then raises RequestEntityTooLarge (None here) or BadRequest (WireError).
    """
    if request.content_length is not None and request.content_length > max_body:
        return None
    # Chunked: gunicorn terminates the stream itself; read one byte past the cap to tell.
    size = max_body + 1 if request.content_length is None else request.content_length
    try:
        body: bytes | bytearray = request.environ["wsgi.input"].read(size)
    except RequestEntityTooLarge:
        return None
    except BadRequest as exc:
        raise WireError("bad_chunks", str(exc.description)) from None
    return body if len(body) <= max_body else None


def ingest_blueprint(sink: FrameSink, max_body: int, token: str = "") -> Blueprint:
    """`POST /frames`, with an optional bearer token (compared in constant time)."""
    bp = Blueprint("ingest", __name__)
    expected = f"Bearer {token}".encode() if token else b""

    def refuse(reason: str, detail: str) -> tuple[Response, int]:
        sink.reject(reason)
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
                frame = from_headers(request.headers, body)
            elif request.mimetype == FORM_TYPE:  # the article's way, for comparison
                form = _read_body(max_body)
                if form is None:
                    return refuse("too_large", f"form is over {max_body} bytes")
                frame = from_form(form)  # parsed in place, never by Werkzeug
            else:
                return refuse("content_type", f"Content-Type must be {CONTENT_TYPE}")
            sink.ingest(frame)
        except WireError as exc:
            return refuse(exc.reason, exc.detail)
        return "", 204

    return bp
