"""HttpSender's connection against real listeners: through a real HTTP proxy (forwarding, and a
CONNECT tunnel to a TLS replica named by its Service), NO_PROXY with a network, a keep-alive
connection the receiver closed while idle, and the form body it posts."""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import socket
import socketserver
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from conftest import Services, free_port, wait_until
from framewire.transports.http import HttpSender
from helpers import make_jpeg
from test_scale_out import TLSReplica, issue, openssl

TOKEN = "sender-t0ken-5d2e"
PROXY_PASSWORD = "proxy-pw-77b1"


class Proxy:
    """A real HTTP proxy on loopback: forwards absolute-form requests and opens CONNECT
    tunnels, recording each request line and its Proxy-Authorization."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []
        proxy = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                while line := self.rfile.readline():
                    method, target, _ = line.decode().split()
                    fields: dict[str, str] = {}
                    while (field := self.rfile.readline().decode()) not in ("\r\n", ""):
                        name, _, value = field.partition(":")
                        fields[name.strip().lower()] = value.strip()
                    proxy.seen.append(
                        (f"{method} {target}", fields.pop("proxy-authorization", None))
                    )
                    if method == "CONNECT":
                        return self.tunnel(target)
                    self.forward(method, target, fields)

            def tunnel(self, target: str) -> None:
                host, _, port = target.rpartition(":")
                upstream = socket.create_connection((host, int(port)), timeout=5)
                self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                relay = threading.Thread(target=copy, args=(upstream, self.connection), daemon=True)
                relay.start()
                copy(self.connection, upstream)
                relay.join(5)

            def forward(self, method: str, target: str, fields: dict[str, str]) -> None:
                url = urlsplit(target)
                body = self.rfile.read(int(fields.get("content-length", 0)))
                upstream = http.client.HTTPConnection(url.hostname, url.port, timeout=5)
                upstream.request(method, url.path, body, fields)
                answer = upstream.getresponse()
                content = answer.read()
                self.wfile.write(f"HTTP/1.1 {answer.status} {answer.reason}\r\n".encode())
                for name, value in answer.getheaders():
                    if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                        self.wfile.write(f"{name}: {value}\r\n".encode())
                self.wfile.write(f"Content-Length: {len(content)}\r\n\r\n".encode() + content)
                upstream.close()

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def copy(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
        sink.shutdown(socket.SHUT_WR)


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    server = Proxy()
    yield server
    server.close()


def clear_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


def stats_seq(url: str, camera: str) -> int:
    connection = http.client.HTTPConnection(urlsplit(url).netloc, timeout=5)
    connection.request("GET", "/stats")
    cameras = json.loads(connection.getresponse().read())["cameras"]
    return (cameras.get(camera) or {}).get("seq", 0)


def test_http_through_a_proxy_with_its_credentials(
    services: Services, proxy: Proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver = services.receiver("http", "--token", TOKEN)
    clear_proxies(monkeypatch)
    host = urlsplit(proxy.url).netloc
    monkeypatch.setenv("HTTP_PROXY", f"http://framewire:{PROXY_PASSWORD}@{host}")
    sender = HttpSender(f"{receiver.url}/frames", TOKEN, camera="proxied")
    monkeypatch.delenv("HTTP_PROXY")  # read once, at construction
    for _ in range(3):
        sender.send(make_jpeg())
    wait_until(lambda: stats_seq(receiver.url, "proxied") == 3, what="seq 3 through the proxy")
    expected = "Basic " + base64.b64encode(f"framewire:{PROXY_PASSWORD}".encode()).decode()
    assert proxy.seen == [(f"POST {receiver.url}/frames", expected)] * 3
    sender.close()


def test_https_through_a_connect_tunnel_as_the_service_name(
    tmp_path: Path, proxy: Proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca = tmp_path / "ca"
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", ca.with_suffix(".key"), "-out", ca.with_suffix(".pem"),
            "-days", "1", "-subj", "/CN=framewire test CA")  # fmt: skip
    port = free_port()
    replica = TLSReplica("127.0.0.1", port, *issue(ca, tmp_path, "svc", "svc.framewire.test"))
    clear_proxies(monkeypatch)
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    try:
        sender = HttpSender(
            f"https://127.0.0.1:{port}/frames",
            TOKEN,
            ca_cert=str(ca.with_suffix(".pem")),
            server_name="svc.framewire.test",
        )
        for _ in range(3):
            sender.send(make_jpeg())
        assert replica.frames == 3
        assert replica.sni == {"svc.framewire.test"}
        assert replica.hosts == {f"svc.framewire.test:{port}"}
        assert proxy.seen == [(f"CONNECT 127.0.0.1:{port}", None)]  # one kept-alive tunnel
        sender.close()
    finally:
        replica.close()


def test_no_proxy_networks_go_direct(services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    receiver = services.receiver("http")
    clear_proxies(monkeypatch)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")  # nobody listens
    monkeypatch.setenv("NO_PROXY", "example.test, 127.0.0.0/8")
    sender = HttpSender(f"{receiver.url}/frames", camera="direct")
    sender.send(make_jpeg())
    wait_until(lambda: stats_seq(receiver.url, "direct") == 1, what="seq 1, sent directly")
    sender.close()


class ClosingListener:
    """HTTP/1.1 that answers 204 and then closes the connection without saying so, as a
    receiver does to a keep-alive connection idle past its timeout."""

    def __init__(self) -> None:
        self.frames = 0
        self.closed = 0
        listener = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                listener.frames += 1
                self.send_response(204)
                self.end_headers()
                self.close_connection = True

            def finish(self) -> None:
                super().finish()
                self.connection.close()
                listener.closed += 1

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/frames"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_connection_the_receiver_closed_while_idle_is_replaced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clear_proxies(monkeypatch)
    listener = ClosingListener()
    try:
        sender = HttpSender(listener.url)
        for sent in range(1, 4):
            sender.send(make_jpeg())
            wait_until(lambda sent=sent: listener.closed == sent, what="the listener closing")
        assert listener.frames == 3
        sender.close()
    finally:
        listener.close()
