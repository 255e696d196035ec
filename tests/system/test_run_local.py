"""`make run` (scripts/run_local.py) supervises: signals stop everything, failures exit non-zero."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import requests

from conftest import free_ports, wait_until

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "run_local.py"


@dataclass
class RunLocal:
    """scripts/run_local.py on free ports, its output in files."""

    proc: subprocess.Popen[bytes]
    ports: dict[str, int]
    out: Path
    err: Path

    def children(self) -> list[psutil.Process]:
        return psutil.Process(self.proc.pid).children(recursive=True)

    def output(self) -> tuple[str, str]:
        return self.out.read_text(), self.err.read_text()

    def running(self) -> bool:
        """The banner is printed (every service answered)."""
        if self.proc.poll() is not None:
            raise AssertionError(f"run_local exited {self.proc.returncode}: {self.output()}")
        return "framewire is running" in self.out.read_text()


def _gone(process: psutil.Process) -> bool:
    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture
def run_local(tmp_path: Path) -> Iterator[Callable[..., RunLocal]]:
    started: list[RunLocal] = []

    def start(**env: str) -> RunLocal:
        names = ("HTTP_RECEIVER_PORT", "REDIS_RECEIVER_PORT", "SENDER_METRICS_PORT")
        ports = dict(zip(names, free_ports(len(names)), strict=True))
        clean = {k: v for k, v in os.environ.items() if not k.startswith("FRAMEWIRE_")}
        full_env = {**clean, **{k: str(v) for k, v in ports.items()}, **env}
        out, err = tmp_path / f"run{len(started)}.out", tmp_path / f"run{len(started)}.err"
        with out.open("wb") as stdout, err.open("wb") as stderr:
            proc = subprocess.Popen(
                [sys.executable, str(SCRIPT)], stdout=stdout, stderr=stderr, env=full_env
            )
        started.append(RunLocal(proc, ports, out, err))
        return started[-1]

    yield start
    for run in started:  # a failed test must leave nothing behind either
        survivors = run.children() if run.proc.poll() is None else []
        run.proc.kill()
        run.proc.wait()
        for child in survivors:
            child.kill()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_stop_signal_stops_every_process_it_started(
    run_local: Callable[..., RunLocal], sig: int, tmp_path: Path
) -> None:
    cameras = tmp_path / "cameras.yaml"
    cameras.write_text("cameras:\n  - {id: a, width: 160, height: 120}\n  - {id: b, fps: 5}\n")
    run = run_local(FRAMEWIRE_CAMERAS_FILE=str(cameras))
    wait_until(run.running, timeout=60, what="make run to be running")
    children = run.children()
    names = " ".join(" ".join(child.cmdline()) for child in children)
    assert "redis-server" in names and "http-receiver" in names and "redis-receiver" in names
    assert " send " in names and len(children) >= 6, names  # gunicorn masters and workers
    http = run.ports["HTTP_RECEIVER_PORT"]
    assert requests.get(f"http://127.0.0.1:{http}/healthz", timeout=5).ok
    # Each page compares with the other receiver, found on its port.
    for own, peer in (("HTTP", "REDIS"), ("REDIS", "HTTP")):
        page = requests.get(f"http://127.0.0.1:{run.ports[own + '_RECEIVER_PORT']}/", timeout=5)
        assert 'data-side="peer"' in page.text
        assert f'"peer_port": {run.ports[peer + "_RECEIVER_PORT"]}' in page.text
    # The one sender runs every camera of FRAMEWIRE_CAMERAS_FILE.
    stats = f"http://127.0.0.1:{http}/stats"
    wait_until(
        lambda: {"a", "b"} <= set(requests.get(stats, timeout=5).json()["cameras"]),
        what="both cameras of the cameras file at the HTTP receiver",
    )

    run.proc.send_signal(sig)
    assert run.proc.wait(timeout=60) == 0, run.output()
    wait_until(lambda: all(_gone(child) for child in children), what="every child to exit")
    assert "stopping every service" in run.output()[1]


def test_a_service_that_exits_stops_the_rest_and_fails(run_local: Callable[..., RunLocal]) -> None:
    run = run_local()
    wait_until(run.running, timeout=60, what="make run to be running")
    children = run.children()
    sender = next(child for child in children if " send " in " ".join(child.cmdline()))
    sender.kill()

    assert run.proc.wait(timeout=60) == 1, run.output()
    assert "sender exited" in run.output()[1]
    wait_until(lambda: all(_gone(child) for child in children), what="every child to exit")


def test_a_service_failing_at_start_is_reported_and_fails(
    run_local: Callable[..., RunLocal],
) -> None:
    run = run_local(FRAMEWIRE_OPEN_TIMEOUT="-1")  # the sender refuses it
    assert run.proc.wait(timeout=60) == 1, run.output()
    out, err = run.output()
    assert "framewire is running" not in out
    assert "sender exited with status 2" in err and "OPEN_TIMEOUT" in err


def test_a_port_in_use_is_one_line_before_anything_starts(
    run_local: Callable[..., RunLocal],
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = run_local(REDIS_RECEIVER_PORT=str(port))
        assert run.proc.wait(timeout=30) == 1
    out, err = run.output()
    assert out == ""
    assert err.strip().splitlines() == [
        f"port {port} (REDIS_RECEIVER_PORT) is already in use: "
        "stop what uses it or set REDIS_RECEIVER_PORT"
    ]
