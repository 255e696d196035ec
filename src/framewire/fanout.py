"""HTTP fan-out (`--http-fanout dns`): every frame to every HTTP receiver replica.

HTTP push reaches one receiver per request. To let every replica of the HTTP
receiver serve every camera, the sender resolves the `--http-url` host to all
its addresses (a Kubernetes headless Service resolves to every ready pod) and
POSTs each frame to each of them.

A `Resolver` (one per host in a sender process, shared by all its cameras)
resolves the host with getaddrinfo every `--http-resolve-every` seconds on
its own thread and hands the current set of addresses to its subscribers. A
failed resolve keeps the set it had (one log line per change of state).
Each camera's `Replicas` keeps one transport worker per address (its own
`HttpSender`, one-slot mailbox and thread, labelled `replica=<address>`):
it starts one for an address that appears and stops one whose address is
gone, removing that replica's metric series. A replica that is down backs off
and counts its own drops; the others do not notice.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

from framewire.frame import Frame
from framewire.metrics import SenderMetrics
from framewire.resilience import UpDown, Worker
from framewire.urls import redact

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

    def __init__(self, url: str, every: float) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or ""
        self.port = parts.port or DEFAULT_PORTS.get(parts.scheme, 80)
        self.every = every
        self.addresses: Addresses | None = None  # None until the first successful resolve
        self._subscribers: list[Callable[[Addresses], None]] = []
        self._lock = threading.Lock()  # held while subscribers are told, so none misses a change
        self._state = UpDown("HTTP fan-out: resolving", self.host, logger=log)
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
                "HTTP fan-out: %s resolves to %d replica(s): %s",
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


class ReplicaWorker(Protocol):
    """What `Replicas` needs of a transport worker (sender.TransportWorker)."""

    @property
    def has_room(self) -> bool: ...

    def put(self, frame: Frame) -> None: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


class Replicas:
    """One camera's HTTP transport under DNS fan-out: a worker per replica address.

    Used by the camera's encode loop like one transport worker: `put` hands a
    frame to every replica's mailbox, `has_room` is true when any replica can
    take one (encode on demand).
    """

    name = "http"

    def __init__(
        self,
        url: str,
        camera: str,
        resolver: Resolver,
        make_worker: Callable[[str, str], ReplicaWorker],
        metrics: SenderMetrics,
        on_added: Callable[[], None] = lambda: None,
    ) -> None:
        self.url = url
        self.camera = camera
        self.target = f"every address of {redact(url)} (DNS fan-out)"
        self._resolver = resolver
        self._make_worker = make_worker  # (replica URL, address) -> worker
        self._metrics = metrics
        self._on_added = on_added
        self._count = metrics.http_replicas.labels(camera)
        self._count.set(0)
        # Replaced, never changed in place: the encode loop reads it without the lock.
        self._workers: dict[str, ReplicaWorker] = {}
        self._lock = threading.Lock()
        self._stopped = False

    @property
    def addresses(self) -> Addresses:
        return tuple(self._workers)

    @property
    def has_room(self) -> bool:
        return any(worker.has_room for worker in self._workers.values())

    def put(self, frame: Frame) -> None:
        for worker in self._workers.values():
            worker.put(frame)

    def start(self) -> None:
        self._resolver.subscribe(self.update)

    def stop(self) -> None:
        self._resolver.unsubscribe(self.update)
        with self._lock:
            self._stopped = True
            workers, self._workers = self._workers, {}
        self._retire(workers)

    def update(self, addresses: Addresses) -> None:
        """Start a worker for each new address, stop the workers of addresses gone."""
        with self._lock:
            if self._stopped:
                return
            current = self._workers
            gone = {a: w for a, w in current.items() if a not in addresses}
            added = {
                a: self._make_worker(replica_url(self.url, a), a)
                for a in addresses
                if a not in current
            }
            self._workers = {a: current.get(a) or added[a] for a in addresses}
            for worker in added.values():
                worker.start()
            self._count.set(len(self._workers))
        self._retire(gone)
        if added:
            self._on_added()

    def _retire(self, workers: dict[str, ReplicaWorker]) -> None:
        for address, worker in workers.items():
            worker.stop()
            self._metrics.forget_replica(self.camera, address)
