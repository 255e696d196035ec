"""The sender's fan-out in process: replica URLs, a failed resolve, a camera with no replica yet."""

from __future__ import annotations

import threading

import pytest

from conftest import free_port, wait_until
from framewire.config import SenderConfig
from framewire.fanout import Resolver, replica_url
from framewire.sender import CameraSender, publishers
from framewire.sources import open_source


def sample(sender: CameraSender, name: str, **labels: str) -> float:
    return sender.metrics.registry.get_sample_value(name, labels) or 0.0


def test_replica_urls_keep_everything_but_the_host() -> None:
    url = "http://user:pw@receivers.example:8001/frames?x=1"
    assert replica_url(url, "10.1.2.3") == "http://user:pw@10.1.2.3:8001/frames?x=1"
    assert replica_url("http://h/frames", "fd00::7") == "http://[fd00::7]/frames"
    assert replica_url("http://h:9/f", "fe80::1%eth0") == "http://[fe80::1%25eth0]:9/f"


def test_a_failed_resolve_keeps_the_replicas_known(caplog: pytest.LogCaptureFixture) -> None:
    """localhost resolves; then the name fails: the set stays, one line per change of state."""
    resolver = Resolver("http://localhost:8001/frames", 1.0)
    seen: list[tuple[str, ...]] = []
    resolver.subscribe(seen.append)
    resolver.refresh()
    assert seen and "127.0.0.1" in seen[0]
    resolver.host = "nothing.invalid"
    for _ in range(3):
        resolver.refresh()
    assert resolver.addresses == seen[0] and len(seen) == 1
    downs = [r for r in caplog.records if "resolving down" in r.getMessage()]
    assert len(downs) == 1, caplog.text


def test_fanout_camera_with_no_replica_yet_encodes_nothing_for_http() -> None:
    """Encode on demand: with no replica known, HTTP has no room (Redis absent: nothing)."""
    config = SenderConfig(
        width=160,
        height=120,
        http_url=f"http://127.0.0.1:{free_port()}/frames",
        http_fanout="dns",
        redis_url="",
        metrics_bind="",
    )
    source = open_source(config.source, config.width, config.height, config.fps, 1.0, 1.0)
    resolver = Resolver(config.http_url, 60.0)  # never started: no addresses
    sender = CameraSender(config, source, publishers(config), resolver=resolver)
    assert publishers(config) == [] and [w.name for w in sender.workers] == ["http"]
    runner = threading.Thread(target=sender.run)
    runner.start()
    capture_drops = {"camera": "cam0", "transport": "none", "stage": "capture"}
    wait_until(
        lambda: sample(sender, "framewire_frames_dropped_total", **capture_drops) >= 5,
        what="frames grabbed and left unencoded",
    )
    assert sample(sender, "framewire_encode_seconds_count", camera="cam0") == 0
    resolver.refresh()  # now 127.0.0.1: one replica, nobody listening -> errors, drops counted
    replica = {"camera": "cam0", "replica": "127.0.0.1"}
    wait_until(
        lambda: sample(sender, "framewire_replica_frames_dropped_total", **replica) >= 3,
        what="the replica's drops",
    )
    assert sample(sender, "framewire_http_replicas", camera="cam0") == 1
    assert sample(sender, "framewire_replica_up", **replica) == 0
    sender.stop()
    runner.join(timeout=10)
    assert not runner.is_alive()
    assert sender.metrics.registry.get_sample_value("framewire_replica_up", replica) is None
    left = [t.name for t in threading.enumerate() if t.name.startswith("framewire-")]
    assert left == []
