"""Connections to Redis: one server (`redis.Redis`) or a Redis Cluster (`redis.cluster.RedisCluster`
from seed nodes), both RESP2, made on first use; and the short labels of their failures.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import RedisClusterException
from redis.retry import Retry

from framewire.resilience import Backoff, UpDown
from framewire.urls import parse_bind


def connect(
    url: str, connect_timeout: float, read_timeout: float, ca_cert: str = "", cluster: str = ""
) -> redis.Redis:
    """A RESP2 client for `url` (`redis://`, `rediss://` with an optional CA file, `unix://`).

    User and password (an ACL user) come from the URL. With `cluster` (seed nodes
    `HOST:PORT,...`), a `redis.cluster.RedisCluster` from those seeds and the URL's host,
    which routes each key to its slot's primary and follows MOVED and ASK itself; it
    connects at once and raises `RedisClusterException` when no seed answers.
    """
    tls = {"ssl_ca_certs": ca_cert} if ca_cert and url.startswith("rediss://") else {}
    common = {
        "protocol": 2,
        "socket_connect_timeout": connect_timeout,
        "socket_timeout": read_timeout,
        "socket_keepalive": True,
        **tls,
    }
    if not cluster:
        # One connection, no pool: each client serves one thread (a camera's sender, the
        # consumer), and the pool's checks before every command (a poll for stale data, a pid
        # check) are two syscalls per frame.
        return redis.Redis.from_url(url, single_connection_client=True, **common)
    seeds = [ClusterNode(*parse_bind(seed.strip())) for seed in cluster.split(",")]
    return RedisCluster(  # type: ignore[return-value] - the same commands, routed by slot
        url=url,
        startup_nodes=seeds,
        retry=Retry(NoBackoff(), 1),  # one retry on a fresh slot map; our backoff does the rest
        **common,
    )


class LazyClient:
    """The client of `connect(*args)`, made on first use (thread-safe): a cluster client
    connects as it is made, and a cluster down at start is a retried failure, not a crash."""

    def __init__(self, *args: Any) -> None:
        self._args = args
        self._client: redis.Redis | None = None
        self._lock = threading.Lock()

    def get(self) -> redis.Redis:
        with self._lock:
            if self._client is None:
                self._client = connect(*self._args)
            return self._client

    def another(self) -> LazyClient:
        """A client of its own to the same Redis (a cluster client's topology refresh
        after an error disconnects every connection of that client)."""
        return LazyClient(*self._args)

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()


ERRORS = (redis.RedisError, RedisClusterException)  # the cluster's own errors are not RedisErrors


def error_reason(exc: Exception) -> str:
    """A short metric label for a Redis failure."""
    if isinstance(exc, redis.AuthenticationError | redis.exceptions.AuthorizationError):
        return "auth"
    if isinstance(exc, redis.TimeoutError):
        return "timeout"
    if isinstance(exc, redis.ConnectionError | RedisClusterException):  # no node, slot uncovered
        return "connect"
    return "response"


def keep_beating(
    stopping: threading.Event,
    state: UpDown,
    beat: Callable[[], None],
    every: float,
    cap: float,
    wake: threading.Event | None = None,
) -> None:
    """Call `beat` every `every` seconds (at once when `wake` is set) until `stopping` is set;
    a Redis failure sets `state` down (logged once per change) and is retried with backoff
    up to `cap` seconds."""
    backoff = Backoff(every, cap)
    while not stopping.is_set():
        started = time.monotonic()
        if wake is not None:
            wake.clear()
        try:
            beat()
        except ERRORS as exc:
            state.set(False, error_reason(exc))
            backoff.wait(stopping)
            continue
        state.set(True)
        backoff.reset()
        (wake or stopping).wait(max(0.0, every - (time.monotonic() - started)))
