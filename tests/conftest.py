"""Fixtures that start real components on free loopback ports and stop them by PID.

The helpers themselves live in framewire_bench.stack (shared with the bench
and `make run`); the names tests import from here are re-exported. Both folders import this
module and helpers.py by name (pyproject's pythonpath): tests/unit runs in process and may
start no process and open no listening socket (checked below), tests/system may.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from framewire.app import create_app
from framewire.config import ReceiverConfig
from framewire_bench import stack
from framewire_bench.readers import metric_value, scrape
from framewire_bench.stack import RedisServer, Service, free_port, free_ports, wait_until

__all__ = [
    "FRAMEWIRE",
    "TESTS",
    "RedisServer",
    "RtspCamera",
    "Service",
    "Services",
    "free_port",
    "free_ports",
]
__all__ += ["metric_value", "scrape", "wait_until"]

TESTS = Path(__file__).parent
UNIT = TESTS / "unit"
FRAMEWIRE = str(Path(sys.executable).parent / "framewire")
SYSTEM_PYTHON = "/usr/bin/python3"  # it has GStreamer's `gi`


class Services(stack.Services):
    """stack.Services whose processes can import tests/ (e.g. `--processor helpers:Slow`)."""

    def __init__(self, directory: Path) -> None:
        path = os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH", "")) if p)
        super().__init__(directory, env={**os.environ, "PYTHONPATH": path})


@pytest.fixture(autouse=True)
def in_process_only(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A test in tests/unit that starts a process or listens on a socket fails, naming the
    rule: such a test belongs in tests/system."""
    if not request.node.path.is_relative_to(UNIT):
        return

    def refuse(what: str) -> None:
        raise AssertionError(f"a unit test may not {what}: move it to tests/system")

    monkeypatch.setattr(subprocess.Popen, "__init__", lambda *a, **k: refuse("start a process"))
    monkeypatch.setattr(socket.socket, "listen", lambda *a, **k: refuse("listen on a socket"))


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    s = Services(tmp_path)
    yield s
    s.stop_all()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def app() -> Iterator[Flask]:
    """An HTTP receiver's app in process (Flask's test client drives it); stopped after."""
    app = create_app(ReceiverConfig(transport="http", stale_after=30.0, max_cameras=4))
    yield app
    app.extensions["framewire.shutdown"]()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


class RtspCamera:
    """A real RTSP camera: tests/rtsp_camera.py under the system Python, restartable on its port.

    SIGKILL it to lose the camera, SIGSTOP it to freeze it.
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"rtsp://127.0.0.1:{self.port}/cam"
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [SYSTEM_PYTHON, str(TESTS / "rtsp_camera.py"), str(self.port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.strip() == "ready", (
            f"RTSP camera did not start: {line}{self.proc.stdout.read()}"
        )

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
        if self.proc:
            self.proc.wait()


@pytest.fixture
def rtsp_camera() -> Iterator[RtspCamera]:
    """A started RtspCamera, killed after the test."""
    probe = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer', '1.0')"],
        capture_output=True,
    )
    if probe.returncode != 0:
        pytest.fail("GStreamer's RTSP server is missing: run `make test`, which installs it")
    camera = RtspCamera()
    camera.start()
    yield camera
    camera.stop()
