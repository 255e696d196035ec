"""Real processes on loopback ports, and readers of what they serve.

The one copy of the helpers that the bench, `make run` and the tests share:
free ports, polling, a redis-server of our own, framewire services started as
subprocesses and stopped by PID, an MJPEG reader and a Prometheus reader.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import redis
import requests

START_TIMEOUT = 20.0

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


class StackError(RuntimeError):
    """A process could not start, exited early, or did not get ready in time."""


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
        self, kind: str, *args: str, env: Mapping[str, str] | None = None, port: int = 0
    ) -> Service:
        """`framewire http-receiver` or `redis-receiver` (on a free port), once /healthz answers."""
        port = port or free_port()
        command = [*framewire_command(), f"{kind}-receiver", "--bind", f"127.0.0.1:{port}", *args]
        url = f"http://127.0.0.1:{port}"
        return self.start(f"{kind}-receiver-{port}", command, env, url).wait_ready("/healthz")

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


class MjpegStream:
    """A multipart/x-mixed-replace response, read as raw chunks or as JPEG parts."""

    def __init__(self, response: requests.Response) -> None:
        content_type = response.headers.get("Content-Type", "")
        if not content_type.startswith("multipart/x-mixed-replace") or "boundary=" not in (
            content_type
        ):
            raise StackError(f"not an MJPEG stream: Content-Type {content_type!r}")
        self.response = response
        self.boundary = b"--" + content_type.split("boundary=")[1].encode()

    def chunks(self) -> Iterator[bytes]:
        return self.response.iter_content(chunk_size=65536)

    def parts(self, count: int, max_bytes: int = 50_000_000) -> list[bytes]:
        """The bodies of the next `count` parts; StackError after `max_bytes` without them."""
        buffer, parts, read = b"", [], 0
        for chunk in self.chunks():
            buffer += chunk
            read += len(chunk)
            while True:
                start = buffer.find(self.boundary)
                end = buffer.find(self.boundary, start + len(self.boundary))
                if start < 0 or end < 0:
                    break
                _, _, body = buffer[start + len(self.boundary) : end].partition(b"\r\n\r\n")
                if body:
                    parts.append(body.removesuffix(b"\r\n"))
                buffer = buffer[end:]
                if len(parts) >= count:
                    return parts
            if read >= max_bytes:
                raise StackError(f"{len(parts)} of {count} parts in {read} bytes of stream")
        return parts


def mjpeg_parts(
    response: requests.Response, count: int, max_bytes: int = 50_000_000
) -> list[bytes]:
    """The bodies of the next `count` parts of an MJPEG response."""
    return MjpegStream(response).parts(count, max_bytes)


class Viewer(threading.Thread):
    """An MJPEG client reading 64 KiB at a time, `fps` times a second (0: as fast as it can).

    Connects on construction; `start()` begins reading. `parts` counts the
    boundaries seen (one per part received, also across chunk edges), `bytes`
    what was read.
    """

    def __init__(self, url: str, fps: float = 0) -> None:
        super().__init__(daemon=True, name="mjpeg-viewer")
        self.response = requests.get(url, stream=True, timeout=30)
        self.response.raise_for_status()
        self.stream = MjpegStream(self.response)
        self.fps = fps
        self.parts = 0
        self.bytes = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        keep = len(self.stream.boundary) - 1  # a boundary may straddle two chunks
        tail = b""
        try:
            for chunk in self.stream.chunks():
                seen = tail + chunk
                self.parts += seen.count(self.stream.boundary)
                tail = seen[-keep:]
                self.bytes += len(chunk)
                if self.stopped.is_set():
                    return
                if self.fps:
                    self.stopped.wait(1 / self.fps)
        except (requests.RequestException, AttributeError, ValueError):
            pass  # closed under us

    def close(self) -> None:
        self.stopped.set()
        self.response.close()
        if self.is_alive():
            self.join(timeout=5)


def parse_metrics(text: str) -> Samples:
    """Prometheus text -> {(sample name, sorted labels): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def select(samples: Samples, name: str, **labels: str) -> list[tuple[dict[str, str], float]]:
    """The series called `name` whose labels include `labels`."""
    found = []
    for (sample_name, sample_labels), value in samples.items():
        as_dict = dict(sample_labels)
        if sample_name == name and all(as_dict.get(k) == v for k, v in labels.items()):
            found.append((as_dict, value))
    return found


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the matching series."""
    return sum(value for _, value in select(samples, name, **labels))


def metric_value(text: str, name: str, **labels: str) -> float:
    """The value of the first sample of `name` with `labels` in Prometheus text; 0 when absent."""
    found = select(parse_metrics(text), name, **labels)
    return float(found[0][1]) if found else 0.0


def read_metrics(url: str) -> Samples:
    """Every sample of `url`/metrics."""
    response = requests.get(f"{url}/metrics", timeout=5)
    response.raise_for_status()
    return parse_metrics(response.text)


def read_latencies(url: str, stage: str, camera: str = "", since: int = 0) -> dict[str, Any]:
    """`url`/latencies of one stage (and camera; default: the receiver's default camera)."""
    params = {"stage": stage, "since": str(since), **({"camera": camera} if camera else {})}
    response = requests.get(f"{url}/latencies", params=params, timeout=5)
    response.raise_for_status()
    return response.json()


def scrape(url: str, name: str, **labels: str) -> float:
    """The value of one sample of `url`/metrics; 0 when absent."""
    return metric_value(requests.get(f"{url}/metrics", timeout=5).text, name, **labels)
