"""A Redis receiver's app (with a real redis-server) has no /frames route."""

from __future__ import annotations

from conftest import RedisServer
from framewire.app import create_app
from framewire.config import ReceiverConfig
from helpers import make_jpeg

JPEG = make_jpeg(320, 240, seed=7)


def test_redis_receiver_has_no_frames_route(redis_server: RedisServer) -> None:
    app = create_app(ReceiverConfig(transport="redis", redis_url=redis_server.url))
    try:
        response = app.test_client().post("/frames", data=JPEG)
        assert response.status_code == 404 and response.json["error"] == "not_found"
    finally:
        app.extensions["framewire.shutdown"]()
