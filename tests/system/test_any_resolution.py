"""Any resolution a camera sends: real 4K frames from a real sender through a real HTTP and a
real Redis receiver at their defaults; the sender's --width/--height resize every source once
before the encode; a receiver whose --max-pixels refuses a frame says so in /stats."""

from __future__ import annotations

from pathlib import Path

import requests
import simplejpeg

from conftest import RedisServer, Service, Services, wait_until
from helpers import make_jpeg, post_frame, write_clip

UHD = (3840, 2160)


def uhd_clip(directory: Path) -> str:
    """A 3840x2160 MJPEG video (a few frames, looping): a 4K main stream."""
    return str(write_clip(directory / "uhd.avi", frames=4, fps=10.0, size=UHD))


def snapshot_size(receiver: Service, camera: str) -> tuple[int, int] | None:
    """(width, height) of the camera's newest frame as the receiver serves it, None before."""
    response = requests.get(f"{receiver.url}/snapshot/{camera}.jpg", timeout=10)
    if response.status_code != 200:
        return None
    height, width, _, _ = simplejpeg.decode_jpeg_header(response.content)
    return width, height


def test_4k_frames_pass_both_transports_at_the_defaults_or_resized_by_the_sender(
    services: Services, redis_server: RedisServer, tmp_path: Path
) -> None:
    clip = uhd_clip(tmp_path)
    # Receivers and sender at their defaults: the frames go on the wire as the camera sends.
    http, red, _ = services.stack(redis_server, sender_args=("--source", clip, "--camera", "uhd"))
    # A second camera, the same 4K source, sent at 1280x720 (resized once before the encode).
    services.sender(
        "--http-url", f"{http.url}/frames", "--redis-url", redis_server.url,
        "--source", clip, "--camera", "small", "--width", "1280", "--height", "720",
    )  # fmt: skip
    for receiver in (http, red):
        for camera, size in (("uhd", UHD), ("small", (1280, 720))):
            wait_until(
                lambda r=receiver, c=camera, s=size: snapshot_size(r, c) == s,
                timeout=30,
                what=f"{camera} served at {size} by {receiver.url}",
            )
        stats = requests.get(f"{receiver.url}/stats", timeout=5).json()
        assert stats["cameras"]["uhd"]["state"] == "live"
        assert stats["refused"] == {}


def test_a_frame_over_max_pixels_is_refused_and_says_which_setting_to_raise(
    services: Services, redis_server: RedisServer, tmp_path: Path
) -> None:
    clip = uhd_clip(tmp_path)
    cap = ("--max-pixels", str(1920 * 1080))
    http, red, _ = services.stack(
        redis_server, *cap, sender_args=("--source", clip, "--camera", "uhd")
    )
    for receiver in (http, red):

        def refused(r: Service = receiver) -> dict:
            return requests.get(f"{r.url}/stats", timeout=5).json()["refused"]

        wait_until(lambda: "too_many_pixels" in refused(), timeout=30, what="a refusal")
        entry = refused()["too_many_pixels"]
        assert entry["camera"] == "uhd"
        assert entry["detail"] == "JPEG is 3840x2160, over 2073600 pixels"
        assert entry["fix"] == "raise --max-pixels (FRAMEWIRE_MAX_PIXELS)"
        assert requests.get(f"{receiver.url}/stats", timeout=5).json()["cameras"] == {}
    # The HTTP producer hears the same reason in the answer.
    response = post_frame(http.url, "direct", make_jpeg(*UHD), 1)
    assert response.status_code == 422 and response.json()["error"] == "too_many_pixels"
