"""Every replica serves every camera: a camera another replica owns is relayed from its owner.

Three `redis-receiver` processes with `--advertise-url` share the cameras of one sender
(each camera read and decoded by its owner alone, framewire.owners). The camera ids are
chosen once the replicas' ports are known, so the roles are fixed: `near` (the replica
the viewer uses) owns one camera, `far` owns another, and `doomed` owns two: one that
passes to `far` when `doomed` dies, one that passes to `near`.

- a stream of a variant at `near` of a camera `far` owns has the same parts (seq, bytes)
  as the owner's own stream of that variant; a snapshot too; /stats names every camera's
  owner at every replica; the grid at `near` shows every camera moving;
- `doomed` is SIGKILLed mid-stream: the viewers' same responses at `near` go on, with
  frames captured after the kill, from the new owner (`far`) or from `near` itself;
- the extra hop's latency, capture to read by the viewer, direct against relayed
  (`pytest tests/system/test_relay_live.py -k hop -s` prints it; docs/scaling.md "Relay").
"""

from __future__ import annotations

import os
import signal
import statistics
import threading
import time
from pathlib import Path

import numpy as np
import requests

from conftest import RedisServer, Service, Services, scrape, wait_until
from framewire.owners import member_key, owner_key
from framewire.relay import PartReader
from framewire_bench.stack import write_cameras
from helpers import decode, live, tiles

FPS = 10
RESUME_BOUND = 12.0  # seconds from the kill to a new frame in the same stream (about 4-6 here)


class Parts(threading.Thread):
    """A stream's parts as they arrive: (arrival ns, seq or None, captured ns or None, body)."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True, name="test-parts")
        self.response = requests.get(url, stream=True, timeout=30)
        assert self.response.status_code == 200, (url, self.response.status_code)
        self.parts: list[tuple[int, int | None, int | None, bytes]] = []
        self.error: Exception | None = None
        self.ended = False

    def run(self) -> None:
        reader = PartReader()
        try:
            for chunk in self.response.iter_content(chunk_size=None):
                now = time.time_ns()
                for headers, body in reader.feed(chunk):
                    seq = headers.get("x-framewire-seq")
                    captured = headers.get("x-framewire-captured-ns")
                    self.parts.append(
                        (now, int(seq) if seq else None, int(captured) if captured else None, body)
                    )
        except Exception as exc:  # kept for the test's message
            self.error = exc
        self.ended = True

    def by_seq(self) -> dict[int, bytes]:
        return {seq: body for _, seq, _, body in list(self.parts) if seq is not None}

    def close(self) -> None:
        self.response.close()
        self.join(timeout=5)


def start_replicas(services: Services, redis: RedisServer, count: int) -> list[Service]:
    return services.replicas(count, "--redis-url", redis.url, "--stale-after", "1")


def owner(camera: str, replicas: list[Service]) -> Service:
    by_key = {member_key(r.url): r for r in replicas}
    return by_key[str(owner_key(camera, by_key))]


def pick(predicate, taken: set[str]) -> str:  # type: ignore[no-untyped-def]
    camera = next(f"cam{i}" for i in range(1000) if f"cam{i}" not in taken and predicate(f"cam{i}"))
    taken.add(camera)
    return camera


def members_seen(replicas: list[Service]) -> bool:
    want = sorted(member_key(r.url) for r in replicas)
    for replica in replicas:
        stats = requests.get(f"{replica.url}/stats", timeout=5).json()
        if sorted(m["key"] for m in stats["members"]) != want:
            return False
    return True


def test_a_replica_relays_the_owner_and_its_viewers_survive_the_owner(
    tmp_path: Path, services: Services, redis_server: RedisServer
) -> None:
    replicas = start_replicas(services, redis_server, 3)
    near, far, doomed = replicas
    survivors = [near, far]
    taken: set[str] = set()
    own = pick(lambda c: owner(c, replicas) is near, taken)
    remote = pick(lambda c: owner(c, replicas) is far, taken)
    to_far = pick(lambda c: owner(c, replicas) is doomed and owner(c, survivors) is far, taken)
    to_near = pick(lambda c: owner(c, replicas) is doomed and owner(c, survivors) is near, taken)
    cameras = [own, remote, to_far, to_near]
    cameras_file = write_cameras(
        tmp_path / "cameras.yaml",
        [{"id": c, "width": 320, "height": 240, "fps": FPS} for c in cameras],
    )
    services.sender(
        "--cameras-file", str(cameras_file), "--http-url", "", "--redis-url", redis_server.url
    )
    wait_until(lambda: members_seen(replicas), timeout=30, what="every replica sees all three")
    for replica in replicas:
        wait_until(
            lambda r=replica: live(r, cameras), timeout=30, what=f"every camera live at {replica}"
        )

    # /stats at every replica: every camera, each with its owner, and the members.
    for replica in replicas:
        stats = requests.get(f"{replica.url}/stats", timeout=5).json()
        assert stats["me"] == member_key(replica.url)
        for camera in cameras:
            assert stats["cameras"][camera]["owner"] == member_key(owner(camera, replicas).url)

    # The same parts at the replica and at the owner: a variant, paced (the same ticks).
    query = "width=320&fps=5&quality=70"
    direct = Parts(f"{far.url}/stream/{remote}.mjpg?{query}")
    relayed = Parts(f"{near.url}/stream/{remote}.mjpg?{query}")
    for stream in (direct, relayed):
        stream.start()

    def common() -> set[int]:
        return set(direct.by_seq()) & set(relayed.by_seq())

    wait_until(lambda: len(common()) >= 8, timeout=20, what="8 frames seen on both streams")
    direct_parts, relayed_parts = direct.by_seq(), relayed.by_seq()
    for seq in sorted(common()):
        assert relayed_parts[seq] == direct_parts[seq], f"frame {seq} differs"
    direct.close()
    relayed.close()

    # A snapshot of a camera owned elsewhere comes from its owner, its seq with it.
    snap = requests.get(f"{near.url}/snapshot/{remote}.jpg", timeout=10)
    assert snap.status_code == 200 and snap.headers["Content-Type"] == "image/jpeg"
    assert int(snap.headers["X-Framewire-Seq"]) > 0
    assert decode(snap.content).shape == (240, 320, 3)
    # Not relayed again: a relayed request for a camera this replica does not own is answered
    # here: a 404 (no channel), or the no-signal picture (503) of a channel left from the
    # moment before the members settled, when this replica owned the camera for a beat.
    again = requests.get(
        f"{near.url}/snapshot/{remote}.jpg", headers={"X-Framewire-Relay": "1"}, timeout=10
    )
    assert again.status_code in (404, 503), again.status_code

    # The grid at `near` shows every camera moving, the remote ones from their owners.
    with requests.get(f"{near.url}/grid.mjpg?fps=5", stream=True, timeout=10) as grid:
        reader, pictures, started = PartReader(), [], time.monotonic()
        for chunk in grid.iter_content(chunk_size=None):
            pictures += [body for _, body in reader.feed(chunk)]
            if time.monotonic() - started > 4 and len(pictures) >= 6:
                break
    first, last = decode(pictures[-6]), decode(pictures[-1])
    for camera, a, b in zip(sorted(cameras), tiles(first, 4), tiles(last, 4), strict=True):
        change = float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())
        assert change > 0.5, f"grid tile of {camera} did not change ({change:.2f})"
        assert a.mean() > 20, f"grid tile of {camera} is black"

    # The owner of two cameras dies mid-stream: the viewers' same streams go on.
    viewers = {c: Parts(f"{near.url}/stream/{c}.mjpg") for c in (to_far, to_near)}
    for viewer in viewers.values():
        viewer.start()
    wait_until(
        lambda: all(len(v.by_seq()) >= 3 for v in viewers.values()),
        what="both viewers streaming",
    )
    os.killpg(doomed.proc.pid, signal.SIGKILL)  # master and worker: the whole replica dies
    doomed.proc.wait()
    killed_ns = time.time_ns()

    def resumed(viewer: Parts) -> int | None:
        """Arrival of the first part captured after the kill, if any."""
        return next(
            (at for at, seq, cap, _ in list(viewer.parts) if cap and seq and cap > killed_ns),
            None,
        )

    wait_until(
        lambda: all(resumed(v) for v in viewers.values()) or any(v.ended for v in viewers.values()),
        timeout=RESUME_BOUND + 5,
        what="both viewers' streams go on with new frames",
    )
    for camera, viewer in viewers.items():
        assert not viewer.ended, f"{camera}: the stream ended ({viewer.error})"
        at = resumed(viewer)
        assert at is not None
        seconds = (at - killed_ns) / 1e9
        new_owner = "far" if camera == to_far else "near itself"
        print(f"{camera}: new frames {seconds:.1f} s after the kill, from {new_owner}")
        assert seconds <= RESUME_BOUND, (camera, seconds)
        viewer.close()

    def owners_now() -> dict[str, str | None]:
        stats = requests.get(f"{near.url}/stats", timeout=5).json()["cameras"]
        return {c: stats.get(c, {}).get("owner") for c in (to_far, to_near)}

    # The members report what they own once a second: /stats follows within a beat or two.
    want = {to_far: member_key(far.url), to_near: member_key(near.url)}
    wait_until(lambda: owners_now() == want, timeout=10, what="/stats names the new owners")


def latencies_ms(stream: Parts, since_ns: int) -> list[float]:
    return [
        (at - cap) / 1e6 for at, seq, cap, _ in list(stream.parts) if seq and cap and at > since_ns
    ]


def test_hop_latency_direct_against_relayed(
    tmp_path: Path, services: Services, redis_server: RedisServer
) -> None:
    """One 1280x720 camera at 30 fps: capture to read by a viewer at its owner and, relayed,
    at another replica, over the same seconds (both full size: the owner's one encode)."""
    replicas = start_replicas(services, redis_server, 2)
    taken: set[str] = set()
    camera = pick(lambda c: owner(c, replicas) is replicas[0], taken)
    the_owner, other = replicas
    cameras_file = write_cameras(
        tmp_path / "cameras.yaml", [{"id": camera, "width": 1280, "height": 720, "fps": 30}]
    )
    services.sender(
        "--cameras-file", str(cameras_file), "--http-url", "", "--redis-url", redis_server.url
    )
    wait_until(lambda: members_seen(replicas), timeout=30, what="both replicas see each other")
    wait_until(lambda: live(other, [camera]), timeout=30, what="the camera live at both")
    direct = Parts(f"{the_owner.url}/stream/{camera}.mjpg")
    relayed = Parts(f"{other.url}/stream/{camera}.mjpg")
    for stream in (direct, relayed):
        stream.start()
    wait_until(lambda: len(relayed.parts) >= 10, what="the relayed stream flowing")
    since = time.time_ns()
    decoded = scrape(other.url, "framewire_frames_received_total", camera=camera)
    time.sleep(8)  # the measurement window, not a wait for readiness
    direct.close()
    relayed.close()
    a, b = latencies_ms(direct, since), latencies_ms(relayed, since)
    # Relayed indeed: the other replica decoded none of the camera's frames meanwhile (it may
    # have read a few before the replicas saw each other, each alone owning every camera).
    assert scrape(other.url, "framewire_frames_received_total", camera=camera) == decoded
    assert len(a) > 100 and len(b) > 100, (len(a), len(b))
    da = statistics.quantiles(a, n=20)
    db = statistics.quantiles(b, n=20)
    print(
        f"capture to viewer, 1280x720 30 fps: direct p50 {statistics.median(a):.1f} ms"
        f" p95 {da[18]:.1f} ms ({len(a)} frames); relayed p50 {statistics.median(b):.1f} ms"
        f" p95 {db[18]:.1f} ms ({len(b)} frames); hop p50"
        f" {statistics.median(b) - statistics.median(a):.1f} ms"
    )
    assert statistics.median(b) - statistics.median(a) < 40
