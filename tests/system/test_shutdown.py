"""Every receiver stops cleanly on SIGTERM, again and again, with frames flowing and a viewer open.

The sender runs once; only the receiver is restarted each round, on a fixed
port so the sender's HTTP session reconnects to the new one.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import requests

from conftest import RedisServer, Services, free_port, wait_until
from helpers import Viewer

ROUNDS = 20  # each round takes 1.2-1.6 s on a 2-core machine
STOP_BOUND = 5.0  # seconds from SIGTERM to exit, with a loaded 2-core machine to spare
ABORT_SIGNS = (
    "SIGABRT",
    "terminate called",
    "was sent",
    "did not stop within",
    "still running",
    "Traceback",
)


@pytest.mark.parametrize("kind", ["http", "redis"])
def test_clean_stops_again_and_again(
    kind: str, services: Services, redis_server: RedisServer
) -> None:
    port = free_port()
    receiver_args = ["--redis-url", redis_server.url] if kind == "redis" else []
    services.sender(
        "--width", "320", "--height", "240",
        "--http-url", f"http://127.0.0.1:{port}/frames",
        "--redis-url", redis_server.url if kind == "redis" else "",
    )  # fmt: skip
    times = []
    for round_ in range(ROUNDS):
        receiver = services.receiver(kind, *receiver_args, port=port)
        wait_until(lambda r=receiver: requests.get(f"{r.url}/readyz", timeout=2).ok)
        viewer = Viewer(f"{receiver.url}/stream.mjpg")
        viewer.start()
        wait_until(lambda v=viewer: v.parts >= 2, what="the viewer to get frames")
        took = receiver.stop(timeout=STOP_BOUND * 2)
        viewer.close()
        log = receiver.log()
        assert receiver.proc.returncode == 0, (
            f"round {round_}: exit {receiver.proc.returncode}\n{log}"
        )
        assert took < STOP_BOUND, f"round {round_}: stop took {took:.1f} s\n{log}"
        assert not [s for s in ABORT_SIGNS if s in log], f"round {round_}:\n{log}"
        assert "app stopped in" in log, log
        times.append(took)
    print(f"{kind}: {ROUNDS} stops, max {max(times):.2f} s, mean {sum(times) / len(times):.2f} s")


def worker_pid(master: int) -> int:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return int(children[0]) if children else 0


def test_master_exits_nonzero_after_a_worker_died(services: Services) -> None:
    """gunicorn alone exits 0 after a worker was killed; the receiver makes it visible."""
    receiver = services.receiver("http")
    first = worker_pid(receiver.proc.pid)
    os.kill(first, signal.SIGKILL)
    wait_until(
        lambda: (
            worker_pid(receiver.proc.pid) not in (0, first)
            and requests.get(f"{receiver.url}/healthz")
        ),
        what="a new worker",
    )
    receiver.stop()
    assert receiver.proc.returncode == 1, receiver.log()
    assert "was sent SIGKILL" in receiver.log()


def test_clean_stop_exits_zero_without_viewers(services: Services) -> None:
    receiver = services.receiver("http")
    started = time.monotonic()
    receiver.stop()
    assert receiver.proc.returncode == 0, receiver.log()
    assert time.monotonic() - started < STOP_BOUND
