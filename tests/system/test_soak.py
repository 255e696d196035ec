"""A soak run: the whole stack for SOAK_SECONDS (60 in `make test`, longer with `make soak`).

Reports each service's memory and each path's delivered fps and latency over
time, and fails if memory or latency grows: latest frame wins means nothing
may pile up.
"""

from __future__ import annotations

import os
import time

import pytest
import requests

from conftest import RedisServer, Service, Services, metric_value, wait_until
from helpers import Viewer

pytestmark = pytest.mark.soak  # `make test` (CI) runs it; `-m "not soak"` skips it

SECONDS = float(os.environ.get("SOAK_SECONDS", "60"))
SAMPLES = 6


def totals(receiver: Service, transport: str) -> dict[str, float]:
    """Counts and sums of the capture-to-received and capture-to-served histograms."""
    text = requests.get(f"{receiver.url}/metrics", timeout=5).text
    out = {}
    for stage in ("received", "served"):
        for part in ("count", "sum"):
            out[f"{stage}_{part}"] = metric_value(
                text,
                f"framewire_frame_latency_seconds_{part}",
                camera="cam0",
                transport=transport,
                stage=stage,
            )
    return out


def window(now: dict[str, float], before: dict[str, float], seconds: float) -> dict[str, float]:
    """fps and mean latencies (ms) between two readings."""
    frames = now["received_count"] - before["received_count"]
    served = now["served_count"] - before["served_count"]
    return {
        "fps": frames / seconds,
        "received_ms": (now["received_sum"] - before["received_sum"]) / max(frames, 1) * 1000,
        "served_ms": (now["served_sum"] - before["served_sum"]) / max(served, 1) * 1000,
    }


def test_soak(services: Services, redis_server: RedisServer) -> None:
    http, red, sender = services.stack(redis_server, sender_args=())  # 1280x720
    processes = {"sender": sender, "http-receiver": http, "redis-receiver": red}
    receivers = {"http": http, "redis": red}
    viewers = []
    for receiver in receivers.values():
        wait_until(
            lambda r=receiver: requests.get(f"{r.url}/readyz", timeout=5).ok,
            what=f"{receiver.name} ready",
        )
        viewers.append(Viewer(f"{receiver.url}/stream.mjpg"))  # so the served path runs too
        viewers[-1].start()

    step = SECONDS / SAMPLES
    rows = []
    before = {t: totals(r, t) for t, r in receivers.items()}
    started = time.monotonic()
    for sample in range(1, SAMPLES + 1):
        wait_until(
            lambda s=sample: time.monotonic() - started >= s * step,
            interval=0.2,
            timeout=SECONDS,
            what="the next sample",
        )
        row = {"rss_mib": {name: p.rss_kib() // 1024 for name, p in processes.items()}}
        for transport, receiver in receivers.items():
            now = totals(receiver, transport)
            row[transport] = window(now, before[transport], step)
            before[transport] = now
        rows.append(row)
        print(
            f"t={sample * step:5.0f} s  RSS MiB {row['rss_mib']}  "
            + "  ".join(
                f"{t}: {row[t]['fps']:.1f} fps, received {row[t]['received_ms']:.2f} ms, "
                f"served {row[t]['served_ms']:.2f} ms"
                for t in receivers
            ),
            flush=True,
        )
    for viewer in viewers:
        viewer.close()

    warm, last = rows[1], rows[-1]  # the first window includes start-up
    for name, mib in last["rss_mib"].items():
        assert mib <= warm["rss_mib"][name] + 25, f"{name} grew from {warm['rss_mib'][name]} MiB"
    for transport in receivers:
        assert last[transport]["fps"] >= 25, f"{transport}: {last[transport]['fps']:.1f} fps"
        assert last[transport]["received_ms"] <= warm[transport]["received_ms"] + 10
