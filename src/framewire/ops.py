"""The operations routes: /healthz (alive), /readyz (a fresh frame), /metrics (Prometheus)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from framewire.hub import Hub


def ops_blueprint(hub: Hub) -> Blueprint:
    """/healthz, /readyz (`?camera=<id>` for one camera) and /metrics."""
    bp = Blueprint("ops", __name__)

    @bp.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok")

    @bp.get("/readyz")
    def readyz() -> tuple[Response, int]:
        camera = request.args.get("camera")
        channels = [hub.lookup(camera)] if camera else hub.channels()
        ages = {c.camera: c.age() for c in channels}
        ready = any(c.fresh() for c in channels)
        body = jsonify(ready=ready, stale_after=hub.stale_after, age_seconds=ages)
        return body, 200 if ready else 503

    @bp.get("/metrics")
    def metrics() -> Response:
        # content_type, not mimetype: Flask would append a second charset.
        return Response(generate_latest(hub.metrics.registry), content_type=CONTENT_TYPE_LATEST)

    return bp
