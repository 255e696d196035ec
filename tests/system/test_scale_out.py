"""Receivers scaled out: three HTTP and three Redis receivers as processes, fed by ONE sender.

The HTTP receivers listen on 127.0.0.1, .2 and .3 (Linux routes all of 127/8 to lo) on
the same port, and one host name resolves to all of them, as a Kubernetes headless
Service does: the sender runs with nss_wrapper (Debian libnss-wrapper, LD_PRELOAD with
NSS_WRAPPER_HOSTS), so its getaddrinfo reads a hosts file of the test's own and
/etc/hosts is never touched. With `--http-fanout dns` the sender delivers each camera's
frames to its owner among the addresses (rendezvous hashing). The Redis receivers all read
the same Redis: each reads every camera.

A viewer on a Redis replica, or on a camera's owner, sees the camera; killing the owner of
a camera moves its cameras to the survivors at once and leaves the others' frame rate
alone, and the replica takes its cameras back when it returns; a 4th replica that enters
the name joins without restarting the sender, and one that leaves it is forgotten (its
series removed). tests/system/test_owners_http.py tests the owners themselves.
"""

from __future__ import annotations

import signal
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

from conftest import RedisServer, Service, Services, free_port, scrape, wait_until
from framewire.owners import owner_key
from framewire_bench.readers import mjpeg_parts, parse_metrics, select
from framewire_bench.stack import LoopbackName, framewire_command, shared_port, write_cameras
from helpers import decode, live, received_fps

ADDRESSES = ("127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4")
CAMERAS = ("cam0", "cam1")
FPS = 20
WINDOW_S = 2.0


def sender_samples(sender: Service, name: str, **labels: str) -> list[tuple[dict[str, str], float]]:
    return select(
        parse_metrics(requests.get(f"{sender.url}/metrics", timeout=5).text), name, **labels
    )


def replica(sender: Service, name: str, address: str, camera: str) -> float:
    return scrape(sender.url, f"framewire_replica_{name}", camera=camera, replica=address)


def owner_of(camera: str, addresses: tuple[str, ...], port: int) -> str:
    """The HTTP replica address that owns `camera` among `addresses` (the sender's hash)."""
    return str(owner_key(camera, [f"{a}:{port}" for a in addresses])).rsplit(":", 1)[0]


def test_one_sender_feeds_every_replica_of_both_receivers(
    tmp_path: Path, services: Services, redis_server: RedisServer
) -> None:
    port = shared_port(ADDRESSES)
    name = LoopbackName(tmp_path / "hosts")
    name.resolve_to(ADDRESSES[:3])
    cameras = write_cameras(
        tmp_path / "cameras.yaml",
        [{"id": camera, "width": 320, "height": 240, "fps": FPS} for camera in CAMERAS],
    )

    def start_http(address: str, name: str) -> Service:
        args = ["http-receiver", "--bind", f"{address}:{port}", "--stale-after", "1"]
        return services.start(name, [*framewire_command(), *args], url=f"http://{address}:{port}")

    def start_redis(number: int) -> Service:
        bind = f"127.0.0.1:{free_port()}"
        args = ["redis-receiver", "--bind", bind, "--redis-url", redis_server.url]
        return services.start(
            f"redis-{number}", [*framewire_command(), *args], url=f"http://{bind}"
        )

    # Six receivers start at once (each takes about a second), then all must answer.
    https = [start_http(a, f"http-{a}") for a in ADDRESSES[:3]]
    reds = [start_redis(n) for n in range(3)]
    for service in https + reds:
        service.wait_ready("/healthz")
    http_at = dict(zip(ADDRESSES, https, strict=False))
    sender = services.sender(
        "--cameras-file",
        str(cameras),
        "--http-url",
        f"http://{name.name}:{port}/frames",
        "--http-fanout",
        "dns",
        "--http-resolve-every",
        "1",
        "--redis-url",
        redis_server.url,
        env=name.env,
    )
    # Every Redis replica reads every camera; each camera's frames go to one HTTP replica,
    # its owner, and to no other.
    owners = {camera: owner_of(camera, ADDRESSES[:3], port) for camera in CAMERAS}
    for receiver in reds:
        wait_until(
            lambda r=receiver: live(r, CAMERAS), what=f"both cameras live at {receiver.name}"
        )
    for camera, owner in owners.items():
        wait_until(
            lambda c=camera, o=owner: live(http_at[o], [c]), what=f"{camera} live at {owner}"
        )
    for address, receiver in http_at.items():
        stats = requests.get(f"{receiver.url}/stats", timeout=5).json()["cameras"]
        assert set(stats) == {c for c, o in owners.items() if o == address}, (address, stats)
    watched = [(r, c) for r in reds for c in CAMERAS] + [(http_at[o], c) for c, o in owners.items()]
    for receiver, camera in watched:
        url = f"{receiver.url}/stream/{camera}.mjpg"
        with requests.get(url, stream=True, timeout=10) as response:
            assert decode(mjpeg_parts(response, 1)[0]).shape == (240, 320, 3)
    for camera in CAMERAS:
        assert scrape(sender.url, "framewire_http_replicas", camera=camera) == 3
        for address in ADDRESSES[:3]:
            assert replica(sender, "owner", address, camera) == (address == owners[camera])

    # The owner of cam0 dies: its cameras move to the survivors at once; the Redis path and
    # the cameras of the other HTTP replicas keep their rate.
    address = owners[CAMERAS[0]]
    dead = http_at[address]
    moved = [c for c in CAMERAS if owners[c] == address]
    kept = [(c, http_at[owners[c]]) for c in CAMERAS if c not in moved]
    before_ns = time.time_ns()
    before = {(r.name, c): received_fps(r, c, before_ns, WINDOW_S) for c in CAMERAS for r in reds}
    before.update({(r.name, c): received_fps(r, c, before_ns, WINDOW_S) for c, r in kept})
    dead.proc.send_signal(signal.SIGKILL)
    dead.proc.wait()
    killed_ns = time.time_ns()
    survivors = tuple(a for a in ADDRESSES[:3] if a != address)
    for camera in CAMERAS:
        wait_until(
            lambda c=camera: replica(sender, "up", address, c) == 0,
            timeout=10,
            what=f"{camera}: replica {address} out of the live set",
        )
    for camera in moved:
        new_owner = http_at[owner_of(camera, survivors, port)]
        wait_until(
            lambda c=camera, o=new_owner: live(o, [c]),
            timeout=5,
            what=f"{camera} taken over by {new_owner.name}",
        )
        assert scrape(sender.url, "framewire_owner_changes_total", camera=camera) == 1
    for (receiver_name, camera), fps in before.items():
        receiver = next(r for r in [*reds, *https] if r.name == receiver_name)
        after = received_fps(receiver, camera, killed_ns, WINDOW_S)
        print(f"{receiver_name}, {camera}: {fps:.1f} fps before, {after:.1f} fps after the kill")
        assert after >= min(fps, FPS) - 1.5, f"{receiver_name} {camera}: {fps:.1f} -> {after:.1f}"

    # It returns on the same address: probed back into the live set, its cameras return.
    back = start_http(address, f"http-{address}-back").wait_ready("/healthz")
    http_at[address] = back
    for camera in CAMERAS:
        wait_until(
            lambda c=camera: replica(sender, "up", address, c) == 1,
            timeout=10,
            what=f"{camera}: replica {address} up again",
        )
    wait_until(lambda: live(back, moved), what=f"{moved} live at the returned replica")

    # A 4th replica enters the name: it joins after the next re-resolve, the sender
    # unrestarted, and takes the cameras it now wins.
    fourth = start_http(ADDRESSES[3], f"http-{ADDRESSES[3]}").wait_ready("/healthz")
    name.resolve_to(ADDRESSES)
    wait_until(
        lambda: all(scrape(sender.url, "framewire_http_replicas", camera=c) == 4 for c in CAMERAS),
        timeout=10,
        what="the 4th replica live",
    )
    won = [c for c in CAMERAS if owner_of(c, ADDRESSES, port) == ADDRESSES[3]]
    wait_until(lambda: live(fourth, won), timeout=10, what=f"{won} live at the 4th replica")
    for camera in won:
        assert replica(sender, "frames_sent_total", ADDRESSES[3], camera) > 0

    # It leaves the name: the sender stops sending to it and drops its series.
    name.resolve_to(ADDRESSES[:3])
    wait_until(
        lambda: all(scrape(sender.url, "framewire_http_replicas", camera=c) == 3 for c in CAMERAS),
        timeout=10,
        what="the sender to forget the 4th replica",
    )
    assert sender_samples(sender, "framewire_replica_up", replica=ADDRESSES[3]) == []
    assert sender.proc.poll() is None

    # Aggregates keep their labels: HTTP sent is the sum over replicas, past and present.
    # (Each send counts the aggregate first: read after the replicas' series, it is no less.)
    for camera in CAMERAS:
        per_replica = sum(
            v
            for _, v in sender_samples(sender, "framewire_replica_frames_sent_total", camera=camera)
        )
        sent = scrape(sender.url, "framewire_frames_sent_total", camera=camera, transport="http")
        assert sent >= per_replica > 0
    log = sender.log()
    downs = [f"camera {c}: http transport down: http://{address}:{port}/frames" for c in moved]
    assert all(log.count(down) <= 1 for down in downs), log  # once per change, never per frame
    assert sum(log.count(down) for down in downs) >= 1, log
    assert log.count(f"HTTP fan-out: {name.name} resolves to") == 3, log
    assert log.count("HTTP fan-out: cameras hashed over") == 5, log  # 3, 2, 3, 4, 3 live


# --- the fan-out over https: each replica verified as the Service name ----------------


def openssl(*args: str | Path) -> None:
    """Run the openssl CLI (Debian's), failing the test with its output."""
    result = subprocess.run(
        ["openssl", *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr


def issue(ca: Path, folder: Path, stem: str, dns_name: str) -> tuple[Path, Path]:
    """A certificate for `dns_name` (its only SAN) signed by the CA at `ca`.pem/.key."""
    key, csr, cert, ext = (folder / f"{stem}.{s}" for s in ("key", "csr", "pem", "ext"))
    ext.write_text(f"subjectAltName=DNS:{dns_name}\n")
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", key, "-out", csr, "-subj", f"/CN={dns_name}")  # fmt: skip
    openssl("x509", "-req", "-in", csr, "-CA", ca.with_suffix(".pem"), "-CAkey",
            ca.with_suffix(".key"), "-CAcreateserial", "-days", "1", "-extfile", ext,
            "-out", cert)  # fmt: skip
    return cert, key


class TLSReplica:
    """A real TLS listener standing in for one HTTP receiver replica: POST /frames -> 204,
    GET /healthz -> 200, recording each request's SNI name and Host header."""

    def __init__(self, address: str, port: int, cert: Path, key: Path) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.sni: set[str | None] = set()
        self.hosts: set[str] = set()
        self.frames = 0
        self.probes = 0
        context.sni_callback = lambda _sock, name, _ctx: self.sni.add(name)
        replica = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # the sender's probe: GET /healthz
                replica.hosts.add(self.headers["Host"])
                replica.probes += 1
                self.send_response(200 if self.path == "/healthz" else 404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                replica.hosts.add(self.headers["Host"])
                replica.frames += 1
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((address, port), Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def test_https_fanout_verifies_every_replica_as_the_service_name(
    tmp_path: Path, services: Services
) -> None:
    """Each replica is dialled at its address, with the Service name as SNI and in the
    certificate check, for its probe as for its frames; a replica whose certificate is for
    another name never joins the live set (no frame goes there; logged once, naming the
    reason), while the cameras are shared by the others."""
    port = shared_port(ADDRESSES[:3])
    name = LoopbackName(tmp_path / "hosts")
    name.resolve_to(ADDRESSES[:3])
    ca = tmp_path / "ca"
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", ca.with_suffix(".key"), "-out", ca.with_suffix(".pem"),
            "-days", "1", "-subj", "/CN=framewire test CA")  # fmt: skip
    good = issue(ca, tmp_path, "service", name.name)  # what the chart says to issue
    wrong = issue(ca, tmp_path, "other", "other.framewire.test")
    replicas = [TLSReplica(a, port, *good) for a in ADDRESSES[:2]]
    replicas.append(TLSReplica(ADDRESSES[2], port, *wrong))
    cameras = write_cameras(
        tmp_path / "cameras.yaml",
        [{"id": f"cam{i}", "width": 64, "height": 48, "fps": 20} for i in range(4)],
    )
    try:
        sender = services.sender(
            "--cameras-file", str(cameras), "--redis-url", "",
            "--http-url", f"https://{name.name}:{port}/frames", "--http-fanout", "dns",
            "--http-ca-cert", str(ca.with_suffix(".pem")), env=name.env,
        )  # fmt: skip
        wait_until(lambda: sum(r.frames for r in replicas[:2]) >= 80, what="good replicas fed")
        for address, listener in zip(ADDRESSES, replicas[:2], strict=False):
            assert listener.sni == {name.name} and listener.probes >= 1
            assert listener.hosts == {f"{name.name}:{port}"}
            assert replica(sender, "up", address, "cam0") == 1
        assert replicas[2].frames == 0 and replicas[2].probes == 0  # refused in the handshake
        assert replica(sender, "up", ADDRESSES[2], "cam0") == 0
        for camera in (f"cam{i}" for i in range(4)):
            assert replica(sender, "owner", ADDRESSES[2], camera) == 0
        sender.stop()
        lines = [line for line in sender.log().splitlines() if "TLS with the receiver" in line]
        assert len(lines) == 1, lines  # one line per change of the live set, not per probe
        assert f"not answering: {ADDRESSES[2]} (tls:" in lines[0], lines[0]
        assert f"https://{ADDRESSES[2]}:{port}/frames (as {name.name})" in lines[0]
        assert "'other.framewire.test'" in lines[0], lines[0]  # what the certificate is for
    finally:
        for listener in replicas:
            listener.close()
