"""Real processes on loopback ports.

The one copy of the helpers that the bench, `make run` and the tests share:
free ports, polling, a redis-server of our own, framewire services started as
subprocesses and stopped by PID. What they serve is read with readers.py.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import redis
import requests
import yaml

START_TIMEOUT = 20.0


class StackError(RuntimeError):
    """A process could not start, exited early, or did not get ready in time."""


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_ports(count: int) -> list[int]:
    """`count` distinct free loopback ports (the kernel may hand out a port just released)."""
    ports: list[int] = []
    while len(ports) < count:
        if (port := free_port()) not in ports:
            ports.append(port)
    return ports


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could listen on `host:port` (as gunicorn would, with SO_REUSEADDR)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def wait_until(
    check: Callable[[], object],
    timeout: float = START_TIMEOUT,
    interval: float = 0.05,
    what: str = "condition",
) -> object:
    """Poll `check` until it returns something truthy and return that; StackError on timeout.

    Connection errors count as "not yet"; the last one is named in the error.
    """
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
    raise StackError(f"timed out after {timeout:g} s waiting for {what} (last error: {last_error})")


def shared_port(addresses: Iterable[str]) -> int:
    """A port free on every one of `addresses` (replicas on 127.0.0.x sharing one port)."""
    hosts = list(addresses)
    return wait_until(
        lambda: (lambda p: p if all(port_is_free(p, a) for a in hosts) else 0)(free_port()),
        what=f"a port free on {', '.join(hosts)}",
    )


class LoopbackName:
    """One host name resolving to several loopback addresses, in processes started with `env`.

    nss_wrapper (Debian's libnss-wrapper), LD_PRELOADed with a hosts file of
    its own that it rereads when it changes: /etc/hosts is never touched.
    """

    def __init__(self, hosts: Path, name: str = "receivers.framewire.test") -> None:
        self.hosts = hosts
        self.name = name  # .test: reserved, never resolves for real

    def resolve_to(self, addresses: Iterable[str]) -> None:
        """Make the name resolve to `addresses` (the file is replaced atomically)."""
        new = self.hosts.with_suffix(".new")
        new.write_text("".join(f"{address} {self.name}\n" for address in addresses))
        os.replace(new, self.hosts)

    @property
    def env(self) -> dict[str, str]:
        found = glob.glob("/usr/lib/*/libnss_wrapper.so")
        if not found:
            raise StackError(
                "libnss_wrapper.so is missing: install libnss-wrapper (make test does)"
            )
        return {"LD_PRELOAD": found[0], "NSS_WRAPPER_HOSTS": str(self.hosts)}


def framewire_command() -> list[str]:
    """How to run the `framewire` CLI with this interpreter."""
    script = Path(sys.executable).parent / "framewire"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from framewire.cli import main; main()"]


@dataclass
class Service:
    """A process we started, with its output in a log file, stopped by its PID."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    url: str = ""

    @classmethod
    def start(
        cls,
        name: str,
        args: list[str],
        log_path: Path,
        url: str = "",
        env: Mapping[str, str] | None = None,
    ) -> Service:
        """Start `args` in a session of its own (Ctrl-C reaches only us; we stop it).

        `env` is the whole environment (None: ours).
        """
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=None if env is None else dict(env),
                start_new_session=True,
            )
        return cls(name, proc, log_path, url)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def check(self) -> None:
        """StackError (with the end of the log) if the process has exited."""
        if self.proc.poll() is not None:
            tail = " | ".join(self.log().strip().splitlines()[-5:])
            raise StackError(f"{self.name} exited with status {self.proc.returncode}: {tail}")

    def wait_ready(self, path: str, timeout: float = START_TIMEOUT) -> Service:
        """Return once `url + path` answers 2xx; StackError if the process exits meanwhile."""

        def answers() -> bool:
            self.check()
            return requests.get(f"{self.url}{path}", timeout=1).ok

        wait_until(answers, timeout, what=f"{self.name} {self.url}{path}")
        return self

    def rss_kib(self) -> int:
        """Resident memory of the process doing the work: a gunicorn master's worker, or itself."""
        process = psutil.Process(self.proc.pid)
        worker = next(iter(process.children()), process)
        return worker.memory_info().rss // 1024

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> float:
        """Signal the process and wait; SIGKILL and StackError after `timeout`; seconds taken."""
        started = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise StackError(f"{self.name} ignored signal {sig} for {timeout:g} s") from None
        return time.monotonic() - started

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


class Services:
    """Starts framewire services with logs in `directory`; `stop_all` ends whatever is left.

    `env` is the services' whole environment (None: ours); each start may add to it.
    """

    def __init__(self, directory: Path, env: Mapping[str, str] | None = None) -> None:
        self.directory = directory
        self.env = dict(os.environ if env is None else env)
        self.started: list[Service] = []

    def start(
        self, name: str, args: list[str], env: Mapping[str, str] | None = None, url: str = ""
    ) -> Service:
        service = Service.start(
            name, args, self.directory / f"{name}.log", url, {**self.env, **(env or {})}
        )
        self.started.append(service)
        return service

    def receiver(
        self,
        kind: str,
        *args: str,
        env: Mapping[str, str] | None = None,
        port: int = 0,
        prefix: Sequence[str] = (),
    ) -> Service:
        """`framewire http-receiver` or `redis-receiver` (on a free port), once /healthz answers.

        `prefix` runs it under another command that execs it (`taskset -c 0`: the same PID).
        """
        return self._receiver(kind, args, env, port, prefix).wait_ready("/healthz")

    def replicas(
        self, count: int, *args: str, prefixes: Sequence[Sequence[str]] = ()
    ) -> list[Service]:
        """`count` Redis receivers sharing the cameras, each advertising its own URL
        (`--advertise-url`), started together; once all answer. `prefixes`: one per replica."""
        started = []
        for index, port in enumerate(free_ports(count)):
            advertise = ["--advertise-url", f"http://127.0.0.1:{port}"]
            prefix = prefixes[index] if prefixes else ()
            started.append(self._receiver("redis", (*args, *advertise), None, port, prefix))
        return [replica.wait_ready("/healthz") for replica in started]

    def _receiver(
        self,
        kind: str,
        args: Sequence[str],
        env: Mapping[str, str] | None,
        port: int,
        prefix: Sequence[str],
    ) -> Service:
        port = port or free_port()
        command = [*prefix, *framewire_command(), f"{kind}-receiver"]
        command += ["--bind", f"127.0.0.1:{port}", *args]
        return self.start(f"{kind}-receiver-{port}", command, env, f"http://127.0.0.1:{port}")

    def sender(self, *args: str, env: Mapping[str, str] | None = None) -> Service:
        """`framewire send` with its metrics on a free port, once /metrics answers."""
        port = free_port()
        command = [*framewire_command(), "send", "--metrics-bind", f"127.0.0.1:{port}", *args]
        url = f"http://127.0.0.1:{port}"
        return self.start(f"sender-{port}", command, env, url).wait_ready("/metrics")

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
        """SIGKILL what is still running, newest first."""
        for service in reversed(self.started):
            service.kill()


class RedisServer:
    """A real redis-server of our own on a free loopback port, without persistence."""

    def __init__(self, password: str = "", log_path: Path | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise StackError("redis-server is not on PATH (Debian: apt install redis-server)")
        self.port = free_port()
        self.password = password
        self.command = [binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        self.command += ["--save", "", "--appendonly", "no"]
        if password:
            self.command += ["--requirepass", password]
        self.log_path = log_path or Path(os.devnull)
        self.service: Service | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self.service.proc.pid if self.service else None

    @property
    def pids(self) -> dict[str, int]:
        """Its process by name, for the bench's CPU readings."""
        return {"redis-server": self.pid} if self.pid else {}

    @property
    def args(self) -> list[str]:
        """The framewire options that use it."""
        return ["--redis-url", self.url]

    def client(self) -> redis.Redis:
        return redis.Redis(
            "127.0.0.1", self.port, protocol=2, password=self.password or None, socket_timeout=5
        )

    def start(self) -> Service:
        """Start redis-server; return once it answers PING."""
        service = self.service = Service.start("redis-server", self.command, self.log_path)

        def pong() -> bool:
            service.check()
            return bool(self.client().ping())

        try:
            wait_until(pong, what="redis-server")
        except BaseException:
            self.stop()
            raise
        return service

    def stop(self) -> None:
        if self.service:
            self.service.stop()


def write_cameras(path: Path, cameras: list[dict[str, Any]]) -> Path:
    """Write a cameras file declaring `cameras` (each a mapping of its keys); return its path."""
    path.write_text(yaml.safe_dump({"cameras": cameras}, sort_keys=False), encoding="utf-8")
    return path
