"""Validated settings for each service, and redaction of secrets for logs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

_USERINFO = re.compile(r"//([^/@\s]*)@")


def redact(url: str) -> str:
    """`url` with any password (or lone user token) replaced by `***`, safe to log."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return _USERINFO.sub("//***@", url)
    if parts.password is None and not parts.username:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    userinfo = f"{user}:***" if parts.password is not None else "***"
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{host}{port}"))


def parse_bind(value: str) -> tuple[str, int]:
    """`HOST:PORT` into its parts; raises ValueError with a reason."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("must be HOST:PORT with a port from 0 to 65535")
    return host.strip("[]") or "0.0.0.0", int(port)


@dataclass(frozen=True)
class SenderConfig:
    """Settings of `framewire send`."""

    source: str = "synthetic"
    camera: str = "cam0"
    width: int = 1280
    height: int = 720
    fps: float = 30.0
    quality: int = 80
    open_timeout: float = 5.0
    read_timeout: float = 5.0
    http_url: str = "http://127.0.0.1:8001/frames"
    http_mode: str = "raw"
    http_connect_timeout: float = 1.0
    http_read_timeout: float = 2.0
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_maxlen: int = 8
    redis_mode: str = "stream"
    redis_ca_cert: str = ""
    token: str = ""
    metrics_bind: str = "0.0.0.0:9100"


@dataclass(frozen=True)
class ReceiverConfig:
    """Settings shared by both receivers (plus each one's own)."""

    transport: str = "http"
    bind: str = "0.0.0.0:8001"
    threads: int = 64
    processor: str = "none"
    quality: int = 80
    default_camera: str = "cam0"
    max_cameras: int = 16
    max_viewers: int = 48
    stale_after: float = 2.0
    keepalive: float = 1.0
    graceful_timeout: int = 1
    forget_after: float = 300.0  # seconds without an accepted frame before a camera is forgotten
    max_pixels: int = 1920 * 1080  # largest frame accepted, read from the JPEG header
    request_timeout: float = 5.0  # seconds for a request to arrive in full
    viewer_timeout: float = 10.0  # seconds a viewer may read nothing before it is dropped
    peer_url: str = ""  # the other receiver's public URL, for the comparison page
    grafana_url: str = ""  # linked from the page when set
    viewer_user: str = ""  # HTTP basic auth for pages, streams and /stats when set
    viewer_password: str = ""
    rate_limit: float = 0.0  # requests per second per client on viewer routes (0: off)
    # http-receiver
    max_body: int = 8 * 1024 * 1024
    token: str = ""
    # redis-receiver
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_mode: str = "stream"
    redis_ca_cert: str = ""
