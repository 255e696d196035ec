"""The Redis receiving side on a Redis Cluster (`--redis-cluster`).

A cluster refuses a command whose keys hash to different slots (CROSSSLOT),
even when one node owns them all, so the single-Redis way (one XREAD over
every camera stream) cannot work there. `ClusterStreamConsumer` runs one
reader thread per slot that holds followed streams (in practice one per
camera; cameras whose keys share a slot share one read), each with its own
redis-py `RedisCluster` client. A reader's blocking XREAD goes to the slot's
primary as that client's slot map says; redis-py keeps the map (it follows
MOVED and ASK, and refreshes it after a connection error), so after a
failover or a resharding a reader's next read lands on the new owner by
itself, and a camera never waits on another camera or on another node.
The consumer's own thread discovers camera streams by SCAN on every primary.
Each failed read is counted (`receive_error`); a node's state is logged once
per change, whichever of its readers sees it first.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection

import redis
from redis.cluster import ClusterNode

from framewire.resilience import Backoff, UpDown, Worker
from framewire.transports import FrameSink
from framewire.transports.redis import key
from framewire.transports.redis_connect import ERRORS, LazyClient, error_reason
from framewire.transports.redis_consumers import BLOCK_MS, DISCOVER_EVERY, StreamConsumer

log = logging.getLogger(__name__)
RETRY_CAP = 0.25  # a lost primary's replica takes over within seconds: look again soon


class ClusterStreamConsumer(StreamConsumer):
    """Reads the newest entry of every camera stream of a Redis Cluster, one reader per slot."""

    def __init__(
        self,
        url: str,
        sink: FrameSink,
        ca_cert: str,
        cluster: str,
        cameras: Collection[str] = (),
        decoders: int = 1,
    ) -> None:
        super().__init__(url, sink, ca_cert, cameras, cluster, decoders)
        self._readers: dict[int, SlotReader] = {}  # slot -> its reader
        self._nodes: dict[str, UpDown] = {}  # "host:port" -> its state
        self._lock = threading.Lock()
        self._logged_internal = False
        self._started = False

    def stop(self) -> bool:
        """End discovery first (no reader starts after it), then every reader at once (each
        within one blocking read); True if all ended."""
        ended = self._worker.stop()
        readers = list(self._readers.values())  # complete now
        for reader in readers:
            reader.worker.stopping.set()
        ended = all([reader.worker.stop() for reader in readers]) and ended
        for reader in readers:
            reader.client.close()
        self._lazy.close()
        return self._lanes.stop() and ended

    def _poll(self) -> None:
        self.discover()
        self._worker.stopping.wait(DISCOVER_EVERY if self._readers else 0.25)

    def discover(self) -> None:
        """Follow every camera stream on every primary (or the cameras asked for), each from
        the entry after its newest one, by the reader of its slot (started if new)."""
        client = self._client
        pattern = key("stream", "*")
        names = self._only or client.scan_iter(match=pattern, count=100, _type="stream")
        for name in names:
            reader = self._readers.get(slot := client.keyslot(name))
            if reader is not None and name in reader.ids:
                continue
            newest = client.xrevrange(name, count=1)
            if reader is None:
                reader = self._readers[slot] = SlotReader(self, slot, self._lazy.another())
                reader.follow(name, newest[0][0] if newest else b"0-0")
                if self._started:
                    reader.worker.start()
            else:
                reader.follow(name, newest[0][0] if newest else b"0-0")
        self._state.set(True)

    def start(self) -> None:
        self._started = True
        for reader in self._readers.values():  # those of the cameras asked for, discovered
            reader.worker.start()
        super().start()

    def read(
        self, cluster: redis.Redis, node: ClusterNode, ids: dict[bytes, bytes]
    ) -> dict[bytes, bytes]:
        """One blocking XREAD of streams of one slot at `node`, the slot's primary; ingest the
        newest entry of each and return the last id read of each stream that had any.

        The node is named, not left to redis-py: for XREAD (its keys are "movable") redis-py
        would ask the default node `COMMAND GETKEYS` before every read, so every camera
        would stop with that one node. A MOVED reply still updates the client's slot map.
        """
        args = ["XREAD", "BLOCK", BLOCK_MS, "STREAMS", *ids.keys(), *ids.values()]
        last: dict[bytes, bytes] = {}
        for name, entries in cluster.execute_command(*args, target_nodes=node) or []:
            last[name] = entries[-1][0]
            self._take(name, entries)
        return last

    def node_state(self, node: str, up: bool, why: str = "") -> None:
        with self._lock:
            state = self._nodes.get(node)
            if state is None:
                state = self._nodes[node] = UpDown("redis cluster node", node, logger=log)
        state.set(up, why)

    def failed(self, node: str, exc: Exception) -> None:
        """Count one failed read; log the node down (once per change), or a bug (once)."""
        if isinstance(exc, ERRORS):
            reason = error_reason(exc)
            self._sink.receive_error(reason)
            self.node_state(node, False, f"{reason}: {type(exc).__name__}")
            return
        self._sink.receive_error("internal")
        if not self._logged_internal:
            self._logged_internal = True
            log.error("unexpected error reading Redis Cluster; continuing", exc_info=exc)


class SlotReader:
    """One blocking XREAD after another over the followed streams of one slot."""

    def __init__(self, owner: ClusterStreamConsumer, slot: int, client: LazyClient) -> None:
        """`client`: the reader's own, so that a failure on another node never cuts its read."""
        self.owner = owner
        self.slot = slot
        self.client = client
        self.ids: dict[bytes, bytes] = {}  # stream key -> last id read
        self._lock = threading.Lock()
        self.worker = Worker(f"redis-slot-{slot}", self._run, join_timeout=BLOCK_MS / 1000 + 3)

    def follow(self, name: bytes, last_id: bytes) -> None:
        with self._lock:
            self.ids.setdefault(name, last_id)

    def _run(self) -> None:
        backoff, stopping, owner = Backoff(0.05, RETRY_CAP), self.worker.stopping, self.owner
        while not stopping.is_set():
            with self._lock:
                ids = dict(self.ids)
            node = "unknown"
            try:
                cluster = self.client.get()
                primary = cluster.get_node_from_key(next(iter(ids)))  # from the slot map
                node = primary.name
                for name, last_id in owner.read(cluster, primary, ids).items():
                    with self._lock:
                        self.ids[name] = last_id
                owner.node_state(node, True)
            except Exception as exc:  # counted, logged once per change; the reader goes on
                owner.failed(node, exc)
                backoff.wait(stopping)
                continue
            backoff.reset()
