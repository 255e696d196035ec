"""The hub: every known camera's channel (channel.py), the grid over them (grid.py), the
viewer seats they share (seats.py) and the frames refused lately (`Refusals`).

A camera is added by the pipeline after its first accepted frame and removed
when it is forgotten (its open streams then end). Only a default camera named
by `--default-camera` has a channel from the start; without one, the bare
routes mean the first camera (by id) that exists, and none before a frame.
A viewer opens a stream with one call, `open` or `open_grid`: the handle it
gets is a context manager that holds a seat and a watch until it exits.
A refused frame creates no camera, so refusals are receiver-wide: the newest
one of each reason, the camera it named, how many, and the setting that would
let it in (when a setting is why), for /stats and the page's "no signal" text.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from framewire.channel import CameraNotFound, Channel, Settings
from framewire.config import ReceiverConfig
from framewire.figures import FPS_WINDOW, LATENCY_WINDOW
from framewire.frame import WireError, parse_camera
from framewire.grid import Grid
from framewire.metrics import ReceiverMetrics
from framewire.owners import Member, Owners
from framewire.relay import Relay, Source, relays
from framewire.relay_tiles import RemoteTiles
from framewire.seats import Seats
from framewire.signals import Events, Refusals
from framewire.variants import EncodeKey


class Hub:
    """The known cameras' channels, the grid, and the viewer seats."""

    def __init__(
        self, metrics: ReceiverMetrics, config: ReceiverConfig, owners: Owners | None = None
    ) -> None:
        self.settings = Settings(
            metrics,
            config.transport,
            config.stream_quality,
            config.stale_after,
            config.strip == "on",
        )
        self.owners = owners or Owners.solo()  # which replica owns each camera (owners.py)
        # Each camera's state at its sender, where the transport can read it (Redis): "up",
        # "source_down" or "gone" (redis_presence.py); the app sets it.
        self.sender_states: Callable[[list[str]], dict[str, str]] = lambda cameras: {}
        self.default_camera = config.default_camera
        self.max_cameras = config.max_cameras
        self._channels: dict[str, Channel] = {}
        self._lock = threading.Lock()
        self.seats = Seats(config.max_viewers)
        self.relay = Relay(self.owners, self.source, config.keepalive, config.max_viewers)
        self.tiles = RemoteTiles(self.relay, config.stale_after)
        self.grid = Grid(self.channels, self.settings, self.seats, self.remote, self.tiles)
        self.refused = Refusals()  # frames refused, by reason (they name no camera slot)
        self.receive_errors = Events()  # failures of the transport itself, by reason
        if self.default_camera:  # declared: known, "no signal", until its frames come
            self.add(self.default_camera)

    def find(self, camera: str) -> Channel | None:
        """The channel of a known camera, else None."""
        return self._channels.get(camera)

    def full(self) -> bool:
        """True when no new camera fits (`max_cameras` counts the default camera)."""
        return len(self._channels) >= self.max_cameras

    def add(self, camera: str) -> Channel:
        """The channel of `camera`, added if new; WireError `camera_limit` when full."""
        with self._lock:
            channel = self._channels.get(camera)
            if channel is None:
                if len(self._channels) >= self.max_cameras:
                    raise WireError("camera_limit", f"at most {self.max_cameras} cameras")
                channel = Channel(camera, self.settings, self.seats, self.grid.watchers)
                self._channels[camera] = channel
            return channel

    def remove(self, camera: str) -> None:
        """Forget `camera`: its channel closes (its streams end) and its place frees."""
        with self._lock:
            channel = self._channels.pop(camera, None)
            if channel is None:
                return
            channel.close()

    def default(self) -> str | None:
        """The camera the bare routes mean: the declared one, else the first known by id (here
        or at another replica), else None."""
        if self.default_camera:
            return self.default_camera
        return min(self.known(), default=None)

    def known(self) -> dict[str, str | None]:
        """Every known camera: this replica's channels and the cameras the other replicas
        report owning, each with the key of its owner (None when alone)."""
        with self._lock:
            cameras = set(self._channels)
        for member in self.owners.members():
            cameras.update(member.cameras)
        found = {}
        for camera in sorted(cameras):
            owner = self.owners.owner(camera)
            found[camera] = owner.key if owner is not None else None
        return found

    def source(self, camera: str, relayed: bool = False) -> Source:
        """Where `camera` is served from now: this replica's channel (None if it has none) when
        it holds a fresh frame of it or owns it, else the owner (relay.relays)."""
        channel = self._channels.get(camera)
        owners = self.owners
        if not owners.shared:
            return channel
        fresh = channel is not None and channel.slot.live()
        owner = owners.owner(camera)
        me = owners.me.key if owners.me is not None else None
        if relays(relayed, owners.shared, fresh, owner.key if owner else None, me):
            return owner
        return channel

    def remote(self) -> dict[str, Member]:
        """The known cameras served from another replica now, with their owners."""
        found = {}
        for camera in self.known():
            source = self.source(camera)
            if isinstance(source, Member):
                found[camera] = source
        return found

    def lookup(self, camera: str | None) -> Channel:
        """The channel a route names (None: the default camera); CameraNotFound if unknown."""
        name = camera or self.default()
        if name is None:
            raise CameraNotFound("no_camera", "no camera has sent a frame yet")
        try:
            name = parse_camera(name)
        except WireError as exc:
            raise CameraNotFound(exc.reason, exc.detail) from None
        channel = self._channels.get(name)
        if channel is None:
            raise CameraNotFound("unknown_camera", f"no camera {name}")
        return channel

    def channels(self) -> list[Channel]:
        """Every known camera's channel, by camera id."""
        with self._lock:
            return [self._channels[c] for c in sorted(self._channels)]

    def open(self, camera: str | None, key: EncodeKey) -> AbstractContextManager[Channel]:
        """A stream of the camera a route names, as `key`: Channel.viewer (CameraNotFound if
        the camera is unknown)."""
        return self.lookup(camera).viewer(key)

    @contextmanager
    def seat(self) -> Iterator[None]:
        """A seat for a stream that is not one channel's (a relayed stream, relay.py)."""
        self.seats.take()
        try:
            yield
        finally:
            self.seats.give_back()

    def open_grid(self) -> AbstractContextManager[Grid]:
        """A stream of the grid: Grid.viewer."""
        return self.grid.viewer()

    def stats(self, relayed: bool = False) -> dict[str, Any]:
        """The JSON of /stats: every known camera's live figures, each with its `owner` (a
        member key; None when alone), and the live `members` (`me`: this replica's key).

        A camera served from another replica has its owner's figures (its /stats, at most
        STATS_MAX_AGE old; `state` "owner unreachable" when it does not answer); a relayed
        request (another replica asking) gets only this replica's own channels.
        """
        owners = self.owners
        cameras: dict[str, dict[str, Any]] = {}
        channels = self.channels()
        senders = self.sender_states([c.camera for c in channels]) if channels else {}
        for channel in channels:
            owner = owners.owner(channel.camera)
            cameras[channel.camera] = {
                **channel.stats(),
                "owner": owner.key if owner else None,
                **({"sender": senders[channel.camera]} if channel.camera in senders else {}),
            }
        remote = {} if relayed else self.remote()
        answers = self.relay.stats_of({m.key: m for m in remote.values()}.values())
        for camera, member in remote.items():
            theirs = ((answers.get(member.key) or {}).get("cameras") or {}).get(camera)
            cameras[camera] = {**(theirs or unreachable()), "owner": member.key}
        return {
            "transport": self.settings.transport,
            "server_time": time.time(),
            "default_camera": self.default(),
            "stale_after": self.settings.stale_after,
            "window_seconds": {"fps": FPS_WINDOW, "latency": LATENCY_WINDOW},
            "cameras": dict(sorted(cameras.items())),
            "me": owners.me.key if owners.me else None,
            "members": [
                {"key": m.key, "url": m.url, "cameras": list(m.cameras)} for m in owners.members()
            ],
            "refused": self.refused.stats(),
            "receive_errors": self.receive_errors.stats(),
        }

    def close(self) -> None:
        """End every open stream (at shutdown), relayed ones too."""
        self.seats.close()
        self.relay.close()
        self.tiles.stop(join=1.0)
        for channel in self.channels():
            channel.close()
        self.grid.close()


def unreachable() -> dict[str, Any]:
    """/stats of a camera whose owner does not answer: its figures unknown."""
    return {
        "state": "owner unreachable",
        "signal": "waiting",
        "seq": None,
        "fps": 0.0,
        "latency_ms": {"p50": None, "p95": None, "samples": 0},
        "drops": {},
        "viewers": 0,
        "age_seconds": None,
    }
