"""Authenticated ingest, protected Redis, viewer access control, and secrets kept out of logs."""

from __future__ import annotations

import pytest
import requests

from conftest import RedisServer, Service, Services, free_port, scrape, wait_until
from helpers import make_jpeg, post_frame

TOKEN = "ingest-token-7f3a9c"
REDIS_PASSWORD = "redis-pass-c0ffee"
VIEWER_PASSWORD = "viewer-pass-b4d5"
SECRETS = (TOKEN, REDIS_PASSWORD, VIEWER_PASSWORD)
JPEG = make_jpeg()


def http_only(receiver_url: str) -> tuple[str, ...]:
    """Sender arguments: small frames to this HTTP receiver only."""
    return (
        "--http-url",
        f"{receiver_url}/frames",
        "--redis-url",
        "",
        "--width",
        "160",
        "--height",
        "120",
    )


def post(url: str, token: str | None) -> requests.Response:
    return post_frame(url, "cam0", JPEG, token=token)


def test_ingest_requires_the_token(services: Services, redis_server: RedisServer) -> None:
    http = services.receiver("http", env={"FRAMEWIRE_TOKEN": TOKEN})
    for token in (None, "wrong", TOKEN[:-1], f"{TOKEN}x"):
        response = post(http.url, token)
        assert response.status_code == 401
        assert response.json()["error"] == "unauthorized"
        assert TOKEN not in response.text
    assert (
        scrape(http.url, "framewire_frames_rejected_total", transport="http", reason="unauthorized")
        == 4
    )
    assert post(http.url, TOKEN).status_code == 204
    # The sender sends the token it is given; a sender with the wrong one is refused, counted.
    good = services.sender(*http_only(http.url), "--token", TOKEN)
    wait_until(
        lambda: (
            scrape(good.url, "framewire_frames_sent_total", camera="cam0", transport="http") > 5
        ),
        what="frames sent with the right token",
    )
    bad = services.sender(*http_only(http.url), "--token", "not-the-token", "--camera", "cam9")
    wait_until(
        lambda: (
            scrape(
                bad.url,
                "framewire_send_errors_total",
                camera="cam9",
                transport="http",
                reason="http_401",
            )
            > 0
        ),
        what="401s counted",
    )
    assert "http transport down" in bad.log() and "unauthorized" in bad.log()


def test_wrong_redis_password_is_one_clear_line_and_retried(services: Services) -> None:
    server = RedisServer(password=REDIS_PASSWORD)
    server.start()
    try:
        wrong = f"redis://:wrong-{REDIS_PASSWORD}@127.0.0.1:{server.port}/0"
        red = services.receiver("redis", "--redis-url", wrong)
        sender = services.sender(
            "--http-url", "", "--redis-url", wrong, "--width", "160", "--height", "120"
        )
        wait_until(
            lambda: (
                scrape(
                    sender.url,
                    "framewire_send_errors_total",
                    camera="cam0",
                    transport="redis",
                    reason="auth",
                )
                > 3
            ),
            what="auth failures",
        )
        wait_until(
            lambda: (
                scrape(red.url, "framewire_receive_errors_total", transport="redis", reason="auth")
                > 1
            ),
            what="receiver auth failures",
        )
        assert sender.proc.poll() is None and red.proc.poll() is None  # retrying, not crashing
        assert sender.log().count("redis transport down") == 1
        assert "auth" in sender.log().split("redis transport down")[1].splitlines()[0]
        assert red.log().count("redis down") == 1
        for service in (sender, red):
            service.stop()
            assert not any(secret in service.log() for secret in SECRETS), service.log()
            assert "redis://:***@127.0.0.1" in service.log()
    finally:
        server.stop()


def test_viewer_basic_auth(services: Services) -> None:
    env = {"FRAMEWIRE_VIEWER_USER": "ops", "FRAMEWIRE_VIEWER_PASSWORD": VIEWER_PASSWORD}
    http = services.receiver("http", env=env)
    for path in ("/", "/snapshot.jpg", "/stream.mjpg"):
        refused = requests.get(f"{http.url}{path}", timeout=5, stream=True)
        assert refused.status_code == 401, path
        assert refused.headers["WWW-Authenticate"].startswith("Basic")
        wrong = requests.get(f"{http.url}{path}", auth=("ops", "nope"), timeout=5, stream=True)
        assert wrong.status_code == 401
    assert requests.get(f"{http.url}/", auth=("ops", VIEWER_PASSWORD), timeout=5).ok
    for path in ("/metrics", "/healthz", "/stats"):  # open for Prometheus, checks, the peer page
        assert requests.get(f"{http.url}{path}", timeout=5).ok
    assert requests.get(f"{http.url}/readyz", timeout=5).status_code == 503  # open, not ready
    assert (
        scrape(
            http.url, "framewire_requests_refused_total", transport="http", reason="unauthorized"
        )
        == 6
    )


def test_rate_limit_per_client(services: Services) -> None:
    http = services.receiver("http", "--rate-limit", "5")
    statuses = [requests.get(f"{http.url}/snapshot.jpg", timeout=5).status_code for _ in range(30)]
    assert 429 in statuses and statuses[0] != 429
    refused = statuses.count(429)
    assert (
        scrape(
            http.url, "framewire_requests_refused_total", transport="http", reason="rate_limited"
        )
        == refused
    )
    assert requests.get(f"{http.url}/metrics", timeout=5).ok  # never limited


@pytest.mark.parametrize("flag", ["--viewer-user", "--viewer-password"])
def test_viewer_credentials_go_together(flag: str) -> None:
    import subprocess

    from conftest import FRAMEWIRE

    result = subprocess.run(
        [FRAMEWIRE, "http-receiver", flag, VIEWER_PASSWORD],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "must be set together" in result.stderr
    assert VIEWER_PASSWORD not in result.stderr


DEFAULT_SECRET = "framewire-change-me"  # the documented default of .env.example and compose


def warned(service: Service, variable: str) -> list[str]:
    return [line for line in service.log().splitlines() if "WARNING" in line and variable in line]


def test_an_open_service_warns_once_at_start_and_on_its_page(services: Services) -> None:
    """The documented default token or Redis password, or no token on an ingest beyond
    loopback: one warning at start naming the variable to set, and a banner on the page."""
    by_default = services.receiver("http", env={"FRAMEWIRE_TOKEN": DEFAULT_SECRET})
    port = free_port()
    no_token = services.receiver("http", "--bind", f"0.0.0.0:{port}", port=port)
    safe = services.receiver("http", env={"FRAMEWIRE_TOKEN": "my-own-token-1234"})
    for receiver in (by_default, no_token):
        assert len(warned(receiver, "FRAMEWIRE_TOKEN")) == 1, receiver.log()
        banner = requests.get(f"{receiver.url}/", timeout=5).text
        assert 'id="warnings"' in banner and "set FRAMEWIRE_TOKEN" in banner
    assert "documented default" in warned(by_default, "FRAMEWIRE_TOKEN")[0]
    assert f"0.0.0.0:{port}, beyond loopback" in warned(no_token, "FRAMEWIRE_TOKEN")[0]
    assert (
        not warned(safe, "FRAMEWIRE_")
        and 'id="warnings"' not in requests.get(f"{safe.url}/", timeout=5).text
    )
    # The sender: the default token and the default Redis password, each named once.
    redis_url = f"redis://:{DEFAULT_SECRET}@127.0.0.1:{free_port()}/0"
    sender = services.sender(
        "--http-url", f"{safe.url}/frames", "--redis-url", redis_url, "--width", "64",
        "--height", "48", env={"FRAMEWIRE_TOKEN": DEFAULT_SECRET},
    )  # fmt: skip
    assert len(warned(sender, "FRAMEWIRE_TOKEN")) == 1
    assert len(warned(sender, "REDIS_PASSWORD")) == 1
    assert DEFAULT_SECRET not in sender.log()  # the URL is logged redacted, the token never
