"""Which replica of a receiver owns each camera: rendezvous (highest-random-weight) hashing.

Every camera has exactly one owner among the live members (replicas) of a
receiver: the member whose key scores highest for that camera. Adding or
removing a member moves only the cameras it wins or held (about 1/n of
them). Only the owner reads, decodes, processes and annotates a camera; the
other replicas relay what the owner serves.

A member's key is `host:port`, the address the other replicas (and, for
HTTP, the sender) reach it at; the sender hashes the same strings, so it
and the receivers agree on owners without talking. `Owners` holds one
replica's view of the members; who keeps it current is the transport's
business (Redis heartbeats, DNS plus probes). Without `--advertise-url` a
receiver is alone (`Owners.solo()`): it owns every camera.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit


def weight(camera: str, key: str) -> int:
    """The score of member `key` for `camera` (64 bits of BLAKE2b: stable across processes)."""
    digest = hashlib.blake2b(f"{key}\n{camera}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owner_key(camera: str, keys: Iterable[str]) -> str | None:
    """The key among `keys` that owns `camera` (None if there is none)."""
    return max(keys, key=lambda k: (weight(camera, k), k), default=None)


def member_key(url: str) -> str:
    """`host:port` of a replica's URL (the port defaulted from the scheme)."""
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme, 80)
    host = parts.hostname or ""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True)
class Member:
    """A live replica: its key, the URL it serves at, and the cameras it reported owning."""

    key: str
    url: str
    cameras: tuple[str, ...] = ()

    @classmethod
    def at(cls, url: str, cameras: Iterable[str] = ()) -> Member:
        return cls(member_key(url), url.rstrip("/"), tuple(sorted(cameras)))


Changed = Callable[[frozenset[str], frozenset[str]], None]  # (keys before, keys now)


class Owners:
    """One replica's view of the live members, and so of each camera's owner.

    `me` is this replica (None: alone, owning every camera). `update` replaces
    the members (this replica is always one of them); subscribers hear of
    every change of the set of keys, on the thread that updated it.
    """

    def __init__(self, me: Member | None) -> None:
        self.me = me
        self._members: dict[str, Member] = {me.key: me} if me else {}
        self._subscribers: list[Changed] = []
        self._lock = threading.Lock()

    @classmethod
    def solo(cls) -> Owners:
        return cls(None)

    @property
    def shared(self) -> bool:
        """True when cameras are spread over replicas (this one has a URL to be reached at)."""
        return self.me is not None

    def members(self) -> tuple[Member, ...]:
        """The live members, by key (this replica included)."""
        members = self._members
        return tuple(members[k] for k in sorted(members))

    def owner(self, camera: str) -> Member | None:
        """The member that owns `camera`; None when alone."""
        members = self._members
        key = owner_key(camera, members)
        return members.get(key) if key is not None else None

    def mine(self, camera: str) -> bool:
        """True when this replica owns `camera` (always when alone)."""
        if self.me is None:
            return True
        return owner_key(camera, self._members) == self.me.key

    def subscribe(self, callback: Changed) -> None:
        with self._lock:
            self._subscribers.append(callback)

    def update(self, members: Iterable[Member]) -> None:
        """The live members now (this replica is added if missing); subscribers hear of a
        change of keys."""
        found = {m.key: m for m in members}
        if self.me is not None:
            found.setdefault(self.me.key, self.me)
        with self._lock:
            before = frozenset(self._members)
            self._members = found  # replaced, never changed in place: readers take no lock
            now = frozenset(found)
            if now == before:
                return
            for callback in list(self._subscribers):
                callback(before, now)
