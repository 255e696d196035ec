"""What a receiver replica costs the sender: HTTP (DNS fan-out) against Redis, 1 and 3 replicas.

    .venv/bin/python scripts/fanout_cost.py [--seconds 10] [--width 1280 --height 720 --fps 30]

One camera, one transport at a time. HTTP: N http-receivers on 127.0.0.1..N (one port),
one name resolving to them through nss_wrapper (Debian libnss-wrapper), `--http-fanout dns`
(the camera goes to its owner replica only).
Redis: N redis-receivers reading one redis-server. Prints, per case, the sender's CPU
(user + system, % of one core), its send and encode time per second (wall clock: with the
receivers on the same cores, send time also grows with their load), the bytes it uploads per
second and the fps each replica received.
Everything runs on loopback; every process is ours and stopped by its PID.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from framewire_bench.measure import cpu_percent, cpu_seconds
from framewire_bench.readers import read_metrics, total
from framewire_bench.stack import (
    LoopbackName,
    RedisServer,
    Service,
    Services,
    framewire_command,
    shared_port,
    wait_until,
)


def measure(
    services: Services, sender: Service, receivers: list[Service], seconds: float, kind: str
) -> str:
    wait_until(
        lambda: (
            sum(total(read_metrics(r.url), "framewire_frames_received_total") for r in receivers)
            > 30 * (1 if kind == "http" else len(receivers))
        ),
        what="frames at the receivers (HTTP: at the camera's owner only)",
    )
    before_cpu = cpu_seconds(sender.proc.pid, children=False)
    before = read_metrics(sender.url)
    received = [total(read_metrics(r.url), "framewire_frames_received_total") for r in receivers]
    started = time.monotonic()
    time.sleep(seconds)  # a measurement window, not a wait for a condition
    elapsed = time.monotonic() - started
    cpu = cpu_percent(before_cpu, cpu_seconds(sender.proc.pid, children=False), elapsed)
    after = read_metrics(sender.url)
    send = total(after, "framewire_send_seconds_sum") - total(before, "framewire_send_seconds_sum")
    encode = total(after, "framewire_encode_seconds_sum") - total(
        before, "framewire_encode_seconds_sum"
    )
    sent = total(after, "framewire_frames_sent_total") - total(
        before, "framewire_frames_sent_total"
    )
    size = total(after, "framewire_frame_bytes_sum") / max(
        total(after, "framewire_frame_bytes_count"), 1
    )
    fps = [
        (total(read_metrics(r.url), "framewire_frames_received_total") - n) / elapsed
        for r, n in zip(receivers, received, strict=True)
    ]
    return (
        f"sender CPU {cpu:5.1f} % of a core, send {send / elapsed * 1000:6.1f} ms/s,"
        f" encode {encode / elapsed * 1000:5.1f} ms/s,"
        f" uploads {sent * size / elapsed / 1e6:4.1f} MB/s;"
        " fps per replica " + " ".join(f"{f:.1f}" for f in fps)
    )


def run(kind: str, replicas: int, args: argparse.Namespace, directory: Path) -> str:
    services = Services(directory)
    redis_server = RedisServer() if kind == "redis" else None
    try:
        camera = ["--width", str(args.width), "--height", str(args.height), "--fps", str(args.fps)]
        if kind == "http":
            addresses = [f"127.0.0.{i}" for i in range(1, replicas + 1)]
            port = shared_port(addresses)
            name = LoopbackName(directory / "hosts")
            name.resolve_to(addresses)
            receivers = [
                services.start(
                    f"http-{a}",
                    [*framewire_command(), "http-receiver", "--bind", f"{a}:{port}"],
                    url=f"http://{a}:{port}",
                )
                for a in addresses
            ]
            for r in receivers:
                r.wait_ready("/healthz")
            sender = services.sender(
                *camera,
                "--http-url",
                f"http://{name.name}:{port}/frames",
                "--http-fanout",
                "dns",
                "--redis-url",
                "",
                env=name.env,
            )
        else:
            assert redis_server is not None
            redis_server.start()
            receivers = [
                services.receiver("redis", "--redis-url", redis_server.url) for _ in range(replicas)
            ]
            sender = services.sender(*camera, "--http-url", "", "--redis-url", redis_server.url)
        return measure(services, sender, receivers, args.seconds, kind)
    finally:
        services.stop_all()
        if redis_server is not None:
            redis_server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--fps", type=float, default=30.0)
    args = parser.parse_args()
    print(f"one camera {args.width}x{args.height} at {args.fps:g} fps, {args.seconds:g} s each")
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("http", "redis"):
            for replicas in (1, 3):
                directory = Path(tmp) / f"{kind}-{replicas}"
                directory.mkdir()
                print(f"{kind:5} x{replicas}: {run(kind, replicas, args, directory)}", flush=True)


if __name__ == "__main__":
    main()
