"""`python -m framewire_bench.article_sides SIDE ...`: run one side of the article's design."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from framewire_bench.article_receive import http_receiver, redis_receiver
from framewire_bench.article_send import http_sender, redis_sender


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m framewire_bench.article_sides")
    sides = parser.add_subparsers(dest="side", required=True)
    for name in ("http-sender", "redis-sender"):
        side = sides.add_parser(name)
        side.add_argument("--camera", default="cam0")
        side.add_argument("--width", type=int, default=1280)
        side.add_argument("--height", type=int, default=720)
        side.add_argument("--fps", type=float, default=30.0, help="0: unthrottled")
        side.add_argument("--quality", type=int, required=True, help="JPEG quality (cv2: 95)")
        side.add_argument("--metrics-port", type=int, required=True)
        if name == "http-sender":
            side.add_argument("--url", required=True, help="the receiver's /frames")
        else:
            side.add_argument("--redis-url", required=True)
    http = sides.add_parser("http-receiver")
    http.add_argument("--port", type=int, required=True)
    http.add_argument("--camera", default="cam0", help="the camera /latencies answers for")
    red = sides.add_parser("redis-receiver")
    red.add_argument("--redis-url", required=True)
    red.add_argument("--camera", default="cam0")
    red.add_argument("--metrics-port", type=int, required=True)
    return parser.parse_args(argv)


SIDES = {"http-sender": http_sender, "http-receiver": http_receiver}
SIDES |= {"redis-sender": redis_sender, "redis-receiver": redis_receiver}


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    SIDES[args.side](args)


if __name__ == "__main__":
    main()
