"""`make run`: redis plus the framewire services on this machine, supervised.

Uses the redis given by FRAMEWIRE_REDIS_URL, or starts a redis-server from
PATH on a free port. Ports: HTTP_RECEIVER_PORT (8001), REDIS_RECEIVER_PORT
(8002), SENDER_METRICS_PORT (9100). One sender runs the synthetic camera
cam0, or every camera of FRAMEWIRE_CAMERAS_FILE (like every FRAMEWIRE_*
variable, passed to the services). Each receiver's page compares with the
other receiver (--peer-port: at the host name the browser used, on the
other receiver's port).

Like a service manager: a port already in use stops it before anything
starts; Ctrl-C, SIGTERM or SIGHUP stop every process it started (exit 0); a
service that exits on its own stops the rest and makes it exit 1. Each
service's output goes to a log file in a fresh directory, named at start.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from framewire.runtime import on_stop_signals
from framewire_bench.stack import (
    RedisServer,
    Service,
    StackError,
    framewire_command,
    port_is_free,
)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
PORTS = {"HTTP_RECEIVER_PORT": 8001, "REDIS_RECEIVER_PORT": 8002, "SENDER_METRICS_PORT": 9100}


class Stopped(Exception):
    """A stop signal arrived."""


def setting(name: str, default: int, low: int, high: int) -> int:
    """An integer environment variable in [low, high]; one-line exit otherwise."""
    value = os.environ.get(name, str(default))
    if not value.isdigit() or not low <= int(value) <= high:
        raise SystemExit(f"{name}={value!r}: must be a number from {low} to {high}")
    return int(value)


def check_ports(http_port: int, redis_port: int, metrics_port: int) -> None:
    """Exit with one line if a port we would listen on is taken."""
    wanted = {
        http_port: "HTTP_RECEIVER_PORT",
        redis_port: "REDIS_RECEIVER_PORT",
        metrics_port: "SENDER_METRICS_PORT",
    }
    if len(wanted) < 3:
        raise SystemExit("HTTP_RECEIVER_PORT, REDIS_RECEIVER_PORT and SENDER_METRICS_PORT overlap")
    for port, name in wanted.items():
        if not port_is_free(port):
            raise SystemExit(
                f"port {port} ({name}) is already in use: stop what uses it or set {name}"
            )


def services(
    http_port: int, redis_port: int, metrics_port: int
) -> list[tuple[str, list[str], str, str]]:
    """(name, command, URL, readiness path): the receivers, then the sender."""
    framewire = framewire_command()
    http_url, redis_url = f"http://127.0.0.1:{http_port}", f"http://127.0.0.1:{redis_port}"
    receivers = [
        ("http-receiver", [*framewire, "http-receiver", "--bind", f"127.0.0.1:{http_port}",
                           "--peer-port", str(redis_port)], http_url, "/healthz"),
        ("redis-receiver", [*framewire, "redis-receiver", "--bind", f"127.0.0.1:{redis_port}",
                            "--peer-port", str(http_port)], redis_url, "/healthz"),
    ]  # fmt: skip
    sender = ("sender", [*framewire, "send", "--http-url", f"{http_url}/frames",
                         "--metrics-bind", f"127.0.0.1:{metrics_port}"],
              f"http://127.0.0.1:{metrics_port}", "/metrics")  # fmt: skip
    return [*receivers, sender]


def urls(http_port: int, redis_port: int, metrics_port: int) -> str:
    """Every URL worth opening, one a line."""
    lines = []
    for name, port in (("HTTP receiver", http_port), ("Redis receiver", redis_port)):
        base = f"http://127.0.0.1:{port}"
        lines += [
            f"  {name:<15} page     {base}/   (compares with the other receiver)",
            f"  {'':<15} stats    {base}/stats    metrics {base}/metrics",
        ]
        lines.append(f"  {'':<15} camera X {base}/stream/X.mjpg    {base}/snapshot/X.jpg")
    lines.append(f"  {'sender':<15} metrics  http://127.0.0.1:{metrics_port}/metrics")
    return "\n".join(lines)


class Supervisor:
    """The services we started; a stop signal unwinds the main loop, never a start half-done."""

    def __init__(self) -> None:
        self.started: list[Service] = []
        self.stopping = False
        self.starting = False

    def on_signal(self) -> None:
        if not self.stopping:
            self.stopping = True
            if not self.starting:  # else `launch` raises once the process is on our list
                raise Stopped

    def launch(self, start: Callable[[], Service]) -> Service:
        """Run `start` with stop signals deferred, so every process started gets stopped."""
        self.starting = True
        try:
            self.started.append(start())
        finally:
            self.starting = False
        if self.stopping:
            raise Stopped
        return self.started[-1]

    def check(self) -> None:
        """StackError if any service has exited."""
        for service in self.started:
            service.check()

    def stop_all(self) -> None:
        """SIGTERM each service, newest first (SIGKILL after 10 s)."""
        self.stopping = True  # a second signal must not interrupt the clean-up
        for service in reversed(self.started):
            try:
                service.stop()
            except StackError as exc:
                print(f"make run: {exc}", file=sys.stderr)


def main() -> int:
    ports = [setting(name, default, 1, 65535) for name, default in PORTS.items()]
    check_ports(*ports)
    supervisor = Supervisor()
    on_stop_signals(supervisor.on_signal, STOP_SIGNALS)
    log_dir = Path(tempfile.mkdtemp(prefix="framewire-run-"))
    try:
        redis_url = os.environ.get("FRAMEWIRE_REDIS_URL", "")
        if not redis_url:
            redis = RedisServer(log_path=log_dir / "redis-server.log")
            supervisor.launch(redis.start)
            redis_url = redis.url
        env = {**os.environ, "FRAMEWIRE_REDIS_URL": redis_url}
        plan = services(*ports)
        launched = [
            supervisor.launch(
                lambda name=name, command=command, url=url: Service.start(
                    name, command, log_dir / f"{name}.log", url, env
                )
            )
            for name, command, url, _ in plan
        ]
        for service, (*_, ready) in zip(launched, plan, strict=True):
            service.wait_ready(ready)
        print(
            "\nframewire is running:\n" + urls(*ports) + f"\n  logs in {log_dir}\n"
            "Ctrl-C (or SIGTERM, SIGHUP) stops everything.\n",
            flush=True,
        )
        while True:
            supervisor.check()
            time.sleep(0.2)
    except Stopped:
        print("make run: stopping every service", file=sys.stderr, flush=True)
        return 0
    except StackError as exc:
        print(f"make run: {exc}; stopping the rest (logs in {log_dir})", file=sys.stderr)
        return 1
    finally:
        supervisor.stop_all()


if __name__ == "__main__":
    sys.exit(main())
