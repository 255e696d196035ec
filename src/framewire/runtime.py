"""Process-wide set-up every service shares: malloc tuning, quiet native logs, stop signals."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
from collections.abc import Callable, Iterable
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
MALLOC_ARENAS = 2


def tune_malloc() -> None:
    """Keep glibc from handing decode buffers back to the OS after every frame.

    Without this, each 720p decode maps fresh pages (about 1,300 page faults)
    and takes twice as long. Same effect as MALLOC_MMAP_THRESHOLD_ and
    MALLOC_TRIM_THRESHOLD_ in the environment, but needs no wrapper. At most
    MALLOC_ARENAS arenas (MALLOC_ARENA_MAX): each thread that decodes would
    otherwise get an arena of its own that keeps what it freed (8 request
    threads: +50 MB), so frames can be decoded on the thread that received
    them, with no hand-off to decoder threads.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        m_trim_threshold, m_mmap_threshold, m_arena_max = -1, -3, -8
        libc.mallopt(m_mmap_threshold, 32 * 1024 * 1024)
        libc.mallopt(m_trim_threshold, 256 * 1024 * 1024)
        libc.mallopt(m_arena_max, MALLOC_ARENAS)
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


def quiet_native_logs(verbose: bool = False) -> None:
    """Silence OpenCV's and FFmpeg's own stderr lines (framewire logs each state change once).

    A camera that is down makes FFmpeg print about two lines per reconnect
    attempt; `verbose` (log level debug) lets them through for diagnosis.
    Must run before the first capture is opened.
    """
    if verbose:
        return
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
    import cv2

    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # cv2 may be loaded already


Handler = Callable[[int, FrameType | None], Any]


def on_stop_signals(
    callback: Callable[[], None], signals: Iterable[int] = STOP_SIGNALS, chain: bool = False
) -> None:
    """Call `callback` on each of `signals`; with `chain`, then the handler it replaced."""
    for signum in signals:
        previous = signal.getsignal(signum)

        def handle(number: int, frame: FrameType | None, previous: Any = previous) -> None:
            callback()
            if chain and callable(previous):
                previous(number, frame)

        signal.signal(signum, handle)
