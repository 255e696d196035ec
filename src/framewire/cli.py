"""The `framewire` command: `send`, `http-receiver`, `redis-receiver`.

Every option is a flag that also reads a `FRAMEWIRE_*` environment variable.
A bad value stops start-up with one line naming the option and the problem;
secrets (tokens, passwords in URLs) are never echoed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import signal
import sys
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import click

from framewire.bench import bench
from framewire.config import ReceiverConfig, SenderConfig, parse_bind
from framewire.frame import HTTP_MODES, REDIS_MODES, WireError, parse_camera

log = logging.getLogger("framewire")

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def option(name: str, envvar: str, **kwargs: Any) -> Decorator:
    """A click option that also reads FRAMEWIRE_<envvar> and shows its default."""
    kwargs.setdefault("show_default", True)
    return click.option(name, envvar=f"FRAMEWIRE_{envvar}", show_envvar=True, **kwargs)


def _check_camera(_: click.Context, __: click.Parameter, value: str) -> str:
    try:
        return parse_camera(value)
    except WireError as exc:
        raise click.BadParameter(exc.detail) from None


def _check_bind(_: click.Context, __: click.Parameter, value: str) -> str:
    if value:
        try:
            parse_bind(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
    return value


def _url_check(schemes: tuple[str, ...]) -> Callable[[click.Context, click.Parameter, str], str]:
    """Validate a URL's scheme and host without ever echoing it (it may hold a password)."""

    def check(_: click.Context, __: click.Parameter, value: str) -> str:
        if not value:
            return value
        try:
            parts = urlsplit(value)
            _ = parts.port  # raises ValueError for a bad port
        except ValueError:
            raise click.BadParameter("is not a valid URL") from None
        if parts.scheme not in schemes:
            raise click.BadParameter(f"must start with {' or '.join(s + '://' for s in schemes)}")
        if parts.scheme != "unix" and not parts.hostname:
            raise click.BadParameter("has no host")
        return value

    return check


REDIS_SCHEMES = ("redis", "rediss", "unix")
POSITIVE_SECONDS = click.FloatRange(min=0.01, max=3600)


def tune_malloc() -> None:
    """Keep glibc from handing decode buffers back to the OS after every frame.

    Without this, each 720p `cv2.imdecode` maps fresh pages (about 1,300 page
    faults) and takes twice as long. Same effect as MALLOC_MMAP_THRESHOLD_ and
    MALLOC_TRIM_THRESHOLD_ in the environment, but needs no wrapper.
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        m_trim_threshold, m_mmap_threshold = -1, -3
        libc.mallopt(m_mmap_threshold, 32 * 1024 * 1024)
        libc.mallopt(m_trim_threshold, 256 * 1024 * 1024)
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


def apply(decorators: list[Decorator], func: Callable[..., Any]) -> Callable[..., Any]:
    """Apply option decorators in the order they are listed (as if stacked)."""
    for decorate in reversed(decorators):
        func = decorate(func)
    return func


def redis_options(url_help: str) -> Decorator:
    """The Redis options the sender and the Redis receiver share."""
    decorators = [
        option(
            "--redis-url",
            "REDIS_URL",
            default="redis://127.0.0.1:6379/0",
            callback=_url_check(REDIS_SCHEMES),
            help=f"{url_help} Password and ACL user go in the URL; rediss:// for TLS.",
        ),
        option(
            "--redis-mode",
            "REDIS_MODE",
            default="stream",
            type=click.Choice(REDIS_MODES),
            help="XADD to a stream (default), or PUBLISH / the article's SET + PUBLISH.",
        ),
        option(
            "--redis-ca-cert",
            "REDIS_CA_CERT",
            default="",
            type=click.Path(dir_okay=False),
            help="CA certificate file to verify a rediss:// (TLS) server.",
        ),
    ]
    return lambda func: apply(decorators, func)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@option(
    "--log-level",
    "LOG_LEVEL",
    default="info",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
)
def cli(log_level: str) -> None:
    """framewire: move camera frames over HTTP and Redis, watch them, measure which is faster."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    tune_malloc()


@cli.command()
@option(
    "--source",
    "SOURCE",
    default="synthetic",
    help="synthetic, a video file, an rtsp:// or http:// URL, or a device index.",
)
@option("--camera", "CAMERA", default="cam0", callback=_check_camera, help="Camera id.")
@option(
    "--width", "WIDTH", default=1280, type=click.IntRange(16, 7680), help="Synthetic frame width."
)
@option(
    "--height", "HEIGHT", default=720, type=click.IntRange(16, 4320), help="Synthetic frame height."
)
@option(
    "--fps",
    "FPS",
    default=30.0,
    type=click.FloatRange(0, 1000),
    help="Synthetic frame rate (0: as fast as possible); also a video file's fallback.",
)
@option("--quality", "QUALITY", default=80, type=click.IntRange(1, 100), help="JPEG quality.")
@option(
    "--open-timeout",
    "OPEN_TIMEOUT",
    default=5.0,
    type=POSITIVE_SECONDS,
    help="Seconds to wait for a camera or file to open.",
)
@option(
    "--read-timeout",
    "READ_TIMEOUT",
    default=5.0,
    type=POSITIVE_SECONDS,
    help="Seconds without a frame before a camera counts as lost.",
)
@option(
    "--http-url",
    "HTTP_URL",
    default="http://127.0.0.1:8001/frames",
    callback=_url_check(("http", "https")),
    help="Where to POST frames; empty disables HTTP.",
)
@option("--http-connect-timeout", "HTTP_CONNECT_TIMEOUT", default=1.0, type=POSITIVE_SECONDS)
@option("--http-read-timeout", "HTTP_READ_TIMEOUT", default=2.0, type=POSITIVE_SECONDS)
@redis_options("Redis to send frames through; empty disables Redis.")
@option(
    "--redis-maxlen",
    "REDIS_MAXLEN",
    default=8,
    type=click.IntRange(1, 10000),
    help="Approximate stream length kept per camera.",
)
@option(
    "--http-mode",
    "HTTP_MODE",
    default="raw",
    type=click.Choice(HTTP_MODES),
    help="raw JPEG body, or the original article's base64 form post (for comparison).",
)
@option(
    "--token",
    "TOKEN",
    default="",
    show_default=False,
    help="Bearer token sent with every HTTP frame.",
)
@option(
    "--metrics-bind",
    "METRICS_BIND",
    default="0.0.0.0:9100",
    callback=_check_bind,
    help="HOST:PORT for /metrics; empty disables it.",
)
def send(**options: Any) -> None:
    """Capture frames and send each to the HTTP and Redis receivers."""
    from prometheus_client import start_http_server

    from framewire.sender import Sender
    from framewire.sources import open_source
    from framewire.transports import Publisher
    from framewire.transports.http import HttpPublisher
    from framewire.transports.redis import RedisPublisher

    config = SenderConfig(**options)
    if not config.http_url and not config.redis_url:
        raise click.UsageError("both --http-url and --redis-url are empty: nothing to send to")
    source = open_source(
        config.source,
        config.width,
        config.height,
        config.fps,
        config.open_timeout,
        config.read_timeout,
    )
    publishers: list[Publisher] = []
    if config.http_url:
        publishers.append(
            HttpPublisher(
                config.http_url,
                config.http_connect_timeout,
                config.http_read_timeout,
                token=config.token,
                mode=config.http_mode,
            )
        )
    if config.redis_url:
        publishers.append(
            RedisPublisher(
                config.redis_url,
                config.redis_maxlen,
                config.http_connect_timeout,
                config.http_read_timeout,
                mode=config.redis_mode,
                ca_cert=config.redis_ca_cert,
            )
        )
    sender = Sender(config, source, publishers)
    if config.metrics_bind:
        host, port = parse_bind(config.metrics_bind)
        try:
            start_http_server(port, host, registry=sender.metrics.registry)
        except OSError as exc:
            raise click.UsageError(
                f"--metrics-bind {config.metrics_bind}: {exc.strerror}"
            ) from None
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: sender.stop())
    log.info(
        "sending %s as camera %s to %s",
        source.description,
        config.camera,
        ", ".join(f"{p.name} {p.target}" for p in publishers),
    )
    sender.run()


def receiver_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Options both receivers take."""
    decorators = [
        option(
            "--threads",
            "THREADS",
            default=64,
            type=click.IntRange(8, 1000),
            help="gunicorn threads: viewers plus ingest.",
        ),
        option(
            "--processor",
            "PROCESSOR",
            default="none",
            help="Processing step: none, motion, or module:attribute.",
        ),
        option(
            "--quality",
            "QUALITY",
            default=80,
            type=click.IntRange(1, 100),
            help="JPEG quality of the annotated stream.",
        ),
        option(
            "--default-camera",
            "DEFAULT_CAMERA",
            default="cam0",
            callback=_check_camera,
            help="Camera shown by the bare /stream.mjpg and /snapshot.jpg.",
        ),
        option("--max-cameras", "MAX_CAMERAS", default=16, type=click.IntRange(1, 1000)),
        option(
            "--max-viewers",
            "MAX_VIEWERS",
            default=48,
            type=click.IntRange(1, 10000),
            help="Open MJPEG streams allowed at once.",
        ),
        option(
            "--stale-after",
            "STALE_AFTER",
            default=2.0,
            type=POSITIVE_SECONDS,
            help="Seconds after which the newest frame is too old: not ready, no signal.",
        ),
        option(
            "--keepalive",
            "KEEPALIVE",
            default=1.0,
            type=POSITIVE_SECONDS,
            help="Seconds between re-sends of the last frame on a still scene.",
        ),
        option(
            "--peer-url",
            "PEER_URL",
            default="",
            callback=_url_check(("http", "https")),
            help="The other receiver's public URL: the comparison page shows both streams.",
        ),
        option(
            "--grafana-url",
            "GRAFANA_URL",
            default="",
            callback=_url_check(("http", "https")),
            help="Grafana's public URL, linked from the page.",
        ),
        option(
            "--viewer-user",
            "VIEWER_USER",
            default="",
            help="With --viewer-password: HTTP basic auth on pages, streams and snapshots.",
        ),
        option("--viewer-password", "VIEWER_PASSWORD", default="", show_default=False),
        option(
            "--rate-limit",
            "RATE_LIMIT",
            default=0.0,
            type=click.FloatRange(0, 10000),
            help="Requests per second per client on viewer routes (0: no limit).",
        ),
        option(
            "--forget-after",
            "FORGET_AFTER",
            default=300.0,
            type=POSITIVE_SECONDS,
            help="Seconds without an accepted frame after which a camera is forgotten.",
        ),
        option(
            "--max-pixels",
            "MAX_PIXELS",
            default=1920 * 1080,
            type=click.IntRange(64, 7680 * 4320),
            help="Largest frame accepted (width x height, read from the JPEG header).",
        ),
        option(
            "--request-timeout",
            "REQUEST_TIMEOUT",
            default=5.0,
            type=POSITIVE_SECONDS,
            help="Seconds a request may take to arrive in full before it is dropped.",
        ),
        option(
            "--viewer-timeout",
            "VIEWER_TIMEOUT",
            default=10.0,
            type=POSITIVE_SECONDS,
            help="Seconds an MJPEG viewer may read nothing before it is dropped.",
        ),
        option(
            "--graceful-timeout",
            "GRACEFUL_TIMEOUT",
            default=1,
            type=click.IntRange(0, 300),
            help="Seconds gunicorn lets requests finish after SIGTERM.",
        ),
    ]
    return apply(decorators, func)


def _serve(**options: Any) -> None:
    from framewire.processing import load_processor
    from framewire.receivers import serve

    if bool(options["viewer_user"]) != bool(options["viewer_password"]):
        raise click.UsageError(
            "--viewer-user and --viewer-password (FRAMEWIRE_VIEWER_USER, FRAMEWIRE_VIEWER_PASSWORD)"
            " must be set together"
        )
    if options["max_viewers"] > options["threads"] - 4:
        raise click.BadParameter(
            f"must leave 4 of the {options['threads']} --threads for ingest and pages",
            param_hint="'--max-viewers' / 'FRAMEWIRE_MAX_VIEWERS'",
        )
    try:
        load_processor(options["processor"])
    except ValueError as exc:
        raise click.BadParameter(
            str(exc), param_hint="'--processor' / 'FRAMEWIRE_PROCESSOR'"
        ) from None
    serve(ReceiverConfig(**options))


@cli.command("http-receiver")
@option("--bind", "BIND", default="0.0.0.0:8001", callback=_check_bind, help="HOST:PORT to serve.")
@receiver_options
@option(
    "--max-body",
    "MAX_BODY",
    default=8 * 1024 * 1024,
    type=click.IntRange(1024, 2**30),
    help="Largest frame accepted, in bytes (413 above it).",
)
@option(
    "--token",
    "TOKEN",
    default="",
    show_default=False,
    help="Bearer token POST /frames must carry; empty accepts any sender.",
)
def http_receiver(**options: Any) -> None:
    """Receive frames by POST /frames and serve them as an MJPEG stream."""
    _serve(transport="http", **options)


@cli.command("redis-receiver")
@option("--bind", "BIND", default="0.0.0.0:8002", callback=_check_bind, help="HOST:PORT to serve.")
@receiver_options
@redis_options("Redis to read the frames from.")
def redis_receiver(**options: Any) -> None:
    """Receive frames from Redis streams and serve them as an MJPEG stream."""
    if not options["redis_url"]:
        raise click.BadParameter(
            "must not be empty", param_hint="'--redis-url' / 'FRAMEWIRE_REDIS_URL'"
        )
    _serve(transport="redis", **options)


cli.add_command(bench)


def main() -> None:
    """Entry point: click, but every usage error is a single line."""
    try:
        cli.main(standalone_mode=False, prog_name="framewire")
    except click.ClickException as exc:
        click.echo(f"framewire: error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except click.Abort:
        sys.exit(130)
