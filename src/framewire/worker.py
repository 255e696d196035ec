"""A gunicorn gthread worker that never spends a thread on a request still arriving.

gunicorn's own gthread worker hands a connection to a pool thread as soon as
its first bytes arrive, and that thread then blocks until the request is
complete: a few hundred half-sent requests hold every thread, or queue ahead
of real ones. `BufferingWorker` keeps gunicorn's event loop, thread pool,
parser and response code, and changes only what happens before and after a
request:

- the event loop reads each connection without blocking into a
  `RequestBuffer` until the whole request (head and body) is there, and only
  then hands it to a pool thread, whose parser reads the buffered bytes
  (`BufferUnreader`) and never the socket, and whose app reads the body as the
  very buffer it arrived in (`WholeBody`, no copy); a body over the cap (sized
  or chunked) or with broken chunk framing is not read on: the app gets a body
  that raises the HTTP error to answer (`Unreadable`, 413 or 400), and the
  connection is closed after the answer;
- a request not complete within `Limits.request_timeout` is dropped and
  counted, idle keep-alive connections are closed after gunicorn's
  `keepalive`;
- the bytes buffered across all waiting connections are capped
  (`Limits.max_buffered`): a connection whose bytes would pass the cap is
  dropped and counted (`buffer_full`), so memory is bounded by
  configuration, not by how many clients send slowly;
- at gunicorn's `worker_connections` the listener stays open: each new
  connection closes the half-sent request that has waited longest (counted,
  `connection_limit`), so health probes and ingest are never queued behind
  silent clients in the kernel's backlog;
- while a response is written the socket has a send timeout
  (`Limits.send_timeout`), for each write as a whole (one MJPEG frame): a
  client that could not take a whole frame within it (a stalled viewer, or one
  still reading but too slowly) makes the write fail, the response iterator is
  closed, which frees the thread and the viewer slot, and the drop is counted;
- when the worker stops (SIGTERM, SIGQUIT/SIGINT, or any other end of its
  loop) the app's `extensions["framewire.shutdown"]` is called on the main
  thread, and the process exits only after it returned; a `framewire-*`
  thread still alive after it is logged.

Plain HTTP/1.x only (no TLS, no HTTP/2): the receivers serve neither.
The app may expose `extensions["framewire.dropped"]`, called with a reason
(`request_timeout`, `send_timeout`, `buffer_full`, `connection_limit`) for every connection
the worker drops,
and with `incomplete` for every client that closed in the middle of a request.
"""

from __future__ import annotations

import contextlib
import errno
import resource
import selectors
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
from typing import Any

from gunicorn import http, util
from gunicorn.http.body import LengthReader
from gunicorn.workers.gthread import TConn, ThreadWorker
from werkzeug.exceptions import HTTPException

from framewire.request_buffer import BufferUnreader, RequestBuffer, Unreadable, WholeBody

SHUTDOWN = "framewire.shutdown"
DROPPED = "framewire.dropped"
APP_THREADS = "framewire-"  # the app names every thread it starts so; all must end in `SHUTDOWN`
RECV_SIZE = 256 * 1024
CLOSE_LINGER = 2.0  # seconds a closing connection may still send before it is cut (RFC 9112 9.6)
HOUSEKEEPING = 0.5  # seconds between heartbeats to the arbiter, and between parent checks
ROOM_AGAIN = 0.9  # below this share of worker_connections, the limit counts as left


@dataclass(frozen=True)
class Limits:
    """What a client gets: time to send a request, time to read a response, body size; and
    the most bytes buffered for requests still arriving, across all connections."""

    request_timeout: float
    send_timeout: float
    max_body: int
    max_buffered: int


class BufferedConn(TConn):
    """A connection whose requests reach the parser only through the loop's buffer."""

    def __init__(self, cfg: Any, sock: socket.socket, client: Any, server: Any) -> None:
        super().__init__(cfg, sock, client, server)
        self.parser = http.get_parser(cfg, sock, client)
        self.unreader = self.parser.unreader = BufferUnreader()
        self.data_ready = True  # gthread must not wait for data in a pool thread
        self.buffer: RequestBuffer | None = None
        self.body: bytearray | None = None  # the next request's complete body, for `WholeBody`
        self.refused: HTTPException | None = None  # the next request's body is `Unreadable`
        self.deadline = 0.0
        self.idle = False  # a kept-alive connection with no byte of its next request yet
        self.closing = False
        self.send_timeout: float | None = None
        self.held = 0  # bytes of this connection counted in the worker's `buffered`

    def init(self) -> None:
        super().init()
        self.sock.settimeout(self.send_timeout)


def raise_open_files_limit(wanted: int) -> int:
    """Raise the soft RLIMIT_NOFILE towards `wanted` (at most the hard limit); the new soft."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return soft
    new = wanted if hard == resource.RLIM_INFINITY else min(hard, wanted)
    resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    return new


class BufferingWorker(ThreadWorker):
    """gthread with requests buffered by the event loop; see the module docstring."""

    limits: Limits  # set by `buffering_worker`, from the receiver's settings
    _notified = 0.0  # monotonic time of the last heartbeat
    _parent_checked = 0.0

    def notify(self) -> None:
        """gunicorn's heartbeat to the arbiter, at most once per HOUSEKEEPING seconds.

        gthread calls it on every turn of its loop, two or three times per
        frame received; each is a syscall (utimensat) the arbiter, which
        waits 30 s, does not need.
        """
        now = time.monotonic()
        if now - self._notified >= HOUSEKEEPING:
            self._notified = now
            super().notify()

    def is_parent_alive(self) -> bool:
        """gthread's check that the arbiter lives (getppid), at most once per HOUSEKEEPING s."""
        now = time.monotonic()
        if now - self._parent_checked < HOUSEKEEPING:
            return True
        self._parent_checked = now
        return bool(super().is_parent_alive())

    def init_process(self) -> None:
        self.waiting: dict[BufferedConn, None] = {}
        self.buffered = 0  # bytes held for requests still arriving, all connections
        self.at_limit = False  # making room at worker_connections (logged when it changes)
        self._app_stopped = False
        wanted = self.worker_connections + self.cfg.threads + 64
        if raise_open_files_limit(wanted) < wanted:
            self.log.warning("open-file limit is below %d: fewer connections can be held", wanted)
        lim = self.cfg
        self.max_head = (lim.limit_request_line or 8190) + (lim.limit_request_fields or 100) * (
            (lim.limit_request_field_size or 8190) + 2
        )
        super().init_process()

    def run(self) -> None:
        try:
            super().run()
        finally:
            self._stop_app()

    def handle_exit(self, sig: int, frame: Any) -> None:
        """SIGTERM: gunicorn's graceful stop, with the app stopped first (on the main thread)."""
        if self.alive:
            self.method_queue.defer(self._on_stop)
        super().handle_exit(sig, frame)

    def accept(self, listener: socket.socket) -> None:
        try:
            sock, client = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        if self.nr_conns >= self.worker_connections:
            self._make_room()
        elif self.at_limit and self.nr_conns < self.worker_connections * ROOM_AGAIN:
            self.at_limit = False
            self.log.info("below the connection limit again (%d)", self.worker_connections)
        self.nr_conns += 1
        conn = BufferedConn(self.cfg, sock, client, listener.getsockname())
        conn.send_timeout = self.limits.send_timeout
        self._wait_for_request(conn)

    def set_accept_enabled(self, enabled: bool) -> None:
        """gthread stops accepting at `worker_connections`; this worker goes on while a
        waiting connection can make room (`accept`), and stops only when stopping."""
        super().set_accept_enabled(enabled or (self.alive and bool(self.waiting)))

    def _make_room(self) -> None:
        """At the connection limit: close a connection closing anyway, else the half-sent
        request that has waited longest (counted), else an idle kept-alive connection."""
        waiting = self.waiting  # in the order they began to wait
        victim = next((c for c in waiting if c.closing), None)
        if victim is None:
            victim = next((c for c in waiting if not c.idle), None)
            if victim is not None:
                self._count("connection_limit")
                if not self.at_limit:
                    self.at_limit = True
                    self.log.warning(
                        "at the connection limit (%d): closing the half-sent requests that"
                        " waited longest to make room",
                        self.worker_connections,
                    )
        victim = victim or next(iter(waiting), None)
        if victim is not None:
            self._forget(victim)
            util.close(victim.sock)

    def finish_request(self, conn: BufferedConn, fs: Future[Any]) -> None:
        """Back from a pool thread: wait for the next request on the loop, or close."""
        try:
            keep = bool(fs.result()) if not fs.cancelled() else False
        except Exception:
            keep = False
        if keep and self.alive:
            self._wait_for_request(conn, conn.unreader.take_buffered(), idle=True)
        else:
            self._close(conn)

    def handle_request(self, req: Any, conn: BufferedConn) -> bool:
        body, conn.body = conn.body, None
        refused, conn.refused = conn.refused, None
        if refused is not None:  # the rest of the body is never read: close after the answer
            req.must_close = True
            req.body = Unreadable(refused)
        if body is not None:
            reader = getattr(req.body, "reader", None)
            if isinstance(reader, LengthReader) and reader.length == len(body):
                req.body = WholeBody(body)  # the app reads the buffer, never a copy of it
            else:  # framing the parser saw otherwise: the body goes back in line
                conn.unreader.unread(bytes(body))
        try:
            return bool(super().handle_request(req, conn))
        except TimeoutError:
            self.log.info(
                "dropped %s: could not take a whole frame within --viewer-timeout (%g s)",
                conn.client,
                self.limits.send_timeout,
            )
            self._count("send_timeout")
            return False

    def murder_keepalived(self, force: bool = False) -> None:
        """Close connections past their deadline (all waiting ones once stopping)."""
        now = time.monotonic()
        for conn in list(self.waiting):
            if conn.deadline <= now or force or not self.alive:
                if conn.deadline <= now and not conn.idle and not conn.closing:
                    self._count("request_timeout")
                self._forget(conn)
                util.close(conn.sock)

    def _wait_for_request(self, conn: BufferedConn, data: bytes = b"", idle: bool = False) -> None:
        conn.buffer = RequestBuffer(self.max_head, self.limits.max_body, data)
        self._hold(conn, len(data))
        conn.idle = idle and not data
        timeout = self.cfg.keepalive if conn.idle else self.limits.request_timeout
        conn.deadline = time.monotonic() + timeout
        if conn.buffer.ready:
            self._hand_over(conn)
            return
        conn.sock.setblocking(False)
        self.waiting[conn] = None
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_readable, conn))

    def _on_readable(self, conn: BufferedConn, _sock: socket.socket) -> None:
        try:
            data = conn.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the client closed, or is gone
            if not conn.idle and not conn.closing and conn.held:
                self._count("incomplete")  # in the middle of a request
            self._forget(conn)
            util.close(conn.sock)
            return
        if conn.closing:  # the last bytes of a connection being closed: discarded
            return
        assert conn.buffer is not None
        if conn.idle:
            conn.idle = False
            conn.deadline = time.monotonic() + self.limits.request_timeout
        if self.buffered + len(data) > self.limits.max_buffered:
            self.log.info("dropped %s: request buffers are full", conn.client)
            self._count("buffer_full")
            self._forget(conn)
            util.close(conn.sock)
            return
        self._hold(conn, len(data))
        if conn.buffer.feed(data):
            self._forget(conn, counted=False)
            self._hand_over(conn)
        elif conn.buffer.expect_continue and conn.buffer.waiting_for_body:
            conn.buffer.expect_continue = False
            self._send_now(conn, b"HTTP/1.1 100 Continue\r\n\r\n")

    def _hold(self, conn: BufferedConn, size: int) -> None:
        conn.held += size
        self.buffered += size

    def _release(self, conn: BufferedConn) -> None:
        self.buffered -= conn.held
        conn.held = 0

    def _hand_over(self, conn: BufferedConn) -> None:
        assert conn.buffer is not None
        self._release(conn)
        conn.unreader.pending, conn.body = conn.buffer.take()
        conn.refused = conn.buffer.refused
        conn.buffer = None
        self.enqueue_req(conn)

    def _close(self, conn: BufferedConn) -> None:
        """Half-close and let the client's last bytes drain on the loop (never in a thread)."""
        try:
            conn.sock.setblocking(False)
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.nr_conns -= 1
            util.close(conn.sock)
            return
        conn.closing = True
        conn.deadline = time.monotonic() + CLOSE_LINGER
        self.waiting[conn] = None
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_readable, conn))

    def _forget(self, conn: BufferedConn, counted: bool = True) -> None:
        """Take `conn` off the loop; `counted` also releases its place in `nr_conns`."""
        self.waiting.pop(conn, None)
        self._release(conn)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(conn.sock)
        if counted:
            self.nr_conns -= 1

    def _send_now(self, conn: BufferedConn, data: bytes) -> None:
        with contextlib.suppress(OSError):  # the client is gone: its next read fails
            conn.sock.send(data)

    def _on_stop(self) -> None:
        """First thing when stopping: drop waiting connections, stop the app, end the streams."""
        for conn in list(self.waiting):
            if not conn.closing:
                self._forget(conn)
                util.close(conn.sock)
        self._stop_app()

    def _stop_app(self) -> None:
        if self._app_stopped:
            return
        self._app_stopped = True
        stop = self._extension(SHUTDOWN)
        if stop is None:
            return
        started = time.monotonic()
        try:
            stop()
        except Exception:
            self.log.exception("stopping the app failed")
        self.log.info("app stopped in %.2f s", time.monotonic() - started)
        left = [t.name for t in threading.enumerate() if t.name.startswith(APP_THREADS)]
        if left:
            self.log.warning("threads still running after the app stopped: %s", ", ".join(left))

    def _count(self, reason: str) -> None:
        dropped = self._extension(DROPPED)
        if dropped is not None:
            dropped(reason)

    def _extension(self, name: str) -> Callable[..., None] | None:
        extensions = getattr(getattr(self, "wsgi", None), "extensions", {})
        return extensions.get(name)


def buffering_worker(limits: Limits) -> type[BufferingWorker]:
    """A `BufferingWorker` class with `limits`, to give gunicorn as `worker_class`."""
    return type("BufferingWorker", (BufferingWorker,), {"limits": limits})
