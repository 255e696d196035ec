"""Who may use a receiver's viewer routes: optional basic auth and a per-client rate limit.

Ingest (`POST /frames`) has its own bearer token; `/metrics`, `/healthz` and
`/readyz` stay open for Prometheus and health checks, and so does `/stats`
(no more than `/metrics` tells), which the peer receiver's page reads from
the browser without credentials.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from flask import Flask, Response, jsonify, request

OPEN_PATHS = frozenset({"/metrics", "/healthz", "/readyz", "/stats", "/frames"})
MAX_CLIENTS = 4096  # rate-limit buckets kept; the least recently seen are forgotten first


class RateLimiter:
    """A token bucket per client address, `rate` requests a second with bursts of `burst`."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(rate * 2, 1.0)
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def allow(self, client: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.pop(client, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            allowed = tokens >= 1.0
            self._buckets[client] = (tokens - 1.0 if allowed else tokens, now)
            while len(self._buckets) > MAX_CLIENTS:
                self._buckets.popitem(last=False)
            return allowed


def install(
    app: Flask,
    on_refuse: Callable[[str], None],
    user: str = "",
    password: str = "",
    rate_limit: float = 0.0,
) -> None:
    """Guard every route but OPEN_PATHS with basic auth (when `user` is set) and a rate limit.

    `on_refuse(reason)` counts each refusal.
    """
    limiter = RateLimiter(rate_limit) if rate_limit > 0 else None
    expected = (user.encode(), password.encode())

    @app.before_request
    def guard() -> tuple[Response, int] | Response | None:
        if request.path in OPEN_PATHS:
            return None
        if limiter is not None and not limiter.allow(request.remote_addr or "?"):
            on_refuse("rate_limited")
            return jsonify(error="rate_limited", detail=f"over {rate_limit:g} requests/s"), 429
        if user and not _authorized(expected):
            on_refuse("unauthorized")
            response = jsonify(error="unauthorized", detail="viewer credentials required")
            response.headers["WWW-Authenticate"] = 'Basic realm="framewire"'
            return response, 401
        return None


def _authorized(expected: tuple[bytes, bytes]) -> bool:
    """The request's basic-auth credentials match, compared in constant time."""
    auth = request.authorization
    if auth is None:
        return False
    user_ok = hmac.compare_digest((auth.username or "").encode(), expected[0])
    password_ok = hmac.compare_digest((auth.password or "").encode(), expected[1])
    return user_ok and password_ok
