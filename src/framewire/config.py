"""Every setting of every service, in one place: default, range, help, and the checks.

A setting is a dataclass field made by `setting()`. The CLI builds one flag
per field (`--max-body`, env `FRAMEWIRE_MAX_BODY`) with the field's default
and help; constructing a config validates every field and the cross-field
rules, raising `ConfigError` that names the field. README and .env.example
are checked against these definitions by the tests.
"""

from __future__ import annotations

import re
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from framewire.frame import WireError, parse_camera

_USERINFO = re.compile(r"//([^/@\s]*)@")
HTTP_MODES = ("raw", "form-base64")
HTTP_FANOUTS = ("none", "dns")
REDIS_MODES = ("stream", "pubsub", "set-publish")
REDIS_SCHEMES = ("redis", "rediss", "unix")
WEB_SCHEMES = ("http", "https")
SOURCE_SCHEMES = ("rtsp", "rtsps", "http", "https")
SYNTHETIC_PHASES = ("spread", "aligned")


class ConfigError(ValueError):
    """A bad setting; `name` is the field (the CLI turns it into a flag and env var).

    A rule between fields may say how it reads from the other fields' side
    (`others`: field -> message): the CLI names the one the user set.
    """

    def __init__(self, name: str, message: str, others: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.name = name
        self.message = message
        self.others = others or {}


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


def check_url(value: str, schemes: tuple[str, ...]) -> None:
    """Raise ValueError unless `value` is a URL of `schemes` with a host; never echoes it."""
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises ValueError for a bad port
    except ValueError:
        raise ValueError("is not a valid URL") from None
    if parts.scheme not in schemes:
        raise ValueError(f"must start with {' or '.join(s + '://' for s in schemes)}")
    if parts.scheme != "unix" and not parts.hostname:
        raise ValueError("has no host")


def _check_camera(value: str) -> None:
    try:
        parse_camera(value)
    except WireError as exc:
        raise ValueError(exc.detail) from None


def _check_bind(value: str) -> None:
    parse_bind(value)


TRANSPORTS = ("http,redis", "http", "redis")


def _transports() -> Any:
    return setting(
        "http,redis",
        "Transports in use: the sender sends over these only (whatever --http-url and"
        " --redis-url say), and a receiver's page compares only with a receiver of these.",
        choices=TRANSPORTS,
    )


def _check_seeds(value: str) -> None:
    """Redis Cluster seed nodes: `HOST:PORT` items, comma-separated."""
    for seed in value.split(","):
        _, port = parse_bind(seed.strip())
        if not seed.strip().rpartition(":")[0] or not port:
            raise ValueError("must be HOST:PORT[,HOST:PORT...] with a host and a port")


def _check_source(value: str) -> None:
    """A URL source must be a camera URL with a host; a file, a device or `synthetic` is free."""
    if "://" in value:
        check_url(value, SOURCE_SCHEMES)


CHECKS = {
    "camera": _check_camera,
    "bind": _check_bind,
    "source": _check_source,
    "web_url": lambda value: check_url(value, WEB_SCHEMES),
    "redis_url": lambda value: check_url(value, REDIS_SCHEMES),
    "seeds": _check_seeds,
}


def setting(
    default: Any,
    help: str = "",
    *,
    low: float | None = None,
    high: float | None = None,
    choices: tuple[str, ...] = (),
    check: str = "",
    path: bool = False,
) -> Any:
    """A config field: its default, help, range or choices, and a named `check`."""
    meta = {
        "help": help,
        "low": low,
        "high": high,
        "choices": choices,
        "check": check,
        "path": path,
    }
    return field(default=default, metadata=meta)


SECONDS = {"low": 0.01, "high": 3600.0}


def settings(config: type) -> list[Field[Any]]:
    """The setting fields of a config class (fields made by `setting()`)."""
    return [f for f in fields(config) if "help" in f.metadata]


def default(config: type, name: str) -> Any:
    """The default of one setting."""
    value = next(f.default for f in fields(config) if f.name == name)
    assert value is not MISSING
    return value


class _Validated:
    """Validates every setting on construction, then the class's own cross-field rules."""

    def __post_init__(self) -> None:
        for f in settings(type(self)):
            _check_field(f, getattr(self, f.name))
        self.check()

    def check(self) -> None:
        """Cross-field rules; raise ConfigError."""


def _check_field(f: Field[Any], value: Any) -> None:
    meta = f.metadata
    if meta["choices"] and value not in meta["choices"]:
        raise ConfigError(f.name, f"must be one of {', '.join(meta['choices'])}")
    if meta["low"] is not None and not meta["low"] <= value <= meta["high"]:
        raise ConfigError(f.name, f"must be from {meta['low']:g} to {meta['high']:g}")
    if meta["check"] and value:
        try:
            CHECKS[meta["check"]](value)
        except ValueError as exc:
            raise ConfigError(f.name, str(exc)) from None


def _redis_mode() -> Any:
    return setting(
        "stream",
        "XADD to a stream (default), or PUBLISH / the article's SET + PUBLISH.",
        choices=REDIS_MODES,
    )


def _redis_ca_cert() -> Any:
    return setting("", "CA certificate file to verify a rediss:// (TLS) server.", path=True)


def _redis_cluster() -> Any:
    return setting(
        "",
        "Seed nodes HOST:PORT,... of a Redis Cluster to use instead of one Redis (the"
        " --redis-url host is one more seed; its password, ACL user and rediss:// apply to"
        " every node); stream mode only. Empty: one Redis.",
        check="seeds",
    )


def check_cluster(config: Any) -> None:
    """The rules of `--redis-cluster`: streams, a TCP URL, database 0."""
    if not config.redis_cluster or not config.redis_url:
        return
    if config.redis_mode != "stream":
        raise ConfigError("redis_cluster", "works with --redis-mode stream only")
    parts = urlsplit(config.redis_url)
    if parts.scheme == "unix" or parts.path.strip("/") not in ("", "0"):
        raise ConfigError("redis_url", "must be redis:// or rediss:// with database 0 in a cluster")


def _check_redis_tls(url: str, ca_cert: str) -> None:
    """A CA certificate is only used over TLS: refuse one given with a plain Redis URL."""
    if ca_cert and not url.startswith("rediss://"):
        raise ConfigError("redis_ca_cert", "is set but --redis-url is not rediss:// (TLS)")


@dataclass(frozen=True)
class SenderConfig(_Validated):
    """Settings of `framewire send`."""

    cameras_file: str = setting(
        "",
        "YAML file declaring every camera this sender runs (the camera options below"
        " are the defaults of its cameras); empty: one camera from the options.",
        path=True,
    )
    source: str = setting(
        "synthetic",
        "synthetic, a video file, an rtsp:// or http:// URL, or a device (0 or /dev/video0).",
        check="source",
    )
    camera: str = setting("cam0", "Camera id.", check="camera")
    width: int = setting(1280, "Synthetic frame width.", low=16, high=7680)
    height: int = setting(720, "Synthetic frame height.", low=16, high=4320)
    fps: float = setting(
        30.0,
        "Synthetic frame rate (0: as fast as possible); also a video file's fallback.",
        low=0,
        high=1000,
    )
    synthetic_phase: str = setting(
        "spread",
        "When each synthetic camera captures within its frame period: spread, at a random"
        " phase per camera as real cameras free-run; aligned, every camera at the same instant"
        " (the worst case for the machine).",
        choices=SYNTHETIC_PHASES,
    )
    quality: int = setting(
        80,
        "JPEG quality of the frames sent (on the wire); the receivers' is --stream-quality.",
        low=1,
        high=100,
    )
    open_timeout: float = setting(5.0, "Seconds to wait for a camera or file to open.", **SECONDS)
    read_timeout: float = setting(
        5.0, "Seconds without a frame before a camera counts as lost.", **SECONDS
    )
    transports: str = _transports()
    http_url: str = setting(
        "http://127.0.0.1:8001/frames",
        "Where to POST frames; empty disables HTTP.",
        check="web_url",
    )
    http_mode: str = setting(
        "raw",
        "raw JPEG body, or the original article's base64 form post (for comparison).",
        choices=HTTP_MODES,
    )
    http_fanout: str = setting(
        "none",
        "none: POST to the --http-url host; dns: POST every frame to every address that host"
        " resolves to (every pod of a Kubernetes headless Service), re-resolved as they change.",
        choices=HTTP_FANOUTS,
    )
    http_resolve_every: float = setting(
        5.0, "With --http-fanout dns: seconds between re-resolves of the host.", low=0.1, high=3600
    )
    http_connect_timeout: float = setting(
        1.0, "Seconds to connect to the HTTP receiver.", **SECONDS
    )
    http_read_timeout: float = setting(
        2.0, "Seconds to wait for the HTTP receiver's answer.", **SECONDS
    )
    http_ca_cert: str = setting(
        "",
        "CA certificate file to verify an https:// receiver (under --http-fanout dns, each"
        " replica's certificate is checked against the --http-url host name); empty: the"
        " system's CAs.",
        path=True,
    )
    redis_url: str = setting(
        "redis://127.0.0.1:6379/0",
        "Redis to send frames through; empty disables Redis."
        " Password and ACL user go in the URL; rediss:// for TLS.",
        check="redis_url",
    )
    redis_mode: str = _redis_mode()
    redis_ca_cert: str = _redis_ca_cert()
    redis_cluster: str = _redis_cluster()
    redis_maxlen: int = setting(8, "Approximate stream length kept per camera.", low=1, high=10000)
    redis_timeout: float = setting(
        2.0, "Seconds to connect to Redis and for each Redis command.", **SECONDS
    )
    http_inflight: int = setting(
        2,
        "HTTP requests in flight per camera and receiver; the receiver drops one overtaken"
        " by a newer frame (stale).",
        low=1,
        high=16,
    )
    token: str = setting("", "Bearer token sent with every HTTP frame.")
    metrics_bind: str = setting(
        "0.0.0.0:9100", "HOST:PORT for /metrics; empty disables it.", check="bind"
    )

    def __post_init__(self) -> None:
        # A transport left out of --transports is off, whatever its URL (compose sets both).
        if self.transports in TRANSPORTS:  # else refused below, naming --transports
            for name in {"http", "redis"} - set(self.transports.split(",")):
                object.__setattr__(self, f"{name}_url", "")
        super().__post_init__()

    def check(self) -> None:
        if not self.http_url and not self.redis_url:
            raise ConfigError("http_url", "is empty and so is --redis-url: nothing to send to")
        check_cluster(self)
        if self.http_fanout == "dns" and not self.http_url:
            raise ConfigError("http_fanout", "is dns but --http-url is empty: no host to resolve")
        if self.http_ca_cert and not self.http_url.startswith("https://"):
            raise ConfigError("http_ca_cert", "is set but --http-url is not https://")
        _check_redis_tls(self.redis_url, self.redis_ca_cert)


@dataclass(frozen=True)
class ReceiverConfig(_Validated):
    """Settings of both receivers (`transport` says which; each reads its own extras)."""

    transport: str = "http"
    bind: str = setting("0.0.0.0:8001", "HOST:PORT to serve.", check="bind")
    threads: int = setting(64, "gunicorn threads: viewers plus ingest.", low=8, high=1000)
    processor: str = setting("none", "Processing step: none, motion, or module:attribute.")
    stream_quality: int = setting(
        80,
        "JPEG quality of the annotated stream and snapshots (the sender's is --quality).",
        low=1,
        high=100,
    )
    default_camera: str = setting(
        "",
        "Camera of the bare routes and the page, known (no signal) before its first frame;"
        " empty: the first camera, by id, that has sent one.",
        check="camera",
    )
    max_cameras: int = setting(16, "Cameras served at once.", low=1, high=1000)
    max_viewers: int = setting(48, "Open MJPEG streams allowed at once.", low=1, high=10000)
    stale_after: float = setting(
        2.0, "Seconds after which the newest frame is too old: not ready, no signal.", **SECONDS
    )
    keepalive: float = setting(
        1.0, "Seconds between re-sends of the last frame on a still scene.", **SECONDS
    )
    forget_after: float = setting(
        300.0, "Seconds without an accepted frame after which a camera is forgotten.", **SECONDS
    )
    max_pixels: int = setting(
        1920 * 1080,
        "Largest frame accepted (width x height, read from the JPEG header).",
        low=64,
        high=7680 * 4320,
    )
    max_capture_ahead: float = setting(
        60.0,
        "Seconds a capture time may be ahead of this host's clock (bad_timestamp beyond).",
        low=0,
        high=86400,
    )
    max_capture_behind: float = setting(
        3600.0,
        "Seconds a capture time may be behind this host's clock (bad_timestamp beyond).",
        low=1,
        high=7 * 86400,
    )
    decode_threads: int = setting(
        0,
        "Frames decoded at once, across cameras (0: one per CPU core the receiver may use).",
        low=0,
        high=256,
    )
    request_timeout: float = setting(
        5.0, "Seconds a request may take to arrive in full before it is dropped.", **SECONDS
    )
    max_buffered: int = setting(
        64 * 1024 * 1024,
        "Bytes held for requests still arriving, all connections together (dropped above it).",
        low=1024,
        high=2**34,
    )
    viewer_timeout: float = setting(
        10.0,
        "Seconds an MJPEG viewer has for each frame: one that could not take a whole frame"
        " within --viewer-timeout is dropped (whether it reads nothing or too slowly).",
        **SECONDS,
    )
    peer_url: str = setting(
        "",
        "The other receiver's URL as the browser reaches it, when host name and --peer-port"
        " do not (e.g. behind a reverse proxy); overrides --peer-port.",
        check="web_url",
    )
    peer_port: int = setting(
        8002,
        "The other receiver's port: the comparison page finds it at the host name the browser"
        " used for this page, on this port, and shows both streams. --peer-url overrides it"
        " (e.g. behind a reverse proxy); 0: no peer.",
        low=0,
        high=65535,
    )
    grafana_url: str = setting("", "Grafana's public URL, linked from the page.", check="web_url")
    transports: str = _transports()
    viewer_user: str = setting(
        "", "With --viewer-password: HTTP basic auth on pages, streams and snapshots."
    )
    viewer_password: str = setting("", "Password for --viewer-user.")
    rate_limit: float = setting(
        0.0, "Requests per second per client on viewer routes (0: no limit).", low=0, high=10000
    )
    graceful_timeout: int = setting(
        1, "Seconds gunicorn lets requests finish after SIGTERM.", low=0, high=300
    )
    # http-receiver
    max_body: int = setting(
        2 * 1024 * 1024, "Largest frame accepted, in bytes (413 above it).", low=1024, high=2**30
    )
    token: str = setting("", "Bearer token POST /frames must carry; empty accepts any sender.")
    # redis-receiver
    redis_url: str = setting(
        "redis://127.0.0.1:6379/0",
        "Redis to read the frames from. Password and ACL user go in the URL; rediss:// for TLS.",
        check="redis_url",
    )
    redis_mode: str = _redis_mode()
    redis_ca_cert: str = _redis_ca_cert()
    redis_cluster: str = _redis_cluster()

    def check(self) -> None:
        if bool(self.viewer_user) != bool(self.viewer_password):
            raise ConfigError(
                "viewer_user",
                "and --viewer-password must be set together",
                {"viewer_password": "and --viewer-user must be set together"},
            )
        if ":" in self.viewer_user:
            raise ConfigError("viewer_user", "must not contain ':' (HTTP basic auth splits on it)")
        if self.max_viewers > self.threads - 4:
            raise ConfigError(
                "max_viewers",
                f"must leave 4 of the {self.threads} --threads for ingest and pages",
                {"threads": f"must be at least --max-viewers + 4 = {self.max_viewers + 4}"},
            )
        if self.transport == "http" and self.max_buffered < self.max_body:
            raise ConfigError(
                "max_buffered",
                "must be at least --max-body",
                {"max_body": f"must be at most --max-buffered ({self.max_buffered})"},
            )
        if self.transport == "redis" and not self.redis_url:
            raise ConfigError("redis_url", "must not be empty")
        if self.transport == "redis":
            check_cluster(self)
            _check_redis_tls(self.redis_url, self.redis_ca_cert)
