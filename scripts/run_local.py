"""`make run`: redis plus the framewire services on this machine, until Ctrl-C.

Uses the redis given by FRAMEWIRE_REDIS_URL, or starts a redis-server from
PATH on a free port. Ports: FRAMEWIRE_HTTP_PORT (8001), FRAMEWIRE_REDIS_PORT
(8002), FRAMEWIRE_METRICS_PORT (9100). FRAMEWIRE_CAMERAS=N (1) starts N
synthetic cameras, cam0 .. cam<N-1>, each a sender with its metrics on
FRAMEWIRE_METRICS_PORT + its number. Each receiver's page compares with the
other receiver (--peer-url).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


def camera_count() -> int:
    value = os.environ.get("FRAMEWIRE_CAMERAS", "1")
    if not value.isdigit() or not 1 <= int(value) <= 16:
        raise SystemExit(f"FRAMEWIRE_CAMERAS={value!r}: must be a number from 1 to 16")
    return int(value)


def start_redis(procs: list[subprocess.Popen[bytes]]) -> str:
    """FRAMEWIRE_REDIS_URL, or a redis-server of our own on a free port."""
    redis_url = os.environ.get("FRAMEWIRE_REDIS_URL", "")
    if redis_url:
        return redis_url
    server = shutil.which("redis-server")
    if not server:
        raise SystemExit("no redis-server on PATH: install it or set FRAMEWIRE_REDIS_URL")
    port = free_port()
    procs.append(
        subprocess.Popen(
            [server, "--port", str(port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches this script only; it stops the rest
        )
    )  # fmt: skip
    wait_for_port(port)
    return f"redis://127.0.0.1:{port}/0"


def commands(http_port: int, redis_port: int, metrics_port: int, cameras: int) -> list[list[str]]:
    """The receivers (each comparing with the other), then one sender per camera."""
    framewire = str(BIN / "framewire")
    http_url, redis_url = f"http://127.0.0.1:{http_port}", f"http://127.0.0.1:{redis_port}"
    receivers = [
        [framewire, "http-receiver", "--bind", f"127.0.0.1:{http_port}", "--peer-url", redis_url],
        [framewire, "redis-receiver", "--bind", f"127.0.0.1:{redis_port}", "--peer-url", http_url],
    ]
    senders = [
        [framewire, "send", "--camera", f"cam{n}", "--http-url", f"{http_url}/frames",
         "--metrics-bind", f"127.0.0.1:{metrics_port + n}"]
        for n in range(cameras)
    ]  # fmt: skip
    return receivers + senders


def urls(http_port: int, redis_port: int, metrics_port: int, cameras: int) -> str:
    """Every URL worth opening, one a line."""
    lines = []
    for name, port in (("HTTP receiver", http_port), ("Redis receiver", redis_port)):
        base = f"http://127.0.0.1:{port}"
        lines += [
            f"  {name:<15} page     {base}/   (compares with the other receiver)",
            f"  {'':<15} stats    {base}/stats    metrics {base}/metrics",
        ]
        lines += [
            f"  {'':<15} cam{n:<5} {base}/stream/cam{n}.mjpg    {base}/snapshot/cam{n}.jpg"
            for n in range(cameras)
        ]
    lines += [
        f"  {f'sender cam{n}':<15} metrics  http://127.0.0.1:{metrics_port + n}/metrics"
        for n in range(cameras)
    ]
    return "\n".join(lines)


def main() -> None:
    http_port = int(os.environ.get("FRAMEWIRE_HTTP_PORT", "8001"))
    redis_port = int(os.environ.get("FRAMEWIRE_REDIS_PORT", "8002"))
    metrics_port = int(os.environ.get("FRAMEWIRE_METRICS_PORT", "9100"))
    cameras = camera_count()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        env = {**os.environ, "FRAMEWIRE_REDIS_URL": start_redis(procs)}
        for command in commands(http_port, redis_port, metrics_port, cameras):
            procs.append(subprocess.Popen(command, env=env, start_new_session=True))
        for port in (http_port, redis_port, *range(metrics_port, metrics_port + cameras)):
            wait_for_port(port)
        print(
            "\nframewire is running:\n"
            + urls(http_port, redis_port, metrics_port, cameras)
            + "\nCtrl-C stops everything.\n",
            flush=True,
        )
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        print("a service exited; stopping the rest", file=sys.stderr)
    except KeyboardInterrupt:
        pass
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    main()
