"""The physical limit of a frame: encode, its bytes over loopback TCP, decode, in one process.

No transport can deliver a frame faster; the bench reports every received p50
as its distance above this.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from typing import Any

from framewire_bench.codecs import (
    FACTORIES,
    FRAMEWIRE_LIBRARIES,
    QUALITY,
    WARMUP_FRAMES,
    frames,
    median_ms,
)


def _receive_exactly(sock: socket.socket, size: int) -> bytes:
    buffer = bytearray(size)
    view, got = memoryview(buffer), 0
    while got < size:
        read = sock.recv_into(view[got:], size - got)
        if not read:
            raise ConnectionError("the loopback peer closed the connection")
        got += read
    return bytes(buffer)


def _loopback_pair() -> tuple[socket.socket, socket.socket]:
    """A connected TCP pair over 127.0.0.1, Nagle off on both ends like the transports."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        peer, _ = server.accept()
    for end in (client, peer):
        end.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return client, peer


def physical_limit(
    width: int, height: int, count: int = 50, quality: int = QUALITY
) -> dict[str, Any]:
    """Median ms of encode, loopback transfer and decode of one frame, and of all three.

    The main thread encodes a frame and sends its length and bytes; a
    receiving thread reads them all, decodes them and answers one byte; the
    main thread's clock stops at that byte. `transfer_ms` is from the end of
    the encode to the last byte received, `total_ms` the whole chain.
    """
    used = {step: FRAMEWIRE_LIBRARIES[step] for step in ("encode", "decode")}
    encode = FACTORIES[used["encode"]](quality).encode
    decode = FACTORIES[used["decode"]](quality).decode
    images = frames(width, height, count + WARMUP_FRAMES)
    marks: list[tuple[float, float]] = []
    failure: list[BaseException] = []
    sender, receiver = _loopback_pair()

    def receive() -> None:
        try:
            for _ in images:
                (size,) = struct.unpack("!I", _receive_exactly(receiver, 4))
                jpeg = _receive_exactly(receiver, size)
                received = time.perf_counter()
                decode(jpeg)
                marks.append((received, time.perf_counter()))
                receiver.sendall(b"\x00")
        except BaseException as exc:  # reported by the main thread
            failure.append(exc)
            receiver.close()

    thread = threading.Thread(target=receive, name="physical-limit", daemon=True)
    thread.start()
    steps: dict[str, list[float]] = {"encode": [], "transfer": [], "decode": [], "total": []}
    try:
        for index, image in enumerate(images):
            started = time.perf_counter()
            jpeg = encode(image)
            encoded = time.perf_counter()
            sender.sendall(struct.pack("!I", len(jpeg)) + jpeg)
            _receive_exactly(sender, 1)
            finished = time.perf_counter()
            received, decoded = marks[index]
            if index >= WARMUP_FRAMES:
                steps["encode"].append(encoded - started)
                steps["transfer"].append(received - encoded)
                steps["decode"].append(decoded - received)
                steps["total"].append(finished - started)
    except (OSError, IndexError) as exc:
        raise RuntimeError(f"the loopback round trip failed: {failure or exc}") from exc
    finally:
        thread.join(timeout=10)
        sender.close()
        receiver.close()
    figures: dict[str, Any] = {f"{k}_ms": median_ms(v) for k, v in steps.items()}
    return {**figures, "libraries": used}
