"""How the HTTP transport plugs in: its settings on both sides, their rules, and the
factories of its sending side (`HttpSender`s) and receiving side (`POST /frames`).

The receiving side is imported only when a receiver installs it: the sender never loads Flask.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from framewire.metrics import ReceiverMetrics
from framewire.owners import Owners
from framewire.settings import SECONDS, ConfigError, setting
from framewire.transports import FrameSender, FrameSink, Stop, Transport
from framewire.transports.http import HTTP_MODES, HttpSender
from framewire.transports.http_members import Peers
from framewire.urls import check_web_url

if TYPE_CHECKING:
    from flask import Flask

HTTP_FANOUTS = ("none", "dns")


@dataclass(frozen=True)
class HttpSending:
    """The sender's HTTP settings."""

    http_url: str = setting(
        "http://127.0.0.1:8001/frames",
        "Where to POST frames; empty disables HTTP.",
        check=check_web_url,
    )
    http_mode: str = setting(
        "raw",
        "raw JPEG body, or the original article's base64 form post (for comparison).",
        choices=HTTP_MODES,
    )
    http_fanout: str = setting(
        "none",
        "none: POST to the --http-url host; dns: POST each camera's frames to its owner among"
        " the addresses that host resolves to (every pod of a Kubernetes headless Service) that"
        " answer: rendezvous hashing of the camera id over address:port, as the receivers'"
        " --http-peers do; re-resolved as they change, and a replica that stops answering is"
        " left out (its cameras move) until it answers again.",
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
    http_inflight: int = setting(
        2,
        "HTTP requests in flight per camera and receiver; the receiver drops one overtaken"
        " by a newer frame (stale).",
        low=1,
        high=16,
    )
    token: str = setting("", "Bearer token sent with every HTTP frame.")


def check_sending(config: Any) -> None:
    if config.http_fanout == "dns" and not config.http_url:
        raise ConfigError("http_fanout", "is dns but --http-url is empty: no host to resolve")
    if config.http_ca_cert and not config.http_url.startswith("https://"):
        raise ConfigError("http_ca_cert", "is set but --http-url is not https://")


def http_sender(config: Any, url: str, server_name: str = "") -> HttpSender:
    """The HTTP sender of one camera to `url` (the receiver, or one of its replicas; then
    `server_name` is the name an https:// replica's certificate must be for)."""
    return HttpSender(
        url,
        config.token,
        connect_timeout=config.http_connect_timeout,
        read_timeout=config.http_read_timeout,
        mode=config.http_mode,
        camera=config.camera,
        quality=config.quality,
        ca_cert=config.http_ca_cert,
        server_name=server_name,
    )


def senders(config: Any) -> list[FrameSender]:
    """`http_inflight` senders to the receiver; none under DNS fan-out (the camera's
    `fanout.Replicas` holds one set per replica)."""
    if config.http_fanout != "none":
        return []
    return [http_sender(config, config.http_url) for _ in range(config.http_inflight)]


def _check_host_name(value: str) -> None:
    """A bare host name (the port and scheme are --advertise-url's)."""
    if any(char in value for char in "/:@ \t"):
        raise ValueError("must be a host name alone (no scheme, port or path)")


@dataclass(frozen=True)
class HttpReceiving:
    """The HTTP receiver's settings."""

    max_body: int = setting(
        2 * 1024 * 1024, "Largest frame accepted, in bytes (413 above it).", low=1024, high=2**30
    )
    token: str = setting("", "Bearer token POST /frames must carry; empty accepts any sender.")
    http_peers: str = setting(
        "",
        "A host name resolving to every replica of this receiver (a Kubernetes headless"
        " Service): resolved about every second, each address asked for GET /owned at the"
        " port and scheme of --advertise-url; the replicas that answer share the cameras"
        " (each decoded by one owner, the replica the sender's --http-fanout dns posts it"
        " to). Needs --advertise-url. Empty: no peers.",
        check=_check_host_name,
    )


def check_receiving(config: Any) -> None:
    if config.http_peers and not config.advertise_url:
        raise ConfigError(
            "http_peers", "needs --advertise-url (this replica's URL, as the others reach it)"
        )
    if config.max_buffered < config.max_body:
        raise ConfigError(
            "max_buffered",
            "must be at least --max-body",
            {"max_body": f"must be at most --max-buffered ({config.max_buffered})"},
        )


def receive(app: Flask, sink: FrameSink, config: Any, decoders: int, owners: Owners) -> Stop | None:
    """`POST /frames` on the app; frames decode on the request threads. With `--http-peers`,
    the replicas that answer are the owners' members (http_members.py)."""
    from framewire.transports.http_ingest import ingest_blueprint

    app.register_blueprint(ingest_blueprint(sink, config.max_body, config.token))
    # The receivers' sink is their pipeline, which holds their metrics.
    metrics: ReceiverMetrics = getattr(sink, "metrics", None) or ReceiverMetrics()
    metrics.replica_members.labels(config.transport).set(1)
    if not config.http_peers:
        return None
    peers = Peers(config.http_peers, owners, metrics, config.transport)
    peers.start()
    return peers.stop


TRANSPORT = Transport(
    name="http",
    url="http_url",
    sending=HttpSending,
    check_sending=check_sending,
    senders=senders,
    receiving=HttpReceiving,
    check_receiving=check_receiving,
    receive=receive,
    port=8001,
    receiver_help="Receive frames by POST /frames and serve them as an MJPEG stream.",
)
