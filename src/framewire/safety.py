"""Settings that leave a service open to others: the documented default secret, and an
HTTP ingest with no token listening beyond loopback.

Each is one warning line at start, naming the variable to set (cli.py), and a banner on
the receivers' page while the service runs with it (viewer.py). Never the secret itself.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from framewire.config import ReceiverConfig, SenderConfig
from framewire.urls import parse_bind

# The token and Redis password .env.example and compose.yaml ship with: public, so no secret.
DEFAULT_SECRET = "framewire-change-me"


def loopback(bind: str) -> bool:
    """Whether `HOST:PORT` listens on loopback only."""
    host, _ = parse_bind(bind)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def _redis_password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def warnings(config: SenderConfig | ReceiverConfig) -> list[str]:
    """What leaves this service open, one line each, naming the variable to set."""
    found: list[str] = []
    if isinstance(config, SenderConfig):
        token_used, redis_used = bool(config.http_url), bool(config.redis_url)
    else:
        token_used, redis_used = config.transport == "http", config.transport == "redis"
    if token_used and config.token == DEFAULT_SECRET:
        found.append(
            "FRAMEWIRE_TOKEN is the documented default (anyone who read the README can send"
            " frames): set FRAMEWIRE_TOKEN to a secret of your own"
        )
    elif (
        isinstance(config, ReceiverConfig)
        and token_used
        and not config.token
        and not loopback(config.bind)
    ):
        found.append(
            f"FRAMEWIRE_TOKEN is empty and POST /frames listens on {config.bind}, beyond"
            " loopback: anyone who reaches it can send frames; set FRAMEWIRE_TOKEN"
        )
    if redis_used and _redis_password(config.redis_url) == DEFAULT_SECRET:
        found.append(
            "the Redis password in FRAMEWIRE_REDIS_URL is the documented default: set"
            " REDIS_PASSWORD (compose, .env) or your own password in FRAMEWIRE_REDIS_URL"
        )
    return found
