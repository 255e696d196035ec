"""Redis receiver replicas find each other in Redis: a key per replica with a short TTL.

Each replica with an `--advertise-url` SETs `framewire:members:<key>` (its
URL and the cameras it owns, as JSON) with a TTL of `TTL` seconds, every
`BEAT` seconds, and reads the others' keys (SCAN, then GET) on the same beat.
Redis expires a key whose replica stopped refreshing it, so a replica that
dies leaves the set within `TTL` and its cameras pass to the survivors on
their next beat: at most TTL + BEAT (4 s) after its last refresh. A replica
that stops cleanly deletes its key, and hands over at once.

Why not a Redis Streams consumer group: a group spreads one stream's
entries over its consumers, so every replica would decode some frames of
every camera (each camera's frames split, out of order between replicas,
none holding the newest): latest-frame-wins per camera needs one reader per
camera stream, which is what an owner is.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable

from framewire.owners import Member, Owners
from framewire.resilience import UpDown, Worker
from framewire.transports.redis_connect import ERRORS, LazyClient, keep_beating

log = logging.getLogger(__name__)

PREFIX = "framewire:members:"
TTL = 3.0  # seconds a replica's key lives without a refresh
BEAT = 1.0  # seconds between refreshes (and reads of the others)


class RedisMembers:
    """Keeps this replica's key alive in Redis and `owners` current, on a thread of its own."""

    def __init__(
        self,
        client: LazyClient,
        owners: Owners,
        owned: Callable[[], list[str]],
        on_members: Callable[[int], None] = lambda count: None,
    ) -> None:
        if owners.me is None:
            raise ValueError("Redis membership needs this replica's URL (--advertise-url)")
        self.me = owners.me
        self._lazy = client
        self._owners = owners
        self._owned = owned  # the cameras this replica owns now, for the others to read
        self._on_members = on_members
        self._state = UpDown("Redis replica membership", PREFIX + self.me.key, logger=log)
        self._worker = Worker("redis-members", self._run, join_timeout=5.0)

    def start(self) -> None:
        self._worker.start()

    def stop(self) -> None:
        """End the heartbeats and delete this replica's key: the others take over at once."""
        self._worker.stop()
        with contextlib.suppress(*ERRORS):  # unreachable: the key expires by itself
            self._lazy.get().delete(PREFIX + self.me.key)
        self._lazy.close()

    def beat(self) -> None:
        """Refresh this replica's key, then read every live replica's into `owners`."""
        client = self._lazy.get()
        value = json.dumps({"url": self.me.url, "cameras": self._owned()})
        client.set(PREFIX + self.me.key, value, px=int(TTL * 1000))
        members = []
        for name in client.scan_iter(match=PREFIX + "*", count=100):
            raw = client.get(name)
            if raw is None:  # expired between SCAN and GET
                continue
            try:
                found = json.loads(raw)
                members.append(Member.at(str(found["url"]), map(str, found.get("cameras", []))))
            except (ValueError, KeyError, TypeError):
                continue  # not a replica's key: ignored
        before = {m.key for m in self._owners.members()}
        self._owners.update(members)
        now = {m.key for m in self._owners.members()}
        if now != before:
            joined, left = sorted(now - before), sorted(before - now)
            log.info(
                "Redis replicas: %d live (%s)%s%s",
                len(now),
                ", ".join(sorted(now)),
                f"; joined: {', '.join(joined)}" if joined else "",
                f"; left: {', '.join(left)}" if left else "",
            )
        self._on_members(len(now))

    def _run(self) -> None:
        keep_beating(self._worker.stopping, self._state, self.beat, BEAT, TTL)
