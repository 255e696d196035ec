"""The operations routes: /healthz (alive), /readyz (a fresh frame), /metrics (Prometheus),
/latencies (each recent frame's own latency, for exact quantiles), /owned (this replica's
member key and live cameras, for the other replicas)."""

from __future__ import annotations

from collections.abc import Mapping

from flask import Blueprint, Response, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from framewire.hub import Hub
from framewire.metrics import LatencyLog


def ops_blueprint(hub: Hub) -> Blueprint:
    """/healthz, /readyz (`?camera=<id>` for one camera), /metrics, /latencies and /owned."""
    bp = Blueprint("ops", __name__)

    @bp.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok")

    @bp.get("/readyz")
    def readyz() -> tuple[Response, int]:
        camera = request.args.get("camera")
        channels = [hub.lookup(camera)] if camera else hub.channels()
        ages = {c.camera: c.slot.age() for c in channels}
        ready = any(c.slot.live() for c in channels)
        body = jsonify(ready=ready, stale_after=hub.settings.stale_after, age_seconds=ages)
        return body, 200 if ready else 503

    @bp.get("/owned")
    def owned() -> Response:
        """This replica's member key (None when alone) and the cameras it holds a live
        channel for: what the other replicas read to know it (transports/http_members.py)."""
        me = hub.owners.me
        cameras = [c.camera for c in hub.channels() if c.slot.live()]
        return jsonify(key=me.key if me else None, cameras=cameras)

    @bp.get("/metrics")
    def metrics() -> Response:
        # content_type, not mimetype: Flask would append a second charset.
        return Response(
            generate_latest(hub.settings.metrics.registry), content_type=CONTENT_TYPE_LATEST
        )

    @bp.get("/latencies")
    def latencies() -> Response | tuple[Response, int]:
        """`?camera=<id>&stage=received|served&since=<index>`: the frames still held from
        `since` on (capture ns, latency seconds), `next` index, and `lost` (overwritten)."""
        channel = hub.lookup(request.args.get("camera"))
        return latencies_answer(
            channel.figures.latency_logs, channel.camera, hub.settings.transport
        )

    return bp


def latencies_answer(
    logs: Mapping[str, LatencyLog], camera: str, transport: str
) -> Response | tuple[Response, int]:
    """The /latencies answer from one camera's logs (by stage), for the request's `stage`
    and `since`; also what the article's baseline (bench/article.py) serves."""
    stage = request.args.get("stage", "received")
    if stage not in logs:
        detail = f"stage must be one of {', '.join(logs)}"
        return jsonify(error="bad_stage", detail=detail), 400
    since = request.args.get("since", "0")
    if not since.isdigit() or len(since) > 18:
        return jsonify(error="bad_since", detail="since must be a frame index >= 0"), 400
    log = logs[stage].since(int(since))
    return jsonify(camera=camera, stage=stage, transport=transport, **log)
