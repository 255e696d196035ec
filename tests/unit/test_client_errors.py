"""framewire.client's refusals before anything is sent, and an unreachable server as a clear
error."""

from __future__ import annotations

import time

import pytest

from conftest import free_port
from framewire.client import (
    HttpSender,
    PublishError,
    RedisReceiver,
    RedisSender,
    Refused,
    Unreachable,
)
from helpers import make_jpeg

TOKEN = "client-t0ken-9f3a"
SECRET = "client-pw-41c7"


def test_a_frame_that_breaks_the_contract_is_refused_before_sending() -> None:
    sender = RedisSender(f"redis://127.0.0.1:{free_port()}/0", camera="local")
    for payload, camera, error in [
        (b"GIF89a", None, "not_jpeg"),
        (b"", None, "empty_body"),
        (make_jpeg(), "bad/camera", "bad_camera"),
    ]:
        with pytest.raises(Refused) as refused:
            sender.send(payload, camera)
        assert refused.value.error == error and refused.value.status == 0
    with pytest.raises(Refused, match="seq"):
        sender.send(make_jpeg(), seq=-1)


@pytest.mark.parametrize("kind", ["http", "redis-send", "redis-receive"])
def test_an_unreachable_server_is_a_clear_error_within_the_timeout(kind: str) -> None:
    port = free_port()
    started = time.monotonic()
    with pytest.raises(Unreachable) as unreachable:
        if kind == "http":
            HttpSender(f"http://u:{SECRET}@127.0.0.1:{port}/frames", TOKEN, connect_timeout=1).send(
                make_jpeg()
            )
        elif kind == "redis-send":
            RedisSender(f"redis://:{SECRET}@127.0.0.1:{port}/0", timeout=1).send(make_jpeg())
        else:
            RedisReceiver(f"redis://:{SECRET}@127.0.0.1:{port}/0", timeout=1)
    took = time.monotonic() - started
    message = str(unreachable.value)
    assert isinstance(unreachable.value, PublishError)
    assert f"127.0.0.1:{port}" in message and "within 1 s" in message, message
    assert SECRET not in message and TOKEN not in message and "***" in message
    assert took < 10
