"""Fixtures that start real components on free loopback ports and stop them by PID.

The helpers themselves live in framewire.bench.stack (shared with the bench
and `make run`); the names tests import from here are re-exported.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from framewire.app import create_app
from framewire.bench import stack
from framewire.bench.readers import metric_value, scrape
from framewire.bench.stack import RedisServer, Service, free_port, wait_until
from framewire.config import ReceiverConfig

__all__ = ["FRAMEWIRE", "TESTS", "RedisServer", "Service", "Services", "free_port"]
__all__ += ["metric_value", "scrape", "wait_until"]

TESTS = Path(__file__).parent
FRAMEWIRE = str(Path(sys.executable).parent / "framewire")


class Services(stack.Services):
    """stack.Services whose processes can import tests/ (e.g. `--processor helpers:Slow`)."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory, env={**os.environ, "PYTHONPATH": str(TESTS)})


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
