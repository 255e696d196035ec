"""Fixtures that start real components on free loopback ports and stop them by PID."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
import requests

TESTS = Path(__file__).parent
FRAMEWIRE = str(Path(sys.executable).parent / "framewire")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(
    check: Callable[[], object],
    timeout: float = 15.0,
    interval: float = 0.05,
    what: str = "condition",
) -> object:
    """Poll `check` until it returns something truthy; fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except (requests.RequestException, redis.RedisError, OSError) as exc:
            last_error = exc
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout} s waiting for {what} (last error: {last_error})"
    )


@dataclass
class Service:
    """A process started by a test, with its output in a log file."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    url: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def rss_kib(self) -> int:
        """Resident memory of the process doing the work: a gunicorn master's worker, or itself."""
        pid = self.proc.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        status = Path(f"/proc/{children[0] if children else pid}/status").read_text()
        return int(next(ln.split()[1] for ln in status.splitlines() if ln.startswith("VmRSS")))

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> float:
        """Signal the process and wait for it; returns the seconds it took to exit."""
        started = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"{self.name} ignored signal {sig} for {timeout} s") from None
        return time.monotonic() - started


class Services:
    """Starts framewire processes and stops whatever is left at teardown."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list[Service] = []

    def start(
        self, name: str, args: list[str], env: dict[str, str] | None = None, url: str = ""
    ) -> Service:
        log_path = self.tmp_path / f"{name}.log"
        full_env = {**os.environ, "PYTHONPATH": str(TESTS), **(env or {})}
        with log_path.open("wb") as log:
            proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=full_env)
        service = Service(name, proc, log_path, url)
        self.started.append(service)
        return service

    def receiver(
        self, kind: str, *args: str, env: dict[str, str] | None = None, port: int = 0
    ) -> Service:
        """`framewire http-receiver` or `redis-receiver` (on a free port), once /healthz answers."""
        port = port or free_port()
        command = [FRAMEWIRE, f"{kind}-receiver", "--bind", f"127.0.0.1:{port}", *args]
        return self._launch(f"{kind}-receiver-{port}", command, port, "/healthz", env)

    def sender(self, *args: str, env: dict[str, str] | None = None) -> Service:
        """`framewire send` with its metrics on a free port, once /metrics answers."""
        port = free_port()
        command = [FRAMEWIRE, "send", "--metrics-bind", f"127.0.0.1:{port}", *args]
        return self._launch(f"sender-{port}", command, port, "/metrics", env)

    def _launch(
        self, name: str, command: list[str], port: int, ready: str, env: dict[str, str] | None
    ) -> Service:
        """Start a framewire service serving on `port`; return once `ready` answers 2xx."""
        url = f"http://127.0.0.1:{port}"
        service = self.start(name, command, env=env, url=url)

        def answers() -> bool:
            if service.proc.poll() is not None:
                raise AssertionError(f"{service.name} exited:\n{service.log()}")
            return requests.get(f"{url}{ready}", timeout=1).ok

        wait_until(answers, what=f"{name} {ready}")
        return service

    def stack(
        self,
        redis: RedisServer,
        *receiver_args: str,
        sender_args: tuple[str, ...] = ("--width", "320", "--height", "240"),
    ) -> tuple[Service, Service, Service]:
        """Both receivers and a sender feeding them: (http, redis, sender)."""
        http = self.receiver("http", *receiver_args)
        red = self.receiver("redis", "--redis-url", redis.url, *receiver_args)
        sender = self.sender(
            "--http-url", f"{http.url}/frames", "--redis-url", redis.url, *sender_args
        )
        return http, red, sender

    def stop_all(self) -> None:
        for service in reversed(self.started):
            if service.proc.poll() is None:
                service.proc.kill()
                service.proc.wait()


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    s = Services(tmp_path)
    yield s
    s.stop_all()


class RedisServer:
    """A real redis-server of our own on a free loopback port; can be stopped and restarted."""

    def __init__(self, password: str = "") -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed: run `make test`, which installs it")
        self.port = free_port()
        self.password = password
        self.command = [
            binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        if password:
            self.command += ["--requirepass", password]
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, protocol=2, password=self.password or None)

    def start(self) -> None:
        self.proc = subprocess.Popen(self.command, stdout=subprocess.DEVNULL)
        wait_until(lambda: self.client().ping(), what="redis-server")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.stop()


def metric_value(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format; 0 when absent."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def scrape(url: str, name: str, **labels: str) -> float:
    return metric_value(requests.get(f"{url}/metrics", timeout=5).text, name, **labels)
