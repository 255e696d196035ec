"""The viewer routes both receivers serve: the page, /stats, MJPEG streams and snapshots.

The bare routes mean the default camera (Hub.default: 404 `no_camera` before
any); `/stream/<camera>.mjpg` and `/snapshot/<camera>.jpg` name one. A
camera the hub does not know is a 404 `unknown_camera` (viewers never
create cameras). A stream may ask for a variant (`width`, `fps`, `quality`,
`strip` from the sets in variants.py; anything else is a 400 `bad_variant`),
a snapshot for its `strip` (default: the receiver's --strip);
`/grid.mjpg` is every camera in one mosaic; `/view/<camera>` is the page for watching one.
Errors are JSON, answered by the app's handlers or here.

Replicas (`--advertise-url`): every replica serves every camera. A camera
another replica owns (and this one holds no fresh frame of) is relayed from
its owner (relay.py): the same path and query, the viewer's credentials, the
owner's status, headers and parts; a stream goes on from the next owner if
its owner dies. A relayed request (relay.RELAY_HEADER) is answered here only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack
from typing import TypeVar
from urllib.parse import urlsplit

from flask import Blueprint, Response, jsonify, render_template, request

from framewire import mjpeg, variants
from framewire.channel import CameraNotFound, Channel
from framewire.frame import WireError, parse_camera
from framewire.hub import Hub
from framewire.owners import Member
from framewire.relay import RELAY_HEADER, RelayError, Upstream, passed
from framewire.seats import ViewerLimit
from framewire.transports.http import HEADER_CAPTURED_NS, HEADER_SEQ

T = TypeVar("T")


def viewer_blueprint(
    hub: Hub,
    keepalive: float,
    peer_url: str = "",
    grafana_url: str = "",
    peer_port: int = 0,
    warnings: list[str] | None = None,
) -> Blueprint:
    """/, /stats, /stream.mjpg, /snapshot.jpg and their per-camera forms.

    The page at / shows the other receiver's streams and /stats beside this
    receiver's, fetched by the browser (so /stats allows any origin). The
    peer is at `peer_url` (its public URL) when set, else at the host name
    the browser used for this page on `peer_port` (the page builds that URL
    itself, so it needs no setting behind a plain port mapping); with
    neither, the page shows this receiver alone. `grafana_url`, when set, is
    linked. `warnings` (safety.py) are shown in a banner. A still scene's last frame is
    re-sent every `keepalive` seconds.
    """
    bp = Blueprint("viewer", __name__, template_folder="templates")
    page_config = {
        "transport": hub.settings.transport,
        "peer_url": peer_url.rstrip("/"),
        "peer_port": 0 if peer_url else peer_port,
        "grafana_url": grafana_url,
    }

    @bp.get("/")
    def index() -> str:
        # No camera yet: the page waits and takes the first that appears.
        focus = hub.default() or ""
        config = {**page_config, "default_camera": focus}
        return render_template(
            "viewer.html", config=config, focus=focus, warnings=warnings or [], **page_config
        )

    @bp.get("/view/<camera>")
    def view(camera: str) -> str:
        # Any well-formed id: a camera not seen yet is "waiting" until its first frame.
        try:
            camera = parse_camera(camera)
        except WireError as exc:
            raise CameraNotFound(exc.reason, exc.detail) from None
        config = {"transport": hub.settings.transport, "camera": camera}
        return render_template(
            "watch.html",
            config=config,
            camera=camera,
            transport=hub.settings.transport,
            warnings=warnings or [],
        )

    def relayed() -> bool:
        return bool(request.headers.get(RELAY_HEADER))

    def named(camera: str | None) -> str:
        """The camera a route names (None: the default camera); CameraNotFound if invalid."""
        name = camera or hub.default()
        if name is None:
            raise CameraNotFound("no_camera", "no camera has sent a frame yet")
        try:
            return parse_camera(name)
        except WireError as exc:
            raise CameraNotFound(exc.reason, exc.detail) from None

    def query() -> str:
        return request.query_string.decode("latin-1")

    @bp.get("/stats")
    def stats() -> Response:
        response = jsonify(hub.stats(relayed()))
        response.headers["Cache-Control"] = "no-store"
        # Read by the peer receiver's page from the browser; GET only, no credentials.
        response.headers["Access-Control-Allow-Origin"] = "*"
        return response

    @bp.get("/snapshot.jpg")
    @bp.get("/snapshot/<camera>.jpg")
    def snapshot(camera: str | None = None) -> Response:
        strip = variants.parse_strip(request.args, hub.settings.strip)
        name = named(camera)
        source = hub.source(name, relayed())
        if isinstance(source, Member):
            try:
                body, status, headers = hub.relay.snapshot(
                    source, name, query(), request.headers.get("Authorization")
                )
            except RelayError as exc:
                return owner_unreachable(exc)
            return Response(body, status=status, headers=headers)
        served = hub.lookup(name).cache.get((None, None, strip))
        headers = {"Cache-Control": "no-store"}
        if served.seq is not None:
            headers[HEADER_SEQ] = str(served.seq)
            headers[HEADER_CAPTURED_NS] = str(served.captured_ns)
        return Response(
            served.jpeg,
            mimetype="image/jpeg",
            headers=headers,
            status=200 if served.seq is not None else 503,
        )

    @bp.get("/stream.mjpg")
    @bp.get("/stream/<camera>.mjpg")
    def stream(camera: str | None = None) -> Response:
        variant = variants.parse(request.args, hub.settings.strip)
        if hub.owners.shared and not relayed():
            response = relayed_stream(named(camera), variant)
        else:
            response = held_stream(
                hub.open(camera, variant.key),
                lambda channel: mjpeg.stream(channel, keepalive, variant.key, variant.fps),
            )
        response.headers["Vary"] = "Origin"
        origin = request.headers.get("Origin", "")
        if is_peer(origin, peer_url, peer_port):
            # The peer's page reads the parts with fetch() (capture times); no other site may.
            response.headers["Access-Control-Allow-Origin"] = origin
        return response

    def relayed_stream(name: str, variant: variants.Variant) -> Response:
        """A stream of a replica's camera, wherever it is served from now and next
        (Relay.follow): this replica's channel, or its owner's stream passed through."""
        auth = request.headers.get("Authorization")
        with ExitStack() as held:
            held.enter_context(hub.seat())
            source = hub.source(name)
            first: Channel | Upstream
            if isinstance(source, Member):
                try:
                    first = hub.relay.connect(source, name, query(), auth)
                except RelayError as exc:
                    return owner_unreachable(exc)
                held.callback(hub.relay.release, first.response)
                if first.response.status_code != 200:  # the owner's error, passed on
                    upstream = first.response
                    return Response(
                        upstream.content, status=upstream.status_code, headers=passed(upstream)
                    )
            else:
                first = hub.lookup(name)  # CameraNotFound when not known here
            response = Response(
                hub.relay.follow(name, variant, query(), auth, first),
                headers={"Cache-Control": "no-store"},
                content_type=mjpeg.CONTENT_TYPE,
            )
            response.call_on_close(held.pop_all().close)
        return response

    @bp.get("/grid.mjpg")
    def grid_stream() -> Response:
        fps = variants.parse_grid_fps(request.args)
        if hub.owners.shared:
            hub.tiles.auth = request.headers.get("Authorization")
        return held_stream(hub.open_grid(), lambda grid: mjpeg.grid_stream(grid, fps))

    @bp.errorhandler(variants.BadVariant)
    def bad_variant(exc: variants.BadVariant) -> tuple[Response, int]:
        return jsonify(error=exc.reason, detail=exc.detail), 400

    @bp.errorhandler(ViewerLimit)
    def viewer_limit(exc: ViewerLimit) -> tuple[Response, int]:
        return jsonify(error=exc.reason, detail=exc.detail), 503

    return bp


def owner_unreachable(exc: RelayError) -> Response:
    """503 `owner_unreachable`: the camera's owner could not be reached."""
    response = jsonify(error="owner_unreachable", detail=str(exc))
    response.status_code = 503
    return response


def held_stream(
    handle: AbstractContextManager[T], parts: Callable[[T], Iterator[bytes]]
) -> Response:
    """The MJPEG response of `parts` of what `handle` opens (a seat and a watch), let go of
    when the response closes, even if the client left before the first part was made."""
    with ExitStack() as held:
        opened = held.enter_context(handle)
        response = Response(
            parts(opened),
            headers={"Cache-Control": "no-store"},
            content_type=mjpeg.CONTENT_TYPE,
        )
        response.call_on_close(held.pop_all().close)
    return response


def is_peer(origin: str, peer_url: str, peer_port: int) -> bool:
    """Whether a browser `Origin` is the peer receiver's: its `peer_url`'s origin, or else any
    host on `peer_port` (the page finds its peer by port on the host name it was opened with)."""
    try:
        parts = urlsplit(origin)
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
        if peer_url:
            peer = urlsplit(peer_url)
            return (parts.scheme, parts.netloc) == (peer.scheme, peer.netloc)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(peer_port) and port == peer_port
