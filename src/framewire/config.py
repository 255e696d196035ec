"""Every setting of both services: default, range, help, and the checks between them.

`SenderConfig` is the sender's own settings (its cameras') and each transport's
sending settings; `ReceiverConfig` the receivers' common settings and each
transport's receiving settings (`transport` says which receiver reads them).
Each transport's settings and rules come from the registry
(transports/registry.py); how a setting is declared and checked is settings.py.
README and .env.example are checked against these definitions by the tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from framewire.frame import WireError, parse_camera
from framewire.settings import SECONDS, ConfigError, Validated, default, setting, settings
from framewire.transports.http import HTTP_MODES
from framewire.transports.http_plug import HTTP_FANOUTS
from framewire.transports.redis import REDIS_MODES
from framewire.transports.registry import TRANSPORTS
from framewire.urls import check_advertise_url, check_bind, check_url, check_web_url

__all__ = [
    "HTTP_FANOUTS",
    "HTTP_MODES",
    "REDIS_MODES",
    "SYNTHETIC_PHASES",
    "ConfigError",
    "ReceiverConfig",
    "SenderConfig",
    "default",
    "settings",
]

SOURCE_SCHEMES = ("rtsp", "rtsps", "http", "https")
SYNTHETIC_PHASES = ("spread", "aligned")
# Every transport together, or one alone.
TRANSPORT_CHOICES = (",".join(TRANSPORTS), *TRANSPORTS)


def _check_camera(value: str) -> None:
    try:
        parse_camera(value)
    except WireError as exc:
        raise ValueError(exc.detail) from None


def _check_size(value: int) -> None:
    """A wire width or height: 0 (as the source sends) or at least 16 pixels."""
    if value < 16:
        raise ValueError(f"must be 0 (as the source sends) or at least 16, not {value}")


def _check_source(value: str) -> None:
    """A URL source must be a camera URL with a host; a file, a device or `synthetic` is free."""
    if "://" in value:
        check_url(value, SOURCE_SCHEMES)


def _transports() -> Any:
    return setting(
        ",".join(TRANSPORTS),
        "Transports in use: the sender sends over these only (whatever --http-url and"
        " --redis-url say), and a receiver's page compares only with a receiver of these.",
        choices=TRANSPORT_CHOICES,
    )


@dataclass(frozen=True)
class _Cameras(Validated):
    """The sender's own settings: its cameras'."""

    cameras_file: str = setting(
        "",
        "YAML file declaring every camera this sender runs (the camera options below"
        " are the defaults of its cameras); empty: one camera from the options.",
        path=True,
    )
    source: str = setting(
        "synthetic",
        "synthetic, a video file, an rtsp:// or http:// URL, or a device (0 or /dev/video0).",
        check=_check_source,
    )
    camera: str = setting("cam0", "Camera id.", check=_check_camera)
    width: int = setting(
        0,
        "Frame width on the wire, for every source (resized once before the encode); 0: as"
        " the source sends (the synthetic pattern: 1280, or 16:9 of --height).",
        low=0,
        high=7680,
        check=_check_size,
    )
    height: int = setting(
        0,
        "Frame height on the wire, for every source; 0: as the source sends, or the width's"
        " share of the source's aspect ratio when --width is set (synthetic: 720).",
        low=0,
        high=4320,
        check=_check_size,
    )
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


# A dataclass's fields run from its last base to its first, then its own: here the cameras',
# each transport's in the registry's order, then `metrics_bind` (the CLI's order of options).
_SENDING = reversed([t.sending for t in TRANSPORTS.values()])
_RECEIVING = reversed([t.receiving for t in TRANSPORTS.values()])


@dataclass(frozen=True)
class SenderConfig(*_SENDING, _Cameras):
    """Settings of `framewire send`."""

    metrics_bind: str = setting(
        "0.0.0.0:9100", "HOST:PORT for /metrics; empty disables it.", check=check_bind
    )

    def __post_init__(self) -> None:
        # A transport left out of --transports is off, whatever its URL (compose sets both).
        if self.transports in TRANSPORT_CHOICES:  # else refused below, naming --transports
            for name in set(TRANSPORTS) - set(self.transports.split(",")):
                object.__setattr__(self, TRANSPORTS[name].url, "")
        super().__post_init__()

    def check(self) -> None:
        first, *others = (t.url for t in TRANSPORTS.values())
        if not any(getattr(self, url) for url in (first, *others)):
            also = " and ".join("--" + url.replace("_", "-") for url in others)
            raise ConfigError(first, f"is empty and so is {also}: nothing to send to")
        for transport in TRANSPORTS.values():
            transport.check_sending(self)


@dataclass(frozen=True)
class _Receivers(Validated):
    """The settings every receiver has."""

    transport: str = "http"
    bind: str = setting("0.0.0.0:8001", "HOST:PORT to serve.", check=check_bind)
    threads: int = setting(64, "gunicorn threads: viewers plus ingest.", low=8, high=1000)
    processor: str = setting("none", "Processing step: none, motion, or module:attribute.")
    stream_quality: int = setting(
        80,
        "JPEG quality of the annotated stream and snapshots (the sender's is --quality).",
        low=1,
        high=100,
    )
    strip: str = setting(
        "on",
        "Status strip on the streams and snapshots by default: on, or off (the camera's"
        " picture as sent); a request's strip=0 or strip=1 overrides it.",
        choices=("on", "off"),
    )
    default_camera: str = setting(
        "",
        "Camera of the bare routes and the page, known (no signal) before its first frame;"
        " empty: the first camera, by id, that has sent one.",
        check=_check_camera,
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
        3840 * 2160,
        "Largest frame accepted (width x height, read from the JPEG header; 3840x2160: 4K).",
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
        check=check_web_url,
    )
    peer_port: int = setting(
        8002,
        "The other receiver's port: the comparison page finds it at the host name the browser"
        " used for this page, on this port, and shows both streams. --peer-url overrides it"
        " (e.g. behind a reverse proxy); 0: no peer.",
        low=0,
        high=65535,
    )
    grafana_url: str = setting(
        "", "Grafana's public URL, linked from the page.", check=check_web_url
    )
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
    advertise_url: str = setting(
        "",
        "This replica's URL as the other replicas reach it (e.g. http://$(POD_IP):8002). Set"
        " on every replica: each camera is then read and decoded by one owner replica, and"
        " the others relay what it serves. `auto`: http://ADDRESS:PORT, the address this"
        " host's name resolves to (a container's own) and the --bind port. Empty: alone, every"
        " camera decoded here.",
        check=check_advertise_url,
    )


@dataclass(frozen=True)
class ReceiverConfig(*_RECEIVING, _Receivers):
    """Settings of the receivers (`transport` says which; each reads its own transport's)."""

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
        if self.transport not in TRANSPORTS:
            raise ConfigError("transport", f"must be one of {', '.join(TRANSPORTS)}")
        TRANSPORTS[self.transport].check_receiving(self)
