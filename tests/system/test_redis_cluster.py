"""Redis Cluster as the broker: a real cluster of Debian's redis-server on loopback (3 primaries,
3 replicas, `redis-cli --cluster create`), eight cameras spread over every primary, two
Redis receivers, the Python client, a password, a resharding, a primary killed mid-stream,
TLS, and the bench.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from conftest import FRAMEWIRE, Service, Services, wait_until
from framewire.client import RedisReceiver, RedisSender, Unreachable
from framewire.transports.redis import key
from framewire_bench.cluster import RedisClusterServers, make_certificates
from framewire_bench.readers import parse_metrics, read_latencies, select
from framewire_bench.stack import write_cameras
from helpers import live, make_jpeg

SECRET = "cluster-pw-5e0b7d"
CAMERAS = tuple(f"cam{i}" for i in range(8))  # their slots fall on all three primaries
NODE_TIMEOUT_MS = 2000


@pytest.fixture
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RedisClusterServers]:
    """A started 3 + 3 cluster; `@pytest.mark.parametrize("cluster", [password], indirect=True)`
    protects it with a password."""
    password = getattr(request, "param", "")
    servers = RedisClusterServers(
        node_timeout_ms=NODE_TIMEOUT_MS, password=password, directory=tmp_path / "cluster"
    )
    servers.start()
    yield servers
    servers.stop()


def start(
    services: Services, cluster: RedisClusterServers, tmp_path: Path, receivers: int, fps: int
) -> tuple[Service, list[Service]]:
    """One sender of the eight cameras and `receivers` Redis receivers, all on the cluster."""
    cameras = [{"id": c, "width": 160, "height": 120, "fps": fps} for c in CAMERAS]
    redis = ("--redis-url", cluster.url, "--redis-cluster", cluster.seeds)
    readers = [services.receiver("redis", *redis, "--stale-after", "1") for _ in range(receivers)]
    sender = services.sender(
        "--cameras-file",
        str(write_cameras(tmp_path / "cameras.yaml", cameras)),
        "--http-url",
        "",
        *redis,
    )
    for reader in readers:
        wait_until(lambda r=reader: live(r, CAMERAS), what=f"8 cameras live at {reader.name}")
    return sender, readers


def total(service: Service, name: str, **labels: str) -> float:
    """The sum of every sample of `name` with `labels` at `service`/metrics."""
    text = requests.get(f"{service.url}/metrics", timeout=5).text
    return sum(float(value) for _, value in select(parse_metrics(text), name, **labels))


def gaps(receiver: Service, camera: str, after_ns: int) -> list[float]:
    """Seconds between consecutive frames (by capture time) received from `after_ns` on."""
    captured = read_latencies(receiver.url, "received", camera)["captured_ns"]
    captured = sorted(ns for ns in captured if ns >= after_ns)
    return [(b - a) / 1e9 for a, b in itertools.pairwise(captured)]


@pytest.mark.parametrize("cluster", [SECRET], indirect=True)
def test_eight_cameras_on_every_primary_reach_two_receivers_and_the_client(
    tmp_path: Path, services: Services, cluster: RedisClusterServers
) -> None:
    owners = {cluster.owner(key("stream", camera)) for camera in CAMERAS}
    assert owners == set(cluster.primary_ports()), "the cameras do not span every primary"
    sender, receivers = start(services, cluster, tmp_path, receivers=2, fps=10)

    # The Python client, through the same cluster: it sees the sender's cameras and its own.
    client_sender = RedisSender(cluster.url, cluster=cluster.seeds, camera="door")
    with RedisReceiver(cluster.url, (*CAMERAS, "door"), cluster=cluster.seeds) as frames:
        client_sender.send(make_jpeg())
        seen: set[str] = set()
        deadline = time.monotonic() + 20
        while seen != {*CAMERAS, "door"} and time.monotonic() < deadline:
            if (received := frames.get(timeout=1)) is not None:
                seen.add(received.camera)
        assert seen == {*CAMERAS, "door"}
        assert frames.errors == {} and frames.rejected == {}

    # ...and so do the receivers, which find its new stream by SCAN on every primary.
    def door_everywhere() -> bool:
        client_sender.send(make_jpeg())
        return all(live(r, ["door"]) for r in receivers)

    wait_until(door_everywhere, interval=0.1, what="the client's camera at both receivers")
    client_sender.close()

    # A resharding moves one camera's slot to another primary: redis-py follows ASK and MOVED.
    moved = key("stream", CAMERAS[2])
    slot = cluster.client().keyslot(moved)
    to_port = next(p for p in cluster.primary_ports() if p != cluster.owner(moved))
    cluster.move_slot(slot, to_port)
    assert cluster.owner(moved) == to_port
    moved_ns = time.time_ns()
    for receiver in receivers:
        wait_until(
            lambda r=receiver: (
                read_latencies(r.url, "received", CAMERAS[2])["captured_ns"][-1] > moved_ns
            ),
            what=f"{CAMERAS[2]} at {receiver.name} after its slot moved",
        )

    for service in (sender, *receivers):
        metrics = requests.get(f"{service.url}/metrics", timeout=5).text
        text = service.log() + metrics
        assert SECRET not in text, f"the password leaked from {service.name}"
        assert "CROSSSLOT" not in text and "same slot" not in text
        assert total(service, "framewire_receive_errors_total") == 0
    assert ":***@127.0.0.1" in sender.log()
    assert total(sender, "framewire_send_errors_total") == 0


def test_a_primary_killed_mid_stream(
    tmp_path: Path, services: Services, cluster: RedisClusterServers
) -> None:
    sender, (receiver,) = start(services, cluster, tmp_path, receivers=1, fps=20)
    victim = cluster.owner(key("stream", CAMERAS[0]))
    lost = [c for c in CAMERAS if cluster.owner(key("stream", c)) == victim]
    kept = [c for c in CAMERAS if c not in lost]
    assert kept, "every camera on one primary"

    killed_ns = time.time_ns()
    cluster.kill(victim)
    # Its replica takes over by itself (node timeout, then an election)...
    wait_until(lambda: len(cluster.primary_ports()) == 3, timeout=30, what="a replica promoted")
    promoted_s = (time.time_ns() - killed_ns) / 1e9
    # ...and the lost primary's cameras resume by themselves.
    wait_until(lambda: live(receiver, lost), timeout=30, what=f"{lost} live again")
    resumed_ns = time.time_ns()
    wait_until(
        lambda: all(
            read_latencies(receiver.url, "received", c)["captured_ns"][-1] > resumed_ns
            for c in CAMERAS
        ),
        what="frames captured after the resumption at every camera",
    )
    worst_lost = max(max(gaps(receiver, c, killed_ns - 10**9)) for c in lost)
    worst_kept = max(max(gaps(receiver, c, killed_ns - 10**9)) for c in kept)
    print(
        f"primary {victim} killed: {lost} resumed after a gap of {worst_lost:.2f} s"
        f" (node timeout {NODE_TIMEOUT_MS / 1000:g} s); the other cameras' worst gap"
        f" {worst_kept:.2f} s; the replica was promoted {promoted_s:.2f} s after the kill"
    )
    assert worst_kept < NODE_TIMEOUT_MS / 1000, f"{kept} waited on the lost primary"
    assert worst_lost > worst_kept  # the kill did cut the lost cameras off

    # The frames lost meanwhile are counted, and each state change is logged once.
    for camera in lost:
        labels = {"camera": camera, "transport": "redis"}
        errors = total(sender, "framewire_send_errors_total", **labels)
        skipped = total(sender, "framewire_frames_dropped_total", camera=camera, stage="capture")
        print(f"{camera}: {errors:g} failed sends; {skipped:g} frames skipped unencoded meanwhile")
        assert errors > 0, f"{camera}: the failed sends were not counted"
        assert sender.log().count(f"camera {camera}: redis transport down") == 1
    for camera in kept:
        assert f"camera {camera}: redis transport down" not in sender.log()
    log = receiver.log()
    assert log.count(f"redis cluster node down: 127.0.0.1:{victim}") == 1, log
    assert total(receiver, "framewire_receive_errors_total", reason="connect") > 0
    assert "CROSSSLOT" not in log and "Traceback" not in log


def test_the_bench_measures_a_cluster(tmp_path: Path) -> None:
    """`framewire bench --setups redis-cluster` starts a cluster of its own and reads through it."""
    out = tmp_path / "bench"
    args = ["--cameras", "2", "--camera-size", "160x120", "--duration", "2", "--out", str(out)]
    args += ["--setups", "redis-cluster", "--phases", "spread"]
    done = subprocess.run([FRAMEWIRE, "bench", *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    (setup,) = json.loads((out / "results.json").read_text())["capacity"]
    assert setup["setup"] == "redis-cluster"
    for trial in setup["trials"]:
        assert "error" not in trial, trial
        nodes = [n for n in trial["cpu_percent"] if n.startswith("redis-") and n[6:].isdigit()]
        assert len(nodes) == 6 and "redis-receiver" in trial["cpu_percent"]
        (path,) = trial["paths"]
        assert set(path["cameras"]) == {"cam0", "cam1"}
        assert all(c["fps"] > 0 for c in path["cameras"].values())
    assert "Redis Cluster" in (out / "results.md").read_text()


def test_a_tls_cluster_is_verified_with_its_ca(tmp_path: Path, services: Services) -> None:
    """Every node TLS only (clients, replication, cluster bus), behind a password."""
    certs = make_certificates(tmp_path / "tls")
    cluster = RedisClusterServers(password=SECRET, tls=certs, directory=tmp_path / "cluster")
    cluster.start()
    try:
        ca = str(certs / "ca.crt")
        redis = ("--redis-url", cluster.url, "--redis-cluster", cluster.seeds)
        receiver = services.receiver("redis", *redis, "--redis-ca-cert", ca, "--stale-after", "1")
        sender = RedisSender(cluster.url, cluster=cluster.seeds, ca_cert=ca, camera="door")

        def door_live() -> bool:
            sender.send(make_jpeg())
            return live(receiver, ["door"])

        wait_until(door_live, interval=0.1, what="the door camera over TLS")
        sender.close()
        assert cluster.url.startswith("rediss://")
        metrics = requests.get(f"{receiver.url}/metrics", timeout=5).text
        assert SECRET not in receiver.log() + metrics
        with pytest.raises(Unreachable) as refused:  # without the CA: the server is not trusted
            RedisReceiver(cluster.url, ["door"], cluster=cluster.seeds)
        assert SECRET not in str(refused.value)
    finally:
        cluster.stop()
