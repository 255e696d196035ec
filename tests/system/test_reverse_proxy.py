"""deploy/nginx/framewire.conf in a real nginx, over TLS, in front of real receivers.

The repo's file is included as it is, but for what a test must change: the listen ports (on
the loopback), the receivers' ports in its upstream blocks, and the certificate paths (a
self-signed certificate made here with openssl). The nginx.conf around it only holds what
the distribution's own nginx.conf would (events, temporary paths, logs). Both server blocks
share one listen port, told apart by host name, as on 443 in production.
"""

from __future__ import annotations

import http.client
import itertools
import os
import shutil
import signal
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import requests

from framewire.frame import Frame
from framewire.transports import http as http_wire
from framewire.transports.http import HEADER_SEQ
from framewire_bench.stack import (
    RedisServer,
    Service,
    Services,
    StackError,
    framewire_command,
    free_ports,
    wait_until,
)
from helpers import decode, make_jpeg, post_frame

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "deploy" / "nginx" / "framewire.conf"
HTTP_HOST = "http-viewer.example.org"
REDIS_HOST = "redis-viewer.example.org"
MAX_BODY = 2 * 1024 * 1024  # the receivers' --max-body (default)
CAMERA = "cam0"
# Nothing reaches a viewer but the frames the test posts: no re-sent last frame, no "no
# signal" picture while the test runs (so a proxy holding back a part would hold it for good).
QUIET = ("--keepalive", "60", "--stale-after", "60")
PART_TIMEOUT = 10.0  # seconds: one part through the proxy on a loaded machine takes < 0.1
SEQ = itertools.count(1)  # the frames' sequence numbers, rising across the module's tests


def nginx_binary() -> str:
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )
    if found is None:
        pytest.fail("nginx is missing: run `make test`, which installs it (Debian: nginx)")
    return found


def for_test(text: str, https: int, plain: int, upstreams: tuple[int, int], tls: Path) -> str:
    """The repo's config with the test's ports and certificate, and nothing else changed."""
    changes = {
        "listen 443 ssl;": (f"listen 127.0.0.1:{https} ssl;", 2),
        "listen 80;": (f"listen 127.0.0.1:{plain};", 1),
        "server 127.0.0.1:8001;": (f"server 127.0.0.1:{upstreams[0]};", 1),
        "server 127.0.0.1:8002;": (f"server 127.0.0.1:{upstreams[1]};", 1),
        "/etc/nginx/tls/fullchain.pem;": (f"{tls / 'cert.pem'};", 2),
        "/etc/nginx/tls/privkey.pem;": (f"{tls / 'key.pem'};", 2),
    }
    for old, (new, count) in changes.items():
        found = text.count(old)
        assert found == count, f"{CONF.name} has {found} x {old!r}, not {count}: adapt this test"
        text = text.replace(old, new)
    return text


def wrapper(directory: Path) -> str:
    """An nginx.conf that includes the test's copy of the repo's file in its http block."""
    # Run as root (a CI container), nginx would start its worker as nobody, which cannot
    # enter the test's temporary directory.
    user = "user root;\n" if os.geteuid() == 0 else ""
    paths = "\n".join(
        f"    {kind}_temp_path {directory / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"{user}worker_processes 1;\n"
        "events { worker_connections 512; }\n"
        "http {\n"
        f"    access_log {directory / 'access.log'};\n"
        f"{paths}\n"
        f"    include {directory / 'framewire.conf'};\n"
        "}\n"
    )


def self_signed(directory: Path) -> Path:
    """cert.pem and key.pem in `directory`, valid for 127.0.0.1 and both host names."""
    key, cert = directory / "key.pem", directory / "cert.pem"
    names = f"subjectAltName=IP:127.0.0.1,DNS:{HTTP_HOST},DNS:{REDIS_HOST}"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-nodes", "-days", "2", "-subj", "/CN=framewire-test"),
            *("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-addext", names),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return directory


@dataclass
class Proxy:
    """nginx on `https` and `plain` in front of the two receivers; `tls` holds its cert."""

    nginx: Service
    https: int
    plain: int
    tls: Path
    http_receiver: Service
    redis_receiver: Service
    session: requests.Session

    @property
    def ca(self) -> str:
        """The certificate to trust (per request: REQUESTS_CA_BUNDLE would win over a
        session's `verify`)."""
        return str(self.tls / "cert.pem")

    def get(self, host: str, path: str, **kwargs: object) -> requests.Response:
        """GET `path` of `host`'s server through the proxy, over TLS (the certificate checked)."""
        return self.session.get(
            f"https://127.0.0.1:{self.https}{path}",
            headers={"Host": host},
            timeout=10,
            verify=self.ca,
            **kwargs,
        )

    def post_frame(self, jpeg: bytes, seq: int) -> requests.Response:
        """POST a frame through the proxy over TLS, as a sender on another machine would."""
        headers = http_wire.headers(Frame(CAMERA, seq, time.time_ns(), jpeg))
        return self.session.post(
            f"https://127.0.0.1:{self.https}/frames",
            data=jpeg,
            headers={**headers, "Host": HTTP_HOST},
            timeout=10,
            verify=self.ca,
        )

    def connection(self) -> http.client.HTTPSConnection:
        """A raw HTTPS connection to the proxy (http.client's read1 hands bytes over as they
        come, where requests waits for whole chunks)."""
        context = ssl.create_default_context(cafile=self.ca)
        return http.client.HTTPSConnection(
            "127.0.0.1", self.https, context=context, timeout=PART_TIMEOUT
        )


def stop_nginx(nginx: Service) -> None:
    """SIGTERM (nginx's fast shutdown: open streams closed); its worker too if it hangs."""
    proc = nginx.proc
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            # Not yet reaped, so its process group (start_new_session) is still its own.
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise StackError("nginx ignored SIGTERM for 10 s") from None


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    directory = tmp_path_factory.mktemp("reverse-proxy")
    binary = nginx_binary()
    tls = self_signed(directory)
    redis = RedisServer(log_path=directory / "redis.log")
    redis.start()
    services = Services(directory)  # our environment: the worktree's PYTHONPATH, if any
    nginx: Service | None = None
    session = requests.Session()
    try:
        http_port, redis_port, https, plain = free_ports(4)
        receivers = []
        for kind, port, extra in (
            ("http", http_port, ()),
            ("redis", redis_port, ("--redis-url", redis.url)),
        ):
            command = [*framewire_command(), f"{kind}-receiver", "--bind", f"127.0.0.1:{port}"]
            url = f"http://127.0.0.1:{port}"
            receivers.append(
                services.start(f"{kind}-receiver", [*command, *QUIET, *extra], url=url)
            )
        for receiver in receivers:  # started together, waited for in turn
            receiver.wait_ready("/healthz")

        (directory / "framewire.conf").write_text(
            for_test(CONF.read_text(), https, plain, (http_port, redis_port), tls)
        )
        (directory / "nginx.conf").write_text(wrapper(directory))
        # In the foreground, its pid file in the test's directory, its error log in nginx.log.
        settings = f"daemon off; pid {directory / 'nginx.pid'}; error_log stderr notice;"
        nginx = Service.start(
            "nginx",
            [binary, "-p", f"{directory}/", "-c", str(directory / "nginx.conf"), "-g", settings],
            directory / "nginx.log",
        )
        found = Proxy(nginx, https, plain, tls, *receivers, session)

        def through() -> bool:
            nginx.check()
            return all(found.get(host, "/healthz").ok for host in (HTTP_HOST, REDIS_HOST))

        wait_until(through, what="both receivers' /healthz through nginx")
        yield found
    finally:
        session.close()
        if nginx is not None:
            stop_nginx(nginx)
        services.stop_all()
        redis.stop()


def test_the_pages_answer_through_tls_each_from_its_receiver(proxy: Proxy) -> None:
    for host, transport in ((HTTP_HOST, "http"), (REDIS_HOST, "redis")):
        page = proxy.get(host, "/")
        assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
        assert page.headers["Server"] == "nginx"  # server_tokens off: no version
        assert proxy.get(host, "/stats").json()["transport"] == transport


def test_plain_http_redirects_to_https(proxy: Proxy) -> None:
    response = requests.get(
        f"http://127.0.0.1:{proxy.plain}/stream.mjpg?width=320",
        headers={"Host": REDIS_HOST},
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 301
    assert response.headers["Location"] == f"https://{REDIS_HOST}/stream.mjpg?width=320"


def test_a_snapshot_through_the_proxy_is_the_receivers_jpeg(proxy: Proxy) -> None:
    seq = next(SEQ)
    posted = proxy.post_frame(make_jpeg(320, 240, seed=seq), seq)
    assert posted.status_code == 204, posted.text
    wait_until(
        lambda: proxy.get(HTTP_HOST, "/snapshot.jpg").headers.get(HEADER_SEQ) == str(seq),
        what="the posted frame's snapshot",
    )
    snapshot = proxy.get(HTTP_HOST, f"/snapshot/{CAMERA}.jpg")
    assert snapshot.status_code == 200 and snapshot.headers["Content-Type"] == "image/jpeg"
    assert decode(snapshot.content).shape == (240, 320, 3)


class Parts:
    """The parts of an MJPEG response read from a raw connection: (headers, body) each."""

    def __init__(self, response: http.client.HTTPResponse) -> None:
        content_type = response.getheader("Content-Type", "")
        assert content_type.startswith("multipart/x-mixed-replace"), content_type
        self.response = response
        self.boundary = b"--" + content_type.split("boundary=")[1].encode()
        self.buffer = b""

    def next(self) -> tuple[dict[str, str], bytes]:
        """The next whole part: its boundary and the next one have both arrived."""
        while True:
            start = self.buffer.find(self.boundary)
            end = self.buffer.find(self.boundary, start + len(self.boundary))
            if start >= 0 and end >= 0:
                part = self.buffer[start + len(self.boundary) : end]
                self.buffer = self.buffer[end:]
                head, _, body = part.partition(b"\r\n\r\n")
                if body:
                    lines = head.decode().strip().splitlines()
                    headers = dict(line.split(": ", 1) for line in lines)
                    return headers, body.removesuffix(b"\r\n")
                continue
            try:
                chunk = self.response.read1(65536)
            except TimeoutError:
                raise AssertionError(
                    f"no whole part within {PART_TIMEOUT:g} s: does the proxy buffer the stream?"
                ) from None
            assert chunk, "the stream ended"
            self.buffer += chunk


@pytest.mark.parametrize("path", ["/stream.mjpg", f"/stream/{CAMERA}.mjpg"])
def test_a_stream_hands_each_part_over_at_once(proxy: Proxy, path: str) -> None:
    """Lock-step: frame k is posted only once part k-1 has arrived whole through nginx, and
    the receiver sends nothing else meanwhile (QUIET). A proxy that held back any byte of a
    part until more came (response buffering) would stall this at the first part."""
    receiver = proxy.http_receiver.url
    first = next(SEQ)
    assert post_frame(receiver, CAMERA, make_jpeg(320, 240, seed=first), seq=first).ok
    connection = proxy.connection()
    try:
        connection.request("GET", path, headers={"Host": HTTP_HOST})
        response = connection.getresponse()
        assert response.status == 200
        parts = Parts(response)
        bodies, started = [], time.monotonic()
        for seq in [first] + [next(SEQ) for _ in range(5)]:
            if seq > first:
                assert post_frame(receiver, CAMERA, make_jpeg(320, 240, seed=seq), seq=seq).ok
            headers, body = parts.next()
            while int(headers.get(HEADER_SEQ, "0")) < seq:  # the newest frame when we came
                headers, body = parts.next()
            assert int(headers[HEADER_SEQ]) == seq and headers["Content-Type"] == "image/jpeg"
            assert decode(body).shape == (240, 320, 3)
            bodies.append(body)
        assert len(set(bodies)) == len(bodies), "the same picture twice"
        assert time.monotonic() - started < PART_TIMEOUT
    finally:
        connection.close()


def solid(bgr: tuple[int, int, int]) -> bytes:
    """A 320x240 JPEG of one colour."""
    ok, buffer = cv2.imencode(".jpg", np.full((240, 320, 3), bgr, np.uint8))
    assert ok
    return buffer.tobytes()


def shows(jpeg: bytes, bgr: tuple[int, int, int]) -> bool:
    """Whether the middle of the picture is of colour `bgr` (labels are drawn at the edges)."""
    image = decode(jpeg)
    height, width = image.shape[:2]
    middle = image[height // 2 - 40 : height // 2 + 40, width // 2 - 40 : width // 2 + 40]
    return bool(np.abs(middle.mean(axis=(0, 1)) - bgr).max() < 60)


def test_the_grid_hands_each_part_over_at_once(proxy: Proxy) -> None:
    """The grid composes a part on each tick (once a second here), whatever the viewer does.
    As each part arrives whole, the test posts a new colour, which the next tick's part
    shows. A proxy holding back a part's end until the next part came would hand each part
    over only after the next tick, too late for the colour: its next part would always show
    the colour before. (The first round may be late by chance, if the stream opened just
    before a tick: the rounds after it start on a tick.)"""
    receiver = proxy.http_receiver.url
    colours = itertools.cycle([(0, 0, 255), (255, 0, 0)])
    seq = next(SEQ)
    assert post_frame(receiver, CAMERA, solid(next(colours)), seq=seq).ok
    connection = proxy.connection()
    try:
        connection.request("GET", "/grid.mjpg?fps=1", headers={"Host": HTTP_HOST})
        parts = Parts(connection.getresponse())
        parts.next()
        for _ in range(4):
            colour, seq = next(colours), next(SEQ)
            assert post_frame(receiver, CAMERA, solid(colour), seq=seq).ok
            headers, body = parts.next()
            assert headers["Content-Type"] == "image/jpeg"
            if shows(body, colour):
                return
        pytest.fail("no grid part showed the frame posted as the part before it arrived")
    finally:
        connection.close()


def test_a_body_over_max_body_is_refused_by_nginx(proxy: Proxy) -> None:
    """client_max_body_size is the receivers' --max-body: a body of exactly --max-body reaches
    the receiver (which judges it: not a JPEG, 400); one byte more never leaves nginx (413)."""
    url = f"https://127.0.0.1:{proxy.https}/frames"
    headers = {"Content-Type": "image/jpeg", "Host": HTTP_HOST}
    at_cap = proxy.session.post(
        url, data=b"\0" * MAX_BODY, headers=headers, timeout=10, verify=proxy.ca
    )
    assert at_cap.status_code == 400 and at_cap.headers["Content-Type"] == "application/json"

    # Only the headers: nginx answers from Content-Length, before any of the body.
    connection = proxy.connection()
    try:
        connection.putrequest("POST", "/frames", skip_host=True)
        for name, value in {**headers, "Content-Length": str(MAX_BODY + 1)}.items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        assert response.status == 413
        assert response.getheader("Content-Type") == "text/html"  # nginx's page, not the app's
        assert b"413 Request Entity Too Large" in response.read()
    finally:
        connection.close()
