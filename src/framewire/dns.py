"""A host name's addresses, re-resolved: what the sender's HTTP fan-out (fanout.py) and the HTTP
receivers' membership (transports/http_members.py) both read.

A `Resolver` resolves one URL's host with getaddrinfo every `every` seconds
on its own thread and hands the current set of addresses to its
subscribers. A failed resolve keeps the set it had (one log line per change
of state). `replica_url` is the URL with its host replaced by one address.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

from framewire.resilience import UpDown, Worker

log = logging.getLogger(__name__)

DEFAULT_PORTS = {"http": 80, "https": 443}
Addresses = tuple[str, ...]


def resolve(host: str, port: int) -> Addresses:
    """Every IPv4 and IPv6 address `host` resolves to, deduplicated and sorted; OSError if none."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return tuple(sorted({str(info[4][0]) for info in infos}))


def replica_url(url: str, address: str) -> str:
    """`url` with its host replaced by the IP literal `address` (IPv6 bracketed)."""
    parts = urlsplit(url)
    host = f"[{address.replace('%', '%25')}]" if ":" in address else address
    userinfo, at, _ = parts.netloc.rpartition("@")
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{userinfo}{at}{host}{port}"))


class Resolver:
    """Resolves one URL's host every `every` seconds and tells subscribers when the set changes."""

    def __init__(self, url: str, every: float, what: str = "HTTP fan-out") -> None:
        """`what` starts its log lines (who resolves, for what)."""
        parts = urlsplit(url)
        self.what = what
        self.host = parts.hostname or ""
        self.port = parts.port or DEFAULT_PORTS.get(parts.scheme, 80)
        self.every = every
        self.addresses: Addresses | None = None  # None until the first successful resolve
        self._subscribers: list[Callable[[Addresses], None]] = []
        self._lock = threading.Lock()  # held while subscribers are told, so none misses a change
        self._state = UpDown(f"{self.what}: resolving", self.host, logger=log)
        self._worker = Worker(f"resolve-{self.host}", self._run)

    def subscribe(self, callback: Callable[[Addresses], None]) -> None:
        """Call `callback` with the current addresses (if known) and with every new set."""
        with self._lock:
            self._subscribers.append(callback)
            if self.addresses is not None:
                callback(self.addresses)

    def unsubscribe(self, callback: Callable[[Addresses], None]) -> None:
        with self._lock:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

    def start(self) -> None:
        self._worker.start()

    def stop(self) -> None:
        self._worker.stop()

    def refresh(self) -> None:
        """Resolve once; on failure keep the current set (logged once per change of state)."""
        try:
            found = resolve(self.host, self.port)
        except OSError as exc:  # socket.gaierror included
            known = len(self.addresses or ())
            why = f"{exc.strerror or exc}; keeping the {known} replica(s) known"
            self._state.set(False, why)
            return
        self._state.set(True)
        with self._lock:
            if found == self.addresses:
                return
            log.info(
                "%s: %s resolves to %d replica(s): %s",
                self.what,
                self.host,
                len(found),
                ", ".join(found),
            )
            self.addresses = found
            for callback in list(self._subscribers):
                callback(found)

    def _run(self) -> None:
        stopping = self._worker.stopping
        while not stopping.is_set():
            self.refresh()
            stopping.wait(self.every)
