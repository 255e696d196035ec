"""URL helpers: a URL safe to log, a URL's shape checked, and `HOST:PORT` parsed.

Every transport, the client and the settings use them; none echoes a secret. Also the
proxy the environment names for a URL.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import socket
import urllib.request
from urllib.parse import urlsplit, urlunsplit

_USERINFO = re.compile(r"//([^/@\s]*)@")
REDIS_SCHEMES = ("redis", "rediss", "unix")
WEB_SCHEMES = ("http", "https")


def redact(url: str) -> str:
    """`url` with any password (or lone user token) replaced by `***`, safe to log."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return _USERINFO.sub("//***@", url)
    if parts.password is None and not parts.username:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    userinfo = f"{user}:***" if parts.password is not None else "***"
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{host}{port}"))


def parse_bind(value: str) -> tuple[str, int]:
    """`HOST:PORT` into its parts; raises ValueError with a reason."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("must be HOST:PORT with a port from 0 to 65535")
    return host.strip("[]") or "0.0.0.0", int(port)


def check_url(value: str, schemes: tuple[str, ...]) -> None:
    """Raise ValueError unless `value` is a URL of `schemes` with a host; never echoes it."""
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises ValueError for a bad port
    except ValueError:
        raise ValueError("is not a valid URL") from None
    if parts.scheme not in schemes:
        raise ValueError(f"must start with {' or '.join(s + '://' for s in schemes)}")
    if parts.scheme != "unix" and not parts.hostname:
        raise ValueError("has no host")


def check_web_url(value: str) -> None:
    """An http:// or https:// URL with a host."""
    check_url(value, WEB_SCHEMES)


def check_advertise_url(value: str) -> None:
    """An http:// or https:// URL with a host, or `auto`."""
    if value != "auto":
        check_web_url(value)


def advertised(url: str, bind: str) -> str:
    """`url`, or for `auto` http://ADDRESS:PORT: the address this host's name resolves to
    (a container's own on a compose network, a pod's in Kubernetes) and the port of `bind`."""
    if url != "auto":
        return url
    address = socket.gethostbyname(socket.gethostname())
    return f"http://{address}:{parse_bind(bind)[1]}"


def check_bind(value: str) -> None:
    """`HOST:PORT`."""
    parse_bind(value)


def proxy_for(url: str) -> str:
    """The proxy the environment names for `url`, or "": HTTP(S)_PROXY and ALL_PROXY, unless
    NO_PROXY matches the host (a name or its domain, with or without the port, or a network
    such as 10.0.0.0/8 holding its address), as requests read them."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    no_proxy = os.environ.get("no_proxy") or os.environ.get("NO_PROXY") or ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for entry in no_proxy.replace(" ", "").split(","):
        if address is not None and "/" in entry:
            with contextlib.suppress(ValueError):
                if address in ipaddress.ip_network(entry, strict=False):
                    return ""
    port = f":{parts.port}" if parts.port else ""
    if not host or urllib.request.proxy_bypass_environment(f"{host}{port}"):
        return ""
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(parts.scheme) or proxies.get("all") or ""
    return proxy if "://" in proxy or not proxy else f"http://{proxy}"
