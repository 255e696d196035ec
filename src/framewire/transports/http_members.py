"""The HTTP receivers' membership (`--http-peers NAME`): which replicas are live, from DNS and
probes, with no Redis.

`NAME` resolves to every replica (a Kubernetes headless Service). About
every `every` seconds, `Peers` resolves it and asks each address's receiver,
at the port and scheme of this replica's `--advertise-url`, for its `GET
/owned` (a short timeout); the replicas that answer are the members
(`Member.at(url, cameras)`, with the cameras each reports), this replica
always among them, and `Owners.update` takes them. A replica that stops
answering leaves at the next round; one that appears joins once it answers.
Every change of the set of members is one log line.

The sender hashes the same keys (`address:port`, its `--http-url` port: keep it
the port the replicas advertise), so both sides agree on each camera's owner
without talking. The gauges `framewire_replica_members` and
`framewire_camera_owned` (per camera this replica or a member reports) are
kept here.
"""

from __future__ import annotations

import contextlib
import json
import logging
from urllib.parse import urlsplit

from framewire.dns import resolve
from framewire.metrics import ReceiverMetrics
from framewire.owners import Member, Owners
from framewire.resilience import UpDown, Worker
from framewire.transports import PublishError
from framewire.transports.http import HttpSender

log = logging.getLogger(__name__)

OWNED = "/owned"  # what a replica answers: its key and the cameras it holds live
PROBE_TIMEOUT = 0.5  # seconds to connect to a peer, and for its answer
EVERY = 1.0  # seconds between rounds


def peer_url(advertise_url: str, address: str) -> str:
    """The URL of the replica at `address`: this replica's advertised scheme and port."""
    parts = urlsplit(advertise_url)
    host = f"[{address}]" if ":" in address else address
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}"


class Peers:
    """Keeps `owners` to the replicas of `name` that answer; see the module docstring."""

    def __init__(
        self,
        name: str,
        owners: Owners,
        metrics: ReceiverMetrics,
        transport: str,
        every: float = EVERY,
    ) -> None:
        assert owners.me is not None, "--http-peers needs --advertise-url"
        self.name = name
        self.owners = owners
        self.me = owners.me
        self.every = every
        self._port = urlsplit(self.me.url).port or (443 if self.me.url.startswith("https") else 80)
        self._members = metrics.replica_members.labels(transport)
        self._members.set(1)
        self._owned = metrics.camera_owned
        self._transport = transport
        self._cameras: set[str] = set()  # cameras with an owned series
        self._resolving = UpDown(f"HTTP peers: resolving {name}", name, logger=log)
        self._keys: frozenset[str] = frozenset({self.me.key})
        self._worker = Worker(f"peers-{name}", self._run)

    def start(self) -> None:
        self._worker.start()

    def stop(self) -> None:
        self._worker.stop()

    def ask(self, url: str) -> Member | None:
        """The member at `url` if it answers `GET /owned` within the timeout, else None."""
        sender = HttpSender(
            f"{url}{OWNED}",
            connect_timeout=PROBE_TIMEOUT,
            read_timeout=PROBE_TIMEOUT,
            server_name=self.name,
        )
        try:
            status, body = sender.get(OWNED)
            answer = json.loads(body) if status == 200 else None
            cameras = [str(c) for c in answer["cameras"]] if isinstance(answer, dict) else None
        except (PublishError, ValueError, KeyError, TypeError):
            return None
        finally:
            sender.close()
        return Member.at(url, cameras) if cameras is not None else None

    def refresh(self) -> None:
        """One round: resolve, ask every address, update the owners and the gauges."""
        try:
            addresses = resolve(self.name, self._port)
        except OSError as exc:
            self._resolving.set(False, f"{exc.strerror or exc}; keeping the members known")
            addresses = None
        else:
            self._resolving.set(True)
        if addresses is None:
            members = list(self.owners.members())
        else:
            urls = {peer_url(self.me.url, a) for a in addresses} | {self.me.url}
            members = [m for m in map(self.ask, sorted(urls)) if m is not None]
        self.owners.update(members)
        self._publish()

    def _publish(self) -> None:
        members = self.owners.members()
        keys = frozenset(m.key for m in members)
        if keys != self._keys:
            log.info(
                "HTTP peers: %d replica(s) of %s live: %s",
                len(keys),
                self.name,
                ", ".join(sorted(keys)),
            )
            self._keys = keys
        self._members.set(len(members))
        known = {c for m in members for c in m.cameras}
        for camera in known:
            self._owned.labels(camera, self._transport).set(1 if self.owners.mine(camera) else 0)
        for camera in self._cameras - known:
            with contextlib.suppress(KeyError):
                self._owned.remove(camera, self._transport)
        self._cameras = known

    def _run(self) -> None:
        stopping = self._worker.stopping
        while not stopping.is_set():
            self.refresh()
            stopping.wait(self.every)
