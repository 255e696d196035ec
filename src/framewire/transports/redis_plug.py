"""How the Redis transport plugs in: its settings on both sides, their rules, and the
factories of its sending side (`RedisSender`) and receiving side (a consumer thread).

The receiving side is chosen once, by mode: streams (`StreamConsumer`), on a Redis
Cluster (`ClusterStreamConsumer`, imported only then), or pub/sub (`SubscriberConsumer`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from framewire.owners import Owners
from framewire.settings import SECONDS, ConfigError, setting
from framewire.transports import METRICS, SENDER_STATES, FrameSender, FrameSink, Stop, Transport
from framewire.transports.redis import REDIS_MODES, RedisSender
from framewire.transports.redis_connect import LazyClient
from framewire.transports.redis_consumers import StreamConsumer, SubscriberConsumer, _Consumer
from framewire.transports.redis_members import RedisMembers
from framewire.transports.redis_presence import SenderStates
from framewire.urls import REDIS_SCHEMES, check_url, parse_bind

if TYPE_CHECKING:
    from flask import Flask


def check_redis_url(value: str) -> None:
    """A redis://, rediss:// or unix:// URL."""
    check_url(value, REDIS_SCHEMES)


def check_seeds(value: str) -> None:
    """Redis Cluster seed nodes: `HOST:PORT` items, comma-separated."""
    for seed in value.split(","):
        _, port = parse_bind(seed.strip())
        if not seed.strip().rpartition(":")[0] or not port:
            raise ValueError("must be HOST:PORT[,HOST:PORT...] with a host and a port")


def _mode() -> Any:
    return setting(
        "stream",
        "XADD to a stream (default), or PUBLISH / the article's SET + PUBLISH.",
        choices=REDIS_MODES,
    )


def _ca_cert() -> Any:
    return setting("", "CA certificate file to verify a rediss:// (TLS) server.", path=True)


def _cluster() -> Any:
    return setting(
        "",
        "Seed nodes HOST:PORT,... of a Redis Cluster to use instead of one Redis (the"
        " --redis-url host is one more seed; its password, ACL user and rediss:// apply to"
        " every node); stream mode only. Empty: one Redis.",
        check=check_seeds,
    )


def check_common(config: Any) -> None:
    """The rules of both sides: `--redis-cluster` wants streams, a TCP URL and database 0;
    a CA certificate is only used over TLS."""
    if config.redis_cluster and config.redis_url:
        if config.redis_mode != "stream":
            raise ConfigError("redis_cluster", "works with --redis-mode stream only")
        parts = urlsplit(config.redis_url)
        if parts.scheme == "unix" or parts.path.strip("/") not in ("", "0"):
            raise ConfigError(
                "redis_url", "must be redis:// or rediss:// with database 0 in a cluster"
            )
    if config.redis_ca_cert and not config.redis_url.startswith("rediss://"):
        raise ConfigError("redis_ca_cert", "is set but --redis-url is not rediss:// (TLS)")


@dataclass(frozen=True)
class RedisSending:
    """The sender's Redis settings."""

    redis_url: str = setting(
        "redis://127.0.0.1:6379/0",
        "Redis to send frames through; empty disables Redis."
        " Password and ACL user go in the URL; rediss:// for TLS.",
        check=check_redis_url,
    )
    redis_mode: str = _mode()
    redis_ca_cert: str = _ca_cert()
    redis_cluster: str = _cluster()
    redis_maxlen: int = setting(8, "Approximate stream length kept per camera.", low=1, high=10000)
    redis_timeout: float = setting(
        2.0, "Seconds to connect to Redis and for each Redis command.", **SECONDS
    )


def senders(config: Any) -> list[FrameSender]:
    """One sender (one command in flight)."""
    return [
        RedisSender(
            config.redis_url,
            maxlen=config.redis_maxlen,
            timeout=config.redis_timeout,
            mode=config.redis_mode,
            ca_cert=config.redis_ca_cert,
            cluster=config.redis_cluster,
            camera=config.camera,
            quality=config.quality,
        )
    ]


@dataclass(frozen=True)
class RedisReceiving:
    """The Redis receiver's settings."""

    redis_url: str = setting(
        "redis://127.0.0.1:6379/0",
        "Redis to read the frames from. Password and ACL user go in the URL; rediss:// for TLS.",
        check=check_redis_url,
    )
    redis_mode: str = _mode()
    redis_ca_cert: str = _ca_cert()
    redis_cluster: str = _cluster()


def check_receiving(config: Any) -> None:
    if not config.redis_url:
        raise ConfigError("redis_url", "must not be empty")
    check_common(config)
    if config.advertise_url and (config.redis_cluster or config.redis_mode != "stream"):
        raise ConfigError(
            "advertise_url",
            "replicas share cameras with one Redis and --redis-mode stream only (not yet"
            " with --redis-cluster or the comparison modes)",
        )


def consumer(
    url: str,
    sink: FrameSink,
    mode: str = "stream",
    ca_cert: str = "",
    cluster: str = "",
    decoders: int = 1,
    **owning: Any,
) -> _Consumer:
    """The receiving side for `mode`; on a Redis Cluster (seed nodes `cluster`), streams.
    Streams are decoded by `decoders` threads (the comparison modes decode as they read);
    `owning`: StreamConsumer's owners and its hooks (replicas sharing the cameras)."""
    if cluster:
        from framewire.transports.redis_cluster import ClusterStreamConsumer

        return ClusterStreamConsumer(url, sink, ca_cert, cluster, decoders=decoders)
    if mode == "stream":
        return StreamConsumer(url, sink, ca_cert, decoders=decoders, **owning)
    return SubscriberConsumer(url, sink, mode, ca_cert)


def receive(app: Flask, sink: FrameSink, config: Any, decoders: int, owners: Owners) -> Stop | None:
    """The consumer thread, started (and, with replicas sharing the cameras, the membership
    heartbeats); their stop."""
    metrics = app.extensions[METRICS]

    def owned(gained: set[str], lost: set[str]) -> None:
        for camera in gained:
            metrics.camera_owned.labels(camera, "redis").set(1)
        for camera in lost:
            metrics.camera_owned.labels(camera, "redis").set(0)

    def taken(camera: str, seconds: float) -> None:
        metrics.camera_takeovers.labels(camera, "redis").inc()
        metrics.takeover_seconds.labels(camera, "redis").set(seconds)

    reader = consumer(
        config.redis_url,
        sink,
        config.redis_mode,
        config.redis_ca_cert,
        config.redis_cluster,
        decoders,
        owners=owners,
        on_owned=owned,
        on_taken=taken,
    )
    members_gauge = metrics.replica_members.labels("redis")
    members_gauge.set(1)
    states = SenderStates(LazyClient(config.redis_url, 2.0, 2.0, config.redis_ca_cert))
    if config.redis_mode == "stream" and not config.redis_cluster:
        app.extensions[SENDER_STATES] = states.read
    if not owners.shared:
        reader.start()

        def stop_alone() -> None:
            reader.stop()
            states.close()

        return stop_alone
    assert isinstance(reader, StreamConsumer)
    members = RedisMembers(
        LazyClient(config.redis_url, 2.0, 2.0, config.redis_ca_cert),
        owners,
        reader.owned,
        members_gauge.set,
    )
    members.start()
    reader.start()

    def stop() -> None:
        reader.stop()
        members.stop()
        states.close()

    return stop


TRANSPORT = Transport(
    name="redis",
    url="redis_url",
    sending=RedisSending,
    check_sending=check_common,
    senders=senders,
    receiving=RedisReceiving,
    check_receiving=check_receiving,
    receive=receive,
    port=8002,
    receiver_help="Receive frames from Redis and serve them as an MJPEG stream.",
)
