"""Rendezvous hashing: one owner per camera, and few cameras move when a member comes or goes."""

from __future__ import annotations

import socket

import pytest

from framewire.config import ReceiverConfig
from framewire.owners import Member, Owners, member_key, owner_key
from framewire.settings import ConfigError
from framewire.urls import advertised

CAMERAS = [f"cam{i}" for i in range(3000)]
KEYS = [f"10.0.0.{i}:8001" for i in range(1, 5)]


def owners(keys: list[str]) -> dict[str, str | None]:
    return {camera: owner_key(camera, keys) for camera in CAMERAS}


def test_every_camera_has_one_owner_and_the_load_is_even() -> None:
    counts = {key: 0 for key in KEYS}
    for owner in owners(KEYS).values():
        assert owner in counts
        counts[owner] += 1
    share = len(CAMERAS) / len(KEYS)
    assert all(0.85 * share < count < 1.15 * share for count in counts.values()), counts


def test_adding_or_removing_a_member_moves_only_its_share() -> None:
    before = owners(KEYS[:3])
    after = owners(KEYS)  # one joins: only the cameras it now wins move, all to it
    moved = [c for c in CAMERAS if before[c] != after[c]]
    assert {after[c] for c in moved} == {KEYS[3]}
    assert 0.2 < len(moved) / len(CAMERAS) < 0.3
    gone = owners([KEYS[0], KEYS[2], KEYS[3]])  # one leaves: only its cameras move
    assert all(gone[c] == after[c] for c in CAMERAS if after[c] != KEYS[1])


def test_the_owners_view_agrees_with_the_hash_and_tells_of_changes() -> None:
    me = Member.at("http://10.0.0.1:8001")
    assert me.key == "10.0.0.1:8001" == member_key("http://10.0.0.1:8001/")
    view = Owners(me)
    changes: list[tuple[frozenset[str], frozenset[str]]] = []
    view.subscribe(lambda before, now: changes.append((before, now)))
    assert all(view.mine(c) for c in CAMERAS[:50])  # alone in the set: owns everything
    view.update([Member.at(f"http://{key}") for key in KEYS[1:]])
    assert changes == [(frozenset(KEYS[:1]), frozenset(KEYS))]
    for camera in CAMERAS[:200]:
        owner = view.owner(camera)
        assert owner is not None and owner.key == owner_key(camera, KEYS)
        assert view.mine(camera) == (owner.key == me.key)
    view.update(view.members())  # the same set: no change told
    assert len(changes) == 1
    solo = Owners.solo()
    assert solo.mine("cam0") and solo.owner("cam0") is None and not solo.shared
    assert member_key("http://[fd00::1]:8001") == "[fd00::1]:8001"


def test_auto_advertises_this_hosts_address_and_the_bind_port() -> None:
    host = socket.gethostbyname(socket.gethostname())
    assert advertised("auto", "0.0.0.0:8002") == f"http://{host}:8002"
    assert advertised("http://10.0.0.5:8002", "0.0.0.0:8002") == "http://10.0.0.5:8002"
    assert ReceiverConfig(transport="redis", advertise_url="auto").advertise_url == "auto"
    with pytest.raises(ConfigError, match="http:// or https://") as refused:
        ReceiverConfig(transport="redis", advertise_url="ftp://10.0.0.5")
    assert refused.value.name == "advertise_url"
