"""The two receivers: one Flask app each, served by gunicorn.

Both share the pipeline and the viewer; they differ only in how frames
arrive: `POST /frames` (HTTP) or a consumer thread reading Redis streams.
gunicorn runs ONE gthread worker (the newest frames live in that process)
with enough threads for viewers and ingest; the app, and so the Redis
consumer thread, is created inside the worker after the fork.
"""

from __future__ import annotations

import logging
import signal
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from framewire.app import create_app
from framewire.config import ReceiverConfig

log = logging.getLogger(__name__)


class ReceiverServer(BaseApplication):
    """gunicorn, configured in code, serving `create_app(config)`."""

    def __init__(self, config: ReceiverConfig) -> None:
        self.receiver_config = config
        super().__init__()

    def load_config(self) -> None:
        c = self.receiver_config
        settings: dict[str, Any] = {
            "bind": [c.bind],
            "workers": 1,
            "worker_class": "gthread",
            "threads": c.threads,
            "timeout": 30,
            "graceful_timeout": c.graceful_timeout,
            "keepalive": 5,
            "control_socket_disable": True,
            "post_worker_init": _end_streams_on_sigterm,
            "proc_name": f"framewire-{c.transport}-receiver",
        }
        for key, value in settings.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        return create_app(self.receiver_config)


def _end_streams_on_sigterm(worker: Any) -> None:
    """Close open MJPEG streams at once on SIGTERM, so shutdown is not held by viewers."""
    previous = signal.getsignal(signal.SIGTERM)
    shutdown = worker.wsgi.extensions["framewire.shutdown"]

    def handle(signum: int, frame: Any) -> None:
        shutdown()
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, handle)


def serve(config: ReceiverConfig) -> None:
    """Run the receiver until it is stopped."""
    ReceiverServer(config).run()
