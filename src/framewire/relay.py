"""Serving a camera another replica owns: relayed from its owner, never decoded again.

With `--advertise-url` every camera has one owner among the live replicas
(owners.py); only the owner reads, decodes and annotates it, and every other
replica answers its viewers by asking the owner for what the viewer asked
(the same path and query: variant, strip) over the internal network:

- a snapshot is fetched whole and passed through (status, content type, the
  frame's seq and capture time);
- a stream is read part by part (`mjpeg.PartReader`) and each part is framed again
  exactly as the owner framed it (mjpeg.part: the same bytes, seq and capture
  time), so the viewer's one response can continue from another source: when
  the owner's stream fails (the owner died) or the camera moves to another
  owner, `Relay.follow` waits for the owners to change, at most
  RESUME_SECONDS, re-sending the last part as keepalive meanwhile, and goes on
  from the new owner, or from this replica's own channel once it owns the
  camera. It ends when the client leaves (the next write fails), when no
  source comes back in time, and at shutdown.
- the grid's tiles of remote cameras are read from the owner's stream of a
  narrow variant (relay_tiles.py).

A relayed request carries RELAY_HEADER; a replica answers it from its own hub
(or 404/503) and never relays it again, so no request loops between replicas
whose views of the members differ for a moment. The viewer's Authorization
header goes with it (the owner checks the same viewer credentials).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter

from framewire import mjpeg
from framewire.channel import Channel
from framewire.mjpeg import PartReader, reframe
from framewire.owners import Member, Owners
from framewire.transports.http import HEADER_CAPTURED_NS, HEADER_SEQ
from framewire.variants import Variant

log = logging.getLogger(__name__)

RELAY_HEADER = "X-Framewire-Relay"  # on a relayed request: answer it here, never relay it again
CONNECT_TIMEOUT = 1.0  # seconds to reach an owner
FETCH_TIMEOUT = 3.0  # seconds a snapshot or /stats of an owner may take
RETRY_SECONDS = 0.5  # between tries to reach a camera's (new) owner
RESUME_SECONDS = 15.0  # a relayed stream whose camera has no reachable source this long ends
STATS_MAX_AGE = 1.0  # seconds an owner's /stats is reused
PASSED_HEADERS = ("Content-Type", HEADER_SEQ, HEADER_CAPTURED_NS, "Cache-Control", "Vary")

# Where a camera is served from: this replica's channel, its owner, or nowhere (yet).
Source = Channel | Member | None


def relays(relayed: bool, shared: bool, fresh: bool, owner: str | None, me: str | None) -> bool:
    """Whether a request for a camera is relayed to its owner `owner` (a member key).

    Never a relayed request, never when alone; not when this replica holds a
    fresh frame of the camera (it is served here, whoever owns it) or owns it.
    """
    if relayed or not shared or fresh:
        return False
    return owner is not None and owner != me


def stream_path(camera: str) -> str:
    return f"/stream/{quote(camera)}.mjpg"


def snapshot_path(camera: str) -> str:
    return f"/snapshot/{quote(camera)}.jpg"


class RelayError(Exception):
    """The owner could not be reached (or answered what is not an MJPEG stream)."""


class Upstream:
    """One open stream from an owner."""

    def __init__(self, response: requests.Response, member: Member) -> None:
        self.response = response
        self.member = member

    def parts(self) -> Iterator[bytes]:
        """The owner's parts as they arrive, framed again; RequestException/ValueError if the
        stream breaks."""
        reader = PartReader()
        for chunk in self.response.iter_content(chunk_size=None):
            for headers, body in reader.feed(chunk):
                yield reframe(headers, body)

    def close(self) -> None:
        """Close the connection, also under a thread blocked reading it."""
        shut(self.response)


def shut(response: requests.Response) -> None:
    """Close `response`'s connection; a thread blocked reading it wakes with an error."""
    with contextlib.suppress(Exception):
        response.raw.connection.sock.shutdown(socket.SHUT_RDWR)  # type: ignore[union-attr]
    with contextlib.suppress(Exception):
        response.close()


class Relay:
    """The relayed streams, snapshots and /stats of the cameras other replicas own.

    `source(camera)` says where a camera is served from now (Hub.source).
    """

    def __init__(
        self,
        owners: Owners,
        source: Callable[[str], Source],
        keepalive: float,
        connections: int,
    ) -> None:
        self.owners = owners
        self.source = source
        self.keepalive = keepalive
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=8, pool_maxsize=connections)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.read_timeout = keepalive + 2.0  # an owner sends a part at least every keepalive
        self._changed = threading.Condition()
        self._open: set[requests.Response] = set()
        self._closed = False
        self._stats: dict[str, tuple[float, dict[str, Any] | None]] = {}  # key -> (at, /stats)
        self._refreshing: set[str] = set()
        self._stats_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(4, thread_name_prefix="framewire-owner-stats")
        owners.subscribe(lambda _before, _now: self._notify())

    @property
    def closed(self) -> bool:
        return self._closed

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def _wait(self, seconds: float) -> None:
        """Sleep `seconds`, or less if the owners change or the relay closes."""
        with self._changed:
            if not self._closed:
                self._changed.wait(seconds)

    def get(
        self, member: Member, path: str, query: str, auth: str | None, stream: bool
    ) -> requests.Response:
        """GET `path?query` at `member`, marked relayed, with the viewer's credentials;
        RelayError if it cannot be reached."""
        url = member.url + path + (f"?{query}" if query else "")
        headers = {RELAY_HEADER: "1"}
        if auth:
            headers["Authorization"] = auth
        timeout = (CONNECT_TIMEOUT, self.read_timeout if stream else FETCH_TIMEOUT)
        if self._closed:
            raise RelayError("stopping")
        try:
            response = self.session.get(url, headers=headers, stream=stream, timeout=timeout)
        except requests.RequestException as exc:
            raise RelayError(f"owner {member.key} unreachable: {type(exc).__name__}") from None
        if stream:
            with self._changed:
                self._open.add(response)
            if self._closed:
                shut(response)
        return response

    def release(self, response: requests.Response) -> None:
        with self._changed:
            self._open.discard(response)
        shut(response)

    def snapshot(
        self, member: Member, camera: str, query: str, auth: str | None
    ) -> tuple[bytes, int, dict[str, str]]:
        """The owner's answer to a snapshot: body, status, the headers to pass on."""
        response = self.get(member, snapshot_path(camera), query, auth, stream=False)
        return response.content, response.status_code, passed(response)

    def connect(self, member: Member, camera: str, query: str, auth: str | None) -> Upstream:
        """The owner's stream of `camera` (the viewer's query); RelayError if it cannot be
        reached; a response that is not a stream (an error to pass on) is `Upstream.response`
        with its status."""
        return Upstream(self.get(member, stream_path(camera), query, auth, stream=True), member)

    def follow(
        self, camera: str, variant: Variant, query: str, auth: str | None, first: Channel | Upstream
    ) -> Iterator[bytes]:
        """A viewer's MJPEG parts of `camera` from wherever it is served: `first`, then, when
        that source ends or the camera moves, the next one (see the module's text)."""
        yield b"--" + mjpeg.BOUNDARY + b"\r\n"
        current: Channel | Upstream | None = first
        last: bytes | None = None
        try:
            while not self._closed:
                if isinstance(current, Channel):
                    for chunk in self._local(camera, current, variant):
                        last = chunk
                        yield chunk
                elif current is not None:
                    try:
                        for chunk in current.parts():
                            last = chunk
                            yield chunk
                            if not self._from(camera, current.member):
                                break  # the camera moved: the next source, at once
                    except (requests.RequestException, ValueError, OSError, AttributeError):
                        pass  # the owner's stream broke: the next source
                    finally:
                        self.release(current.response)
                current = None
                deadline = time.monotonic() + RESUME_SECONDS
                resend = time.monotonic() + self.keepalive
                while current is None and not self._closed:
                    current = self._reopen(camera, query, auth)
                    if current is not None:
                        break
                    now = time.monotonic()
                    if now >= deadline:
                        log.info(
                            "camera %s: no source for %gs, relayed stream ends",
                            camera,
                            RESUME_SECONDS,
                        )
                        return
                    if last is not None and now >= resend:
                        yield last  # keepalive: the viewer stays, and its leaving is seen
                        resend = now + self.keepalive
                    self._wait(RETRY_SECONDS)
        finally:
            if isinstance(current, Upstream):
                self.release(current.response)

    def _from(self, camera: str, member: Member) -> bool:
        """Whether `camera` is still served from `member`."""
        source = self.source(camera)
        return isinstance(source, Member) and source.key == member.key

    def _local(self, camera: str, channel: Channel, variant: Variant) -> Iterator[bytes]:
        """This replica's parts of `camera` (mjpeg.stream) while it serves them."""
        with channel.watch(variant.key):
            parts = mjpeg.stream(channel, self.keepalive, variant.key, variant.fps)
            try:
                next(parts)  # its opening boundary: this response sent its own
                for chunk in parts:
                    yield chunk
                    if self.source(camera) is not channel:
                        return
            finally:
                parts.close()

    def _reopen(self, camera: str, query: str, auth: str | None) -> Channel | Upstream | None:
        """Where `camera` can be read from now: this replica's channel, or an open stream of
        its owner; None when neither (yet)."""
        source = self.source(camera)
        if isinstance(source, Channel):
            return None if source.slot.closed else source
        if source is None:
            return None
        try:
            upstream = self.connect(source, camera, query, auth)
        except RelayError:
            return None
        response = upstream.response
        if response.status_code != 200 or not is_mjpeg(response):
            self.release(response)
            return None
        log.info("camera %s: relayed from its owner %s", camera, source.key)
        return upstream

    def stats_of(self, members: Iterable[Member], wait: bool = True) -> dict[str, Any]:
        """Each member's /stats (None: unreachable), reused for STATS_MAX_AGE; fetched at once
        (`wait`) or, without `wait`, in the background while the last one known is returned."""
        now = time.monotonic()
        wanted = list(members)
        with self._stats_lock:
            due = [
                m
                for m in wanted
                if now - self._stats.get(m.key, (-1e9, None))[0] > STATS_MAX_AGE
                and m.key not in self._refreshing
            ]
            self._refreshing.update(m.key for m in due)
        if due and not self._closed:
            with contextlib.suppress(RuntimeError):  # the pool shut down meanwhile
                futures = [self._pool.submit(self._fetch_stats, m) for m in due]
                if wait:
                    for future in futures:
                        future.result()
        with self._stats_lock:
            return {m.key: self._stats.get(m.key, (0.0, None))[1] for m in wanted}

    def _fetch_stats(self, member: Member) -> None:
        stats: dict[str, Any] | None = None
        try:
            response = self.get(member, "/stats", "", None, stream=False)
            if response.ok:
                stats = response.json()
        except (RelayError, ValueError):
            stats = None
        with self._stats_lock:
            self._stats[member.key] = (time.monotonic(), stats)
            self._refreshing.discard(member.key)

    def close(self) -> None:
        """At shutdown: every relayed stream ends, no owner is asked any more."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
            responses = list(self._open)
        for response in responses:
            shut(response)
        self._pool.shutdown(wait=False, cancel_futures=True)


def is_mjpeg(response: requests.Response) -> bool:
    return response.headers.get("Content-Type", "").startswith("multipart/x-mixed-replace")


def passed(response: requests.Response) -> dict[str, str]:
    """The headers of an owner's answer that the viewer gets too."""
    return {name: response.headers[name] for name in PASSED_HEADERS if name in response.headers}
