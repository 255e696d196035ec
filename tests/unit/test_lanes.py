"""Decode lanes in process: one key never runs on two threads at once."""

from __future__ import annotations

import threading
import time

from framewire.lanes import Lanes


def test_lanes_never_run_one_key_on_two_threads() -> None:
    """Four threads, one key: items of one key run one after another, never at once."""
    running, overlaps, done = [0], [0], threading.Event()
    lock = threading.Lock()

    def handle(_key: str, item: int) -> None:
        with lock:
            running[0] += 1
            overlaps[0] += running[0] > 1
        time.sleep(0.001)  # hold the key while others arrive
        with lock:
            running[0] -= 1
        if item == 199:
            done.set()

    lanes: Lanes[int] = Lanes("test", 4, handle)
    lanes.start()
    try:
        for item in range(200):
            lanes.put("cam", item)
        assert done.wait(10), "the newest item was never handled"
        assert overlaps[0] == 0
    finally:
        assert lanes.stop()
