"""HTTP fan-out (`--http-fanout dns`): each camera's frames to its owner among the HTTP receiver
replicas.

HTTP push reaches one receiver per request. The sender resolves the
`--http-url` host to all its addresses (a Kubernetes headless Service resolves
to every pod) and POSTs each camera's frames to ONE of them, the camera's
owner: rendezvous hashing (owners.py) of the camera id over the live replicas'
keys, `address:port` with the URL's port, the strings the receivers hash for
their `--advertise-url`s. So the sender and the receivers agree on owners
without talking, and the HTTP path needs no Redis.

`Replicas` (one per `--http-url` in a sender process, shared by its cameras)
keeps the live set: the addresses the `dns.Resolver` gives, less those not
answering. A new address joins once it answers a probe (`GET /healthz`, as the
frames are dialled and verified); a replica whose send fails for want of an
answer (refused, timed out, TLS refused, 502-504) is taken out at once, so its
cameras re-hash to the survivors with the next frame, and it is probed about
every `probe_every` seconds until it answers again. Every change of the live
set is one log line, never one per frame. All changes are applied on the
set's own thread, which tells the subscribers (each camera's `CameraReplicas`).

Each camera's `CameraReplicas` keeps one transport worker per resolved address
(its own `HttpSender`s, one-slot mailbox and thread, labelled
`replica=<address>`) and puts each frame into its owner's mailbox only; it
counts every change of its owner (`framewire_owner_changes_total`), and
removes a replica's metric series when it leaves DNS.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from framewire.config import SenderConfig
from framewire.dns import Addresses, Resolver, replica_url
from framewire.frame import Frame
from framewire.metrics import SenderMetrics
from framewire.owners import member_key, owner_key
from framewire.resilience import Worker
from framewire.transports import PublishError, Unreachable
from framewire.transports.http import HttpSender
from framewire.urls import redact

log = logging.getLogger(__name__)

PROBE_EVERY = 1.0  # seconds between probes of a replica not answering

Probe = Callable[[str], str]  # address -> "" when the replica answers, else why not


@dataclass(frozen=True)
class View:
    """The replicas of one URL now: every resolved address and those live (answering)."""

    resolved: Addresses = ()
    live: Addresses = ()
    keys: tuple[tuple[str, str], ...] = ()  # (member key, address) of the live ones

    def owner(self, camera: str) -> str | None:
        """The address of the live replica that owns `camera`; None when none is live."""
        by_key = dict(self.keys)
        key = owner_key(camera, by_key)
        return by_key[key] if key is not None else None


class Replicas:
    """The live HTTP receiver replicas of one URL, shared by the cameras that send there."""

    def __init__(
        self, url: str, resolver: Resolver, probe: Probe, probe_every: float = PROBE_EVERY
    ) -> None:
        self.url = url
        self.host = resolver.host
        self.resolver = resolver
        self.probe = probe
        self.probe_every = probe_every
        self.view: View | None = None  # None until first published
        self._subscribers: list[Callable[[View], None]] = []
        self._told = threading.Lock()  # held while subscribers are told, so none misses a change
        # What the threads report, applied by the set's own thread (`apply`).
        self._inputs = threading.Lock()
        self._resolved: Addresses | None = None
        self._down: dict[str, str] = {}  # address -> why it is out (never answered yet, failed)
        self._failed: dict[str, str] = {}  # reported by senders since the last `apply`
        self._wake = threading.Event()
        self._worker = Worker(f"replicas-{self.host}", self._run)

    def subscribe(self, callback: Callable[[View], None]) -> None:
        """Call `callback` with the current view (if any) and with every change."""
        with self._told:
            self._subscribers.append(callback)
            if self.view is not None:
                callback(self.view)

    def unsubscribe(self, callback: Callable[[View], None]) -> None:
        with self._told:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

    def start(self) -> None:
        """Follow the resolver (started here too) on the set's own thread."""
        self.resolver.subscribe(self.resolved)
        self._worker.start()
        self.resolver.start()

    def stop(self) -> None:
        self.resolver.stop()
        self.resolver.unsubscribe(self.resolved)
        self._worker.stop(self._wake.set)

    def resolved(self, addresses: Addresses) -> None:
        """The resolver's new set (any thread): new addresses are probed before they join."""
        with self._inputs:
            self._resolved = addresses
        self._wake.set()

    def failed(self, address: str, why: str) -> None:
        """A send to `address` found no answer (any thread): it leaves the live set now."""
        with self._inputs:
            if address in self._down:
                return
            self._failed[address] = why
        self._wake.set()

    def apply(self, probe: bool = False) -> View | None:
        """Take in what was reported; with `probe`, probe the replicas that are out (and
        take back those that answer). Tell the subscribers if the live set changed."""
        with self._inputs:
            resolved = self._resolved
            if resolved is None:
                return None
            for address, why in self._failed.items():
                self._down.setdefault(address, why)
            self._failed.clear()
            current = self.view.resolved if self.view else ()
            for address in resolved:
                if address not in current:
                    self._down.setdefault(address, "not probed yet")
            for address in list(self._down):
                if address not in resolved:
                    del self._down[address]
            down = dict(self._down)
        if probe and down:
            answers = {address: self.probe(address) for address in down}
            with self._inputs:
                for address, why in answers.items():
                    if address not in self._down or address in self._failed:
                        continue  # gone from DNS, or failed again meanwhile
                    if why:
                        self._down[address] = why
                    else:
                        del self._down[address]
                down = dict(self._down)
        live = tuple(a for a in resolved if a not in down)
        keys = tuple((member_key(replica_url(self.url, a)), a) for a in live)
        view = View(resolved, live, keys)
        with self._told:
            if view == self.view:
                return view
            self.view = view
            out = ", ".join(f"{a} ({down[a]})" for a in resolved if a in down)
            log.info(
                "HTTP fan-out: cameras hashed over %d live replica(s) of %s: %s%s",
                len(live),
                self.host,
                ", ".join(live) or "none",
                f"; not answering: {out}" if out else "",
            )
            for callback in list(self._subscribers):
                callback(view)
        return view

    def _run(self) -> None:
        stopping = self._worker.stopping
        probed = 0.0
        while not stopping.is_set():
            woken = self._wake.wait(self.probe_every)
            self._wake.clear()
            if stopping.is_set():
                return
            now = time.monotonic()
            with self._inputs:
                joining = self._resolved is not None and any(
                    a not in (self.view.resolved if self.view else ()) for a in self._resolved
                )
            # Probe every `probe_every`, and at once when addresses appear.
            due = not woken or joining or now - probed >= self.probe_every
            self.apply(probe=due)
            if due:
                probed = now


class ReplicaWorker(Protocol):
    """What `CameraReplicas` needs of a transport worker (sender.TransportWorker)."""

    @property
    def has_room(self) -> bool: ...

    def put(self, frame: Frame) -> None: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def retry_now(self) -> None: ...


class CameraReplicas:
    """One camera's HTTP transport under DNS fan-out: a worker per replica address, frames to
    the owner's.

    Used by the camera's encode loop like one transport worker: `put` hands a
    frame to the owner's mailbox, `has_room` is true when the owner can take one
    (encode on demand; no live replica: no room).
    """

    name = "http"

    def __init__(
        self,
        url: str,
        camera: str,
        replicas: Replicas,
        make_worker: Callable[[str, str], ReplicaWorker],
        metrics: SenderMetrics,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.url = url
        self.camera = camera
        self.target = f"the owner among the addresses of {redact(url)} (DNS fan-out)"
        self._replicas = replicas
        self._make_worker = make_worker  # (replica URL, address) -> worker
        self._metrics = metrics
        self._on_change = on_change
        self._count = metrics.http_replicas.labels(camera)
        self._count.set(0)
        self._changes = metrics.owner_changes.labels(camera)
        # Replaced, never changed in place: the encode loop reads them without the lock.
        self._workers: dict[str, ReplicaWorker] = {}
        self._owner: ReplicaWorker | None = None
        self.owner: str | None = None  # the owner's address
        self._lock = threading.Lock()
        self._stopped = False

    @property
    def addresses(self) -> Addresses:
        return tuple(self._workers)

    @property
    def has_room(self) -> bool:
        owner = self._owner
        return owner is not None and owner.has_room

    def put(self, frame: Frame) -> None:
        owner = self._owner
        if owner is not None:
            owner.put(frame)

    def start(self) -> None:
        self._replicas.subscribe(self.update)

    def stop(self) -> None:
        self._replicas.unsubscribe(self.update)
        with self._lock:
            self._stopped = True
            workers, self._workers = self._workers, {}
            self._owner = None
        self._retire(workers)

    def update(self, view: View) -> None:
        """Start a worker for each new address, stop those of addresses gone, follow the owner."""
        with self._lock:
            if self._stopped:
                return
            current = self._workers
            gone = {a: w for a, w in current.items() if a not in view.resolved}
            added = {
                a: self._make_worker(replica_url(self.url, a), a)
                for a in view.resolved
                if a not in current
            }
            self._workers = workers = {a: current.get(a) or added[a] for a in view.resolved}
            for worker in added.values():
                worker.start()
            owner = view.owner(self.camera)
            self._owner = workers.get(owner) if owner is not None else None
            if owner != self.owner:
                if self.owner is not None:
                    self._changes.inc()
                self.owner = owner
                if self._owner is not None:  # it answers now: no backoff left from before
                    self._owner.retry_now()
            self._count.set(len(view.live))
            for address in view.resolved:
                self._metrics.replica_up.labels(self.camera, address).set(
                    1 if address in view.live else 0
                )
                self._metrics.replica_owner.labels(self.camera, address).set(
                    1 if address == owner else 0
                )
        self._retire(gone)
        self._on_change()

    def _retire(self, workers: dict[str, ReplicaWorker]) -> None:
        for address, worker in workers.items():
            worker.stop()
            self._metrics.forget_replica(self.camera, address)


def replicas_for(config: SenderConfig) -> Replicas:
    """The live replicas of `config`'s HTTP URL under DNS fan-out (resolved, probed)."""
    resolver = Resolver(config.http_url, config.http_resolve_every)
    return Replicas(config.http_url, resolver, replica_probe(config))


def not_answering(exc: PublishError) -> bool:
    """Whether a failed send says the replica does not answer (so its cameras move): refused
    or timed out, TLS refused, or a proxy in front of it with no receiver behind (502-504);
    not a frame the receiver refused."""
    return isinstance(exc, Unreachable) or exc.reason in ("tls", *NOT_ANSWERING)


NOT_ANSWERING = ("http_502", "http_503", "http_504")
PROBE_TIMEOUT = 1.0  # seconds a probe of a replica may take to connect, and to answer


def replica_probe(config: SenderConfig) -> Probe:
    """`GET /healthz` of one replica address, dialled and verified as its frames are; "" when
    it answers (below 500), else why not."""
    name = urlsplit(config.http_url).hostname or ""

    def probe(address: str) -> str:
        sender = HttpSender(
            replica_url(config.http_url, address),
            config.token,
            connect_timeout=min(config.http_connect_timeout, PROBE_TIMEOUT),
            read_timeout=min(config.http_read_timeout, PROBE_TIMEOUT),
            camera=config.camera,
            ca_cert=config.http_ca_cert,
            server_name=name,
        )
        try:
            status, _ = sender.get("/healthz")
        except PublishError as exc:
            return f"{exc.reason}: {exc}"
        finally:
            sender.close()
        return "" if status < 500 else f"http_{status}"

    return probe
