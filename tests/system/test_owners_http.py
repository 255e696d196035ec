"""Replicas that add camera capacity over HTTP: each camera decoded by one owner replica.

Three HTTP receivers listen on 127.0.0.1, .2 and .3 on one port, each with its
`--advertise-url` and `--http-peers NAME`, where NAME resolves to all of them through
nss_wrapper (as a Kubernetes headless Service does; /etc/hosts is never touched). One sender
with `--http-fanout dns` posts each camera's frames to its owner only: rendezvous hashing of
the camera id over the replicas' `address:port`, the keys the receivers hash too.

- each of six cameras is received (decoded) by exactly one replica, the one the hash names,
  and the replicas agree (`framewire_camera_owned`, `framewire_replica_members`);
- SIGKILL of the replica owning most cameras mid-stream (master and worker, as a pod
  lost): within 5 s each of its cameras is received by one survivor, the others never
  move; the sender logs one line per change of the live set and counts the owner changes
  per camera;
- a 4th replica entering the name takes over the cameras it now wins, none is left
  unowned, and the frames decoded per frame sent stay at 1 (at most 1.05) once settled.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from conftest import Service, Services, scrape, wait_until
from framewire.owners import owner_key
from framewire_bench.readers import read_metrics, select, total
from framewire_bench.stack import LoopbackName, framewire_command, shared_port, write_cameras

ADDRESSES = ("127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4")
CAMERAS = tuple(f"cam{i}" for i in range(6))
FPS = 15
TAKEOVER_S = 5.0


def received(receiver: Service) -> dict[str, float]:
    """Frames received (decoded) at `receiver`, per camera."""
    samples = select(read_metrics(receiver.url), "framewire_frames_received_total")
    return {labels["camera"]: value for labels, value in samples}


def sent(sender: Service) -> float:
    return total(read_metrics(sender.url), "framewire_frames_sent_total", transport="http")


def window(sender: Service, receivers: list[Service], frames: int) -> tuple[dict, float]:
    """Frames each receiver received per camera, and the sender sent, while the sender sent
    at least `frames` more (a wait on progress, not a fixed sleep). The sender's count is
    read before and after each round of the receivers' (the mean of the two), so both
    windows cover the same time."""

    def read() -> tuple[dict[str, dict[str, float]], float]:
        first = sent(sender)
        counts = {r.name: received(r) for r in receivers}
        return counts, (first + sent(sender)) / 2

    before, sent_before = read()
    wait_until(lambda: sent(sender) >= sent_before + frames, what=f"{frames} frames sent")
    after, sent_after = read()
    counts = {
        r.name: {c: after[r.name].get(c, 0) - before[r.name].get(c, 0) for c in CAMERAS}
        for r in receivers
    }
    return counts, sent_after - sent_before


def receivers_of(counts: dict[str, dict[str, float]], camera: str) -> list[str]:
    return [name for name, cameras in counts.items() if cameras[camera] > 0]


def test_each_camera_has_one_owner_replica_through_a_kill_and_a_join(
    tmp_path: Path, services: Services
) -> None:
    port = shared_port(ADDRESSES)
    name = LoopbackName(tmp_path / "hosts")
    name.resolve_to(ADDRESSES[:3])
    cameras = write_cameras(
        tmp_path / "cameras.yaml",
        [{"id": c, "width": 160, "height": 120, "fps": FPS} for c in CAMERAS],
    )
    keys = {address: f"{address}:{port}" for address in ADDRESSES}

    def start(address: str) -> Service:
        url = f"http://{address}:{port}"
        args = ["http-receiver", "--bind", f"{address}:{port}", "--stale-after", "1"]
        args += ["--advertise-url", url, "--http-peers", name.name]
        return services.start(address, [*framewire_command(), *args], env=name.env, url=url)

    replicas = [start(a) for a in ADDRESSES[:3]]
    for replica in replicas:
        replica.wait_ready("/healthz")
    for replica in replicas:
        wait_until(
            lambda r=replica: scrape(r.url, "framewire_replica_members", transport="http") == 3,
            what=f"{replica.name} to see 3 members",
        )
    sender = services.sender(
        "--cameras-file", str(cameras), "--redis-url", "",
        "--http-url", f"http://{name.name}:{port}/frames", "--http-fanout", "dns",
        "--http-resolve-every", "1", env=name.env,
    )  # fmt: skip

    def expected(live: tuple[str, ...]) -> dict[str, str]:
        return {c: str(owner_key(c, [keys[a] for a in live])).split(":")[0] for c in CAMERAS}

    # Every camera decoded by exactly one replica: its owner by the hash.
    owners = expected(ADDRESSES[:3])
    wait_until(
        lambda: all(
            received(r).get(c, 0) > 0 for c in CAMERAS for r in replicas if r.name == owners[c]
        ),
        what="every camera at its owner",
    )
    counts, _ = window(sender, replicas, 3 * FPS * len(CAMERAS) // 2)
    for camera in CAMERAS:
        assert receivers_of(counts, camera) == [owners[camera]], (camera, counts)
    for replica in replicas:  # the replicas agree on owners, and export them
        wait_until(
            lambda r=replica: all(
                scrape(r.url, "framewire_camera_owned", transport="http", camera=c)
                == (1.0 if owners[c] == r.name else 0.0)
                for c in CAMERAS
            ),
            what=f"{replica.name}'s owned gauges",
        )

    # SIGKILL the replica owning most cameras, mid-stream.
    victim = max(ADDRESSES[:3], key=lambda a: sum(o == a for o in owners.values()))
    moved = [c for c in CAMERAS if owners[c] == victim]
    assert moved, owners
    dead = next(r for r in replicas if r.name == victim)
    survivors = [r for r in replicas if r is not dead]
    before = {r.name: received(r) for r in survivors}
    os.killpg(dead.proc.pid, signal.SIGKILL)  # its gunicorn master and worker: a pod lost
    killed = time.monotonic()
    dead.proc.wait()
    taken_over: dict[str, float] = {}

    def all_taken_over() -> bool:
        now = {r.name: received(r) for r in survivors}
        for camera in moved:
            if camera not in taken_over and any(
                now[r.name].get(camera, 0) > before[r.name].get(camera, 0) for r in survivors
            ):
                taken_over[camera] = time.monotonic() - killed
        return len(taken_over) == len(moved)

    wait_until(all_taken_over, timeout=TAKEOVER_S + 10, what="the victim's cameras taken over")
    print(f"taken over after the kill, seconds: {taken_over}")
    assert max(taken_over.values()) <= TAKEOVER_S, taken_over
    owners = expected(tuple(a for a in ADDRESSES[:3] if a != victim))
    counts, _ = window(sender, survivors, 3 * FPS * len(CAMERAS) // 2)
    for camera in CAMERAS:
        assert receivers_of(counts, camera) == [owners[camera]], (camera, counts)
    for replica in survivors:
        wait_until(
            lambda r=replica: scrape(r.url, "framewire_replica_members", transport="http") == 2,
            what=f"{replica.name} to see 2 members",
        )
    for camera in CAMERAS:
        changes = scrape(sender.url, "framewire_owner_changes_total", camera=camera)
        assert changes == (1 if camera in moved else 0), camera
    log = sender.log()
    assert log.count("cameras hashed over 2 live replica(s)") == 1, log

    # A 4th replica enters the name (the dead one stays in it, not answering).
    fourth = start(ADDRESSES[3]).wait_ready("/healthz")
    name.resolve_to(ADDRESSES)
    live = tuple(a for a in ADDRESSES if a != victim)
    owners = expected(live)
    joined = [c for c in CAMERAS if owners[c] == ADDRESSES[3]]
    everyone = [*survivors, fourth]
    wait_until(
        lambda: all(received(fourth).get(c, 0) > 0 for c in joined),
        timeout=10,
        what=f"the 4th replica to receive {joined}",
    )
    # Settled: each camera at its owner alone; none unowned; one decode per frame sent.
    counts, frames_sent = window(sender, everyone, 3 * FPS * len(CAMERAS))
    for camera in CAMERAS:
        assert receivers_of(counts, camera) == [owners[camera]], (camera, counts)
    decoded = sum(sum(cameras.values()) for cameras in counts.values())
    ratio = decoded / frames_sent
    print(f"decoded per frame sent after the join: {ratio:.3f} ({decoded:.0f}/{frames_sent:.0f})")
    assert 0.95 <= ratio <= 1.05, (decoded, frames_sent)
    for replica in everyone:
        wait_until(
            lambda r=replica: scrape(r.url, "framewire_replica_members", transport="http") == 3,
            what=f"{replica.name} to see 3 members",
        )
    assert sender.proc.poll() is None
    assert sender.log().count("cameras hashed over 3 live replica(s)") == 2, sender.log()
