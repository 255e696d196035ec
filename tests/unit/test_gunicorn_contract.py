"""The gunicorn internals framewire's worker and arbiter build on, as they are tested.

framewire/worker.py (BufferingWorker), request_buffer.py and receivers.py (ReceiverArbiter)
subclass gunicorn's gthread worker, its connection, its parser's unreader and its arbiter.
pyproject.toml pins gunicorn to the major version they are tested on; when an upgrade changes
one of these, this test names it, before tests/system/test_slow_clients.py meets it as a hang.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import gunicorn
from gunicorn import http, util
from gunicorn.arbiter import Arbiter
from gunicorn.http.body import LengthReader
from gunicorn.http.message import Message
from gunicorn.http.unreader import Unreader
from gunicorn.workers.gthread import TConn, ThreadWorker

# Each callable framewire overrides or calls, with the parameters it relies on.
CALLABLES: dict[str, tuple[Callable[..., Any], list[str]]] = {
    "ThreadWorker.init_process": (ThreadWorker.init_process, ["self"]),
    "ThreadWorker.run": (ThreadWorker.run, ["self"]),
    "ThreadWorker.handle_exit": (ThreadWorker.handle_exit, ["self", "sig", "frame"]),
    "ThreadWorker.accept": (ThreadWorker.accept, ["self", "listener"]),
    "ThreadWorker.finish_request": (ThreadWorker.finish_request, ["self", "conn", "fs"]),
    "ThreadWorker.handle_request": (ThreadWorker.handle_request, ["self", "req", "conn"]),
    "ThreadWorker.murder_keepalived": (ThreadWorker.murder_keepalived, ["self", "force"]),
    "ThreadWorker.enqueue_req": (ThreadWorker.enqueue_req, ["self", "conn"]),
    "ThreadWorker.is_parent_alive": (ThreadWorker.is_parent_alive, ["self"]),
    "ThreadWorker.notify": (ThreadWorker.notify, ["self"]),
    "ThreadWorker.set_accept_enabled": (ThreadWorker.set_accept_enabled, ["self", "enabled"]),
    "TConn.__init__": (TConn.__init__, ["self", "cfg", "sock", "client", "server"]),
    "TConn.init": (TConn.init, ["self"]),
    "gunicorn.http.get_parser": (http.get_parser, ["cfg", "source", "source_addr"]),
    "gunicorn.util.close": (util.close, ["sock"]),
    "Unreader.chunk": (Unreader.chunk, ["self"]),
    "Arbiter.reap_workers": (Arbiter.reap_workers, ["self"]),
    "Arbiter.halt": (Arbiter.halt, ["self", "reason", "exit_status"]),
}
# Attributes of the gthread worker framewire's worker reads or writes.
WORKER_ATTRIBUTES = ["poller", "nr_conns", "worker_connections", "tpool", "alive", "cfg", "log"]


def test_gunicorn_is_the_major_version_the_worker_is_tested_on() -> None:
    major = int(gunicorn.__version__.split(".")[0])
    assert major == 27, (
        f"gunicorn {gunicorn.__version__}: framewire/worker.py is tested on gunicorn 27 only"
        " (pyproject.toml pins it); check every internal this test names before moving on"
    )


def test_every_gunicorn_internal_the_worker_uses_is_there_as_it_expects() -> None:
    changed = []
    for name, (function, wanted) in CALLABLES.items():
        params = list(inspect.signature(function).parameters)
        if params[: len(wanted)] != wanted:
            changed.append(f"{name}{tuple(params)}, expected to start with {tuple(wanted)}")
    source = "".join(inspect.getsource(c) for c in ThreadWorker.__mro__ if c is not object)
    changed += [
        f"ThreadWorker.{attribute} (no longer set by the gthread worker)"
        for attribute in WORKER_ATTRIBUTES
        if f"self.{attribute}" not in source
    ]
    if "length" not in inspect.getsource(LengthReader.__init__):
        changed.append("LengthReader.length (the body's declared length)")
    if "self.must_close" not in inspect.getsource(Message.should_close):
        changed.append("Message.must_close (closes the connection after an unread body)")
    assert not changed, "gunicorn internals changed: " + "; ".join(changed)
