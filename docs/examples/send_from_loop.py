"""Feed frames from your own loop to framewire, over HTTP and Redis at once.

    python docs/examples/send_from_loop.py [COUNT]

Sends COUNT frames (default: until Ctrl-C) as camera `my-loop` to the
receivers of `make run` or `docker compose up`; FRAMEWIRE_HTTP_URL,
FRAMEWIRE_REDIS_URL and FRAMEWIRE_TOKEN override where (the CLI's variables).
Replace `my_frames()` with your own capture or rendering loop.
"""

import os
import sys
import time
from collections.abc import Iterator

import cv2
import numpy as np

from framewire.client import HttpSender, PublishError, RedisSender


def my_frames() -> Iterator[np.ndarray]:
    """Your loop: here a moving bar on a gradient, 640x360, at about 15 fps."""
    background = np.tile(np.linspace(0, 255, 640, dtype=np.uint8), (360, 1))
    for n in range(sys.maxsize):
        image = cv2.cvtColor(background, cv2.COLOR_GRAY2BGR)
        cv2.rectangle(image, (n * 8 % 640, 120), (n * 8 % 640 + 60, 240), (0, 160, 255), -1)
        yield image
        time.sleep(1 / 15)


def main(count: int) -> None:
    env = os.environ.get
    senders = [
        HttpSender(env("FRAMEWIRE_HTTP_URL", "http://127.0.0.1:8001/frames"),
                   env("FRAMEWIRE_TOKEN", ""), camera="my-loop"),
        RedisSender(env("FRAMEWIRE_REDIS_URL", "redis://127.0.0.1:6379/0"), camera="my-loop"),
    ]  # fmt: skip
    for n, image in enumerate(my_frames(), start=1):
        for sender in senders:
            try:
                sender.send(image)  # JPEG-encoded once per sender; seq and capture time filled in
            except PublishError as exc:  # Refused (with the receiver's reason) or Unreachable
                print(f"{sender.name}: {exc}", file=sys.stderr)
        if n == count:
            break


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
