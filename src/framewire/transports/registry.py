"""Every transport, by name: the one list the config, the CLI, the sender and the app read.

Adding a transport is one module (its codec, sides, settings and `Transport`) plus one line here.
"""

from __future__ import annotations

from framewire.transports import Transport, http_plug, redis_plug

TRANSPORTS: dict[str, Transport] = {
    t.name: t
    for t in (
        http_plug.TRANSPORT,
        redis_plug.TRANSPORT,
    )
}
