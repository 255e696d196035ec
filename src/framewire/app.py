"""The receiver's Flask app: hub, pipeline, the transport's receiving side, and the routes.

Every receiver is this app; they differ only in how frames arrive: their
transport's receiving side (the registry's `receive`), `POST /frames` (HTTP)
or a consumer thread reading Redis. Every error any route answers is JSON
(`{"error": reason, "detail": text}`).

`app.extensions["framewire.shutdown"]` stops everything: the consumer, the
camera workers (joined within a bound), and open MJPEG streams (they end).
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from framewire import access, safety
from framewire.config import ReceiverConfig
from framewire.hub import CameraNotFound, Hub
from framewire.metrics import ReceiverMetrics
from framewire.ops import ops_blueprint
from framewire.owners import Member, Owners
from framewire.pipeline import Pipeline
from framewire.processing import load_processor
from framewire.transports import METRICS, SENDER_STATES
from framewire.transports.registry import TRANSPORTS
from framewire.urls import advertised
from framewire.viewer import viewer_blueprint


def create_app(config: ReceiverConfig) -> Flask:
    """The receiver app for `config.transport` (a name in the registry), its threads started."""
    metrics = ReceiverMetrics()
    url = advertised(config.advertise_url, config.bind) if config.advertise_url else ""
    owners = Owners(Member.at(url)) if url else Owners.solo()
    hub = Hub(metrics, config, owners)
    pipeline = Pipeline(hub, metrics, config, load_processor(config.processor))
    app = Flask(__name__)
    # The peer is the receiver of another transport, if one is in use.
    compare = any(name != config.transport for name in config.transports.split(","))
    app.register_blueprint(
        viewer_blueprint(
            hub,
            config.keepalive,
            config.peer_url if compare else "",
            config.grafana_url,
            config.peer_port if compare else 0,
            safety.warnings(config),
        )
    )
    app.register_blueprint(ops_blueprint(hub))
    _json_errors(app)
    refused = metrics.requests_refused
    access.install(
        app,
        lambda reason: refused.labels(config.transport, reason).inc(),
        config.viewer_user,
        config.viewer_password,
        config.rate_limit,
    )
    app.extensions[METRICS] = metrics
    app.extensions["framewire.hub"] = hub
    closers: list[Callable[[], object]] = [hub.close, pipeline.close]
    stop = TRANSPORTS[config.transport].receive(app, pipeline, config, pipeline.decoders, owners)
    hub.sender_states = app.extensions.get(SENDER_STATES, hub.sender_states)
    if stop is not None:
        closers.insert(0, stop)  # first: no frame arrives while the rest stops

    def shutdown() -> None:
        for close in closers:
            close()

    app.extensions["framewire.shutdown"] = shutdown
    dropped = metrics.connections_dropped
    app.extensions["framewire.dropped"] = lambda reason: dropped.labels(
        config.transport, reason
    ).inc()
    return app


def _json_errors(app: Flask) -> None:
    """Answer 404, 405, 500 (every HTTP error) and unknown cameras in JSON."""

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response | tuple[Response, int]:
        if exc.response is not None:  # a route's own response
            return exc.response
        reason = (exc.name or "error").lower().replace(" ", "_")
        return jsonify(error=reason, detail=exc.description), exc.code or 500

    @app.errorhandler(CameraNotFound)
    def camera_not_found(exc: CameraNotFound) -> tuple[Response, int]:
        return jsonify(error=exc.reason, detail=exc.detail), 404
