"""`make run`: redis plus the three framewire services on this machine, until Ctrl-C.

Uses the redis given by FRAMEWIRE_REDIS_URL, or starts a redis-server from
PATH on a free port. Ports: FRAMEWIRE_HTTP_PORT (8001), FRAMEWIRE_REDIS_PORT
(8002), FRAMEWIRE_METRICS_PORT (9100).
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


def main() -> None:
    http_port = int(os.environ.get("FRAMEWIRE_HTTP_PORT", "8001"))
    redis_port = int(os.environ.get("FRAMEWIRE_REDIS_PORT", "8002"))
    metrics_port = int(os.environ.get("FRAMEWIRE_METRICS_PORT", "9100"))
    procs: list[subprocess.Popen[bytes]] = []
    redis_url = os.environ.get("FRAMEWIRE_REDIS_URL", "")
    if not redis_url:
        server = shutil.which("redis-server")
        if not server:
            raise SystemExit("no redis-server on PATH: install it or set FRAMEWIRE_REDIS_URL")
        port = free_port()
        procs.append(
            subprocess.Popen(
                [
                    server,
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ],
                stdout=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C reaches this script only; it stops the rest
            )
        )
        wait_for_port(port)
        redis_url = f"redis://127.0.0.1:{port}/0"
    framewire = str(BIN / "framewire")
    env = {**os.environ, "FRAMEWIRE_REDIS_URL": redis_url}
    commands = [
        [framewire, "http-receiver", "--bind", f"127.0.0.1:{http_port}"],
        [framewire, "redis-receiver", "--bind", f"127.0.0.1:{redis_port}"],
        [framewire, "send", "--http-url", f"http://127.0.0.1:{http_port}/frames",
         "--metrics-bind", f"127.0.0.1:{metrics_port}"],
    ]  # fmt: skip
    try:
        for command in commands:
            procs.append(subprocess.Popen(command, env=env, start_new_session=True))
        for port in (http_port, redis_port, metrics_port):
            wait_for_port(port)
        print(
            "\nframewire is running:\n"
            f"  HTTP receiver viewer   http://127.0.0.1:{http_port}/"
            f"    metrics http://127.0.0.1:{http_port}/metrics\n"
            f"  Redis receiver viewer  http://127.0.0.1:{redis_port}/"
            f"    metrics http://127.0.0.1:{redis_port}/metrics\n"
            f"  sender                 metrics http://127.0.0.1:{metrics_port}/metrics\n"
            "Ctrl-C stops everything.\n",
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
