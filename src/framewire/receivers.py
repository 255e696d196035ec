"""The two receivers: one Flask app each, served by gunicorn.

Both share the pipeline and the viewer; they differ only in how frames
arrive: `POST /frames` (HTTP) or a consumer thread reading Redis streams.
gunicorn runs ONE gthread worker (the newest frames live in that process)
with enough threads for viewers and ingest; the app, and so the Redis
consumer thread, is created inside the worker after the fork. The worker is
`framewire.worker.BufferingWorker`: slow or silent clients wait on its event
loop, never in a thread, and the app is stopped (threads joined) before the
worker exits; the master exits 1 if a worker died of a signal.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter

from framewire.app import create_app
from framewire.config import ReceiverConfig
from framewire.worker import Limits, buffering_worker

log = logging.getLogger(__name__)


class ReceiverArbiter(Arbiter):
    """gunicorn's master, exiting 1 (not 0) when a worker died of a signal or failed.

    gunicorn only logs "Worker (pid:N) was sent SIGABRT!" and still exits 0;
    the wait status is peeked (`WNOWAIT`) before gunicorn's own reaping.
    """

    worker_failed = False

    def reap_workers(self) -> None:
        for pid in list(self.WORKERS):
            try:
                info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                continue
            if info is not None and (info.si_code != os.CLD_EXITED or info.si_status != 0):
                self.worker_failed = True
        super().reap_workers()

    def halt(self, reason: str | None = None, exit_status: int = 0) -> None:
        try:
            super().halt(reason, exit_status)
        except SystemExit as stop:
            if self.worker_failed and not stop.code:
                self.log.error("a worker failed (see above): exiting with status 1")
                raise SystemExit(1) from None
            raise


class ReceiverServer(BaseApplication):
    """gunicorn, configured in code, serving `create_app(config)` with a `BufferingWorker`."""

    def __init__(self, config: ReceiverConfig) -> None:
        self.receiver_config = config
        super().__init__()

    def load_config(self) -> None:
        c = self.receiver_config
        limits = Limits(c.request_timeout, c.viewer_timeout, c.max_body, c.max_buffered)
        settings: dict[str, Any] = {
            "bind": [c.bind],
            "workers": 1,
            "worker_class": buffering_worker(limits),
            "threads": c.threads,
            "timeout": 30,
            "graceful_timeout": c.graceful_timeout,
            "keepalive": 5,
            "control_socket_disable": True,
            "proc_name": f"framewire-{c.transport}-receiver",
        }
        for key, value in settings.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        return create_app(self.receiver_config)

    def run(self) -> None:
        """Like `BaseApplication.run`, with `ReceiverArbiter` as the master."""
        try:
            ReceiverArbiter(self).run()
        except RuntimeError as exc:
            print(f"\nError: {exc}\n", file=sys.stderr, flush=True)
            sys.exit(1)


def serve(config: ReceiverConfig) -> None:
    """Run the receiver until it is stopped."""
    ReceiverServer(config).run()
