"""Run your own algorithm on the frames framewire carries, read from Redis.

    python docs/examples/run_algorithm.py [COUNT] [CAMERA ...]

Takes the newest frame of each camera (all cameras when none is named) as a
BGR numpy image and runs `my_algorithm` on it: a frame that arrives while the
algorithm is busy replaces the waiting one, so a slow algorithm never falls
behind. FRAMEWIRE_REDIS_URL says where Redis is (the CLI's variable).
"""

import os
import sys

import cv2
import numpy as np

from framewire.client import RedisReceiver


def my_algorithm(image: np.ndarray) -> float:
    """Your algorithm: here the share of edge pixels in the picture."""
    edges = cv2.Canny(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), 100, 200)
    return float(np.count_nonzero(edges)) / edges.size


def main(count: int, cameras: list[str]) -> None:
    url = os.environ.get("FRAMEWIRE_REDIS_URL", "redis://127.0.0.1:6379/0")
    with RedisReceiver(url, cameras) as frames:
        for n, received in enumerate(frames, start=1):
            edges = my_algorithm(received.image)
            print(
                f"{received.camera} seq {received.seq}: {edges:.1%} edges,"
                f" {received.latency_seconds * 1000:.1f} ms after capture",
                flush=True,
            )
            if n == count:
                break
    print(f"skipped {frames.skipped} older frames")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 0, sys.argv[2:])
