"""Redis receiver replicas share the cameras: each camera read and decoded by one owner.

Three `redis-receiver` processes with `--advertise-url` read one Redis, fed by one sender
with six cameras. Each camera is decoded by exactly the replica rendezvous hashing names
(framewire.owners); one replica SIGKILLed mid-stream hands its cameras to the survivors
once its key expires; a replica that joins takes over its share, and none is left unowned.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from conftest import RedisServer, Service, Services, scrape, wait_until
from framewire.owners import member_key, owner_key
from framewire_bench.stack import write_cameras

CAMERAS = tuple(f"cam{i}" for i in range(6))
FPS = 10
TAKEOVER_BOUND = 15.0  # seconds; the design's figure (TTL + one beat, 4 s) is printed, not held


def received(replica: Service, camera: str) -> float:
    return scrape(replica.url, "framewire_frames_received_total", camera=camera, transport="redis")


def decoders(replicas: list[Service], window: float = 1.5) -> dict[str, list[str]]:
    """Which replicas decoded each camera over `window` seconds."""
    before = {(r.url, c): received(r, c) for r in replicas for c in CAMERAS}
    time.sleep(window)  # a measurement window, not a wait for readiness
    return {c: [r.url for r in replicas if received(r, c) > before[(r.url, c)]] for c in CAMERAS}


def expected(replicas: list[Service]) -> dict[str, list[str]]:
    """The owner of each camera by the hash, over `replicas`."""
    urls = {member_key(r.url): r.url for r in replicas}
    return {c: [urls[str(owner_key(c, urls))]] for c in CAMERAS}


def settled(replicas: list[Service]) -> bool:
    """Every replica sees them all, and each camera is decoded by its owner alone."""
    if any(scrape(r.url, "framewire_replica_members") != len(replicas) for r in replicas):
        return False
    return decoders(replicas) == expected(replicas)


def test_each_camera_has_one_owner_that_survivors_replace_and_newcomers_share(
    tmp_path: Path, services: Services, redis_server: RedisServer
) -> None:
    replicas = services.replicas(3, "--redis-url", redis_server.url, "--stale-after", "1")
    cameras = write_cameras(
        tmp_path / "cameras.yaml",
        [{"id": c, "width": 160, "height": 120, "fps": FPS} for c in CAMERAS],
    )
    services.sender(
        "--cameras-file", str(cameras), "--http-url", "", "--redis-url", redis_server.url
    )
    wait_until(lambda: settled(replicas), timeout=30, what="each camera decoded by its owner")
    for replica in replicas:
        for camera in CAMERAS:
            owned = scrape(replica.url, "framewire_camera_owned", camera=camera)
            assert owned == (expected(replicas)[camera] == [replica.url])

    # The replica owning the most cameras dies mid-stream: the survivors take them over.
    owners = expected(replicas)
    dead = max(replicas, key=lambda r: sum(owners[c] == [r.url] for c in CAMERAS))
    orphans = [c for c in CAMERAS if owners[c] == [dead.url]]
    assert orphans
    os.killpg(dead.proc.pid, signal.SIGKILL)  # master and worker: the whole replica dies
    dead.proc.wait()
    killed = time.monotonic()
    survivors = [r for r in replicas if r is not dead]

    def totals() -> dict[str, float]:
        return {c: sum(received(r, c) for r in survivors) for c in orphans}

    def orphans_decoded() -> bool:
        before = totals()
        time.sleep(0.3)  # a measurement window: frames decoded over it
        now = totals()
        return all(now[c] > before[c] for c in orphans)

    wait_until(orphans_decoded, timeout=TAKEOVER_BOUND, what="the dead replica's cameras taken")
    print(f"cameras {orphans} decoded again {time.monotonic() - killed:.1f} s after the kill")
    wait_until(lambda: settled(survivors), timeout=15, what="two replicas share the cameras")
    takeovers = sum(
        scrape(r.url, "framewire_camera_takeovers_total", camera=c)
        for r in survivors
        for c in orphans
    )
    assert takeovers == len(orphans)

    # A replica joins: it takes its share at once, every camera still has one owner.
    (joined,) = services.replicas(1, "--redis-url", redis_server.url, "--stale-after", "1")
    everyone = [*survivors, joined]
    wait_until(lambda: settled(everyone), timeout=15, what="three replicas share the cameras")
    assert any(expected(everyone)[c] == [joined.url] for c in CAMERAS)
