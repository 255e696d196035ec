"""What the bench runs: scenarios (a mode, a frame size, a source rate) and their services."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from framewire.config import HTTP_MODES, REDIS_MODES
from framewire_bench.readers import Viewer, read_metrics, total
from framewire_bench.stack import RedisServer, Service, Services, wait_until

DEFAULT_MODES = ("raw", "stream")
# The article's whole design (bench/article.py), not framewire's pipeline: one transport each.
ARTICLE_MODES = {"article-http": "http", "article-redis": "redis"}
# `both` is framewire's default modes together: HTTP raw and Redis stream from one sender.
MODES = (*HTTP_MODES, *REDIS_MODES, "both", *ARTICLE_MODES)
TARGET_RESOLUTION = "1280x720"
# The article's sender's JPEG quality by default: framewire's, for equal work (cv2's own is 95).
ARTICLE_QUALITY = 80
CAMERA = "cam0"


@dataclass(frozen=True)
class Scenario:
    """One measurement: a mode (or `both`), a frame size and a source rate (0: unthrottled)."""

    mode: str
    width: int
    height: int
    fps: float
    article_quality: int = ARTICLE_QUALITY  # the JPEG quality of the article's design

    @property
    def http_mode(self) -> str | None:
        return "raw" if self.mode == "both" else self.mode if self.mode in HTTP_MODES else None

    @property
    def redis_mode(self) -> str | None:
        return "stream" if self.mode == "both" else self.mode if self.mode in REDIS_MODES else None

    @property
    def paths(self) -> list[tuple[str, str]]:
        """(transport, mode) for each transport in use."""
        if self.mode in ARTICLE_MODES:
            return [(ARTICLE_MODES[self.mode], self.mode)]
        modes = [("http", self.http_mode), ("redis", self.redis_mode)]
        return [(transport, mode) for transport, mode in modes if mode]

    @property
    def uses_redis(self) -> bool:
        return any(transport == "redis" for transport, _ in self.paths)

    @property
    def resolution(self) -> str:
        return f"{self.width}x{self.height}"

    @property
    def rate(self) -> str:
        return f"{self.fps:g} fps" if self.fps else "unthrottled"

    @property
    def name(self) -> str:
        return f"{self.mode} {self.resolution} {self.rate}"


def parse_resolutions(text: str) -> list[tuple[int, int]]:
    """`640x480,1280x720` -> [(640, 480), (1280, 720)]; raises ValueError."""
    sizes = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        width, sep, height = item.lower().partition("x")
        if not sep or not width.isdigit() or not height.isdigit():
            raise ValueError(f"{item!r} is not WIDTHxHEIGHT")
        if not (16 <= int(width) <= 7680 and 16 <= int(height) <= 4320):
            raise ValueError(f"{item!r} is out of range (16x16 to 7680x4320)")
        sizes.append((int(width), int(height)))
    if not sizes:
        raise ValueError("no resolution given")
    return sizes


def parse_list(text: str, allowed: Iterable[str]) -> list[str]:
    """A comma-separated list whose items must be in `allowed`; raises ValueError."""
    allowed = tuple(allowed)
    items = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [item for item in items if item not in allowed]
    if unknown or not items:
        raise ValueError(f"must be a comma-separated list of {', '.join(allowed)}")
    return list(dict.fromkeys(items))


def parse_rates(text: str) -> list[float]:
    """`30,0` -> [30.0, 0.0] (0: unthrottled); raises ValueError."""
    try:
        rates = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError("must be comma-separated frame rates (0: unthrottled)") from None
    if not rates or any(not 0 <= rate <= 1000 for rate in rates):
        raise ValueError("must be comma-separated frame rates from 0 to 1000 (0: unthrottled)")
    return list(dict.fromkeys(rates))


def scenarios(
    modes: list[str],
    resolutions: list[tuple[int, int]],
    rates: list[float],
    quick: bool = False,
    article_quality: int = ARTICLE_QUALITY,
) -> list[Scenario]:
    """The scenario list: every mode x resolution x rate.

    Quick: one resolution (1280x720 if asked for, else the first); the
    comparison modes (form-base64, pubsub, set-publish) only at the last rate
    (by default unthrottled), the article's own design (article-http,
    article-redis) only at the first (by default 30 fps: it was built for a
    camera, and its own sleeps pace it). The default modes run at every rate.
    """
    if quick:
        wanted = [size for size in resolutions if f"{size[0]}x{size[1]}" == TARGET_RESOLUTION]
        resolutions = wanted or resolutions[:1]
    result = []
    for width, height in resolutions:
        for rate in rates:
            for mode in modes:
                if quick and rate not in quick_rates(mode, rates):
                    continue
                result.append(Scenario(mode, width, height, rate, article_quality))
    return result


def quick_rates(mode: str, rates: list[float]) -> list[float]:
    """The rates `--quick` runs `mode` at (see `scenarios`)."""
    if mode in ARTICLE_MODES:
        return rates[:1]
    return rates if mode in (*DEFAULT_MODES, "both") else rates[-1:]


def child_env() -> dict[str, str]:
    """The environment for services: no FRAMEWIRE_* settings leak in, the bench sets them."""
    return {key: value for key, value in os.environ.items() if not key.startswith("FRAMEWIRE_")}


@dataclass
class Running:
    """The services of one scenario: receivers by transport, the sender, one viewer each."""

    services: Services
    receivers: dict[str, Service] = field(default_factory=dict)
    sender: Service | None = None
    viewers: list[Viewer] = field(default_factory=list)

    def check(self) -> None:
        """StackError if any service has exited."""
        for service in self.services.started:
            service.check()

    def stop(self) -> None:
        """Close the viewers, then stop the sender and the receivers by PID."""
        for viewer in self.viewers:
            viewer.close()
        for service in reversed(self.services.started):
            service.stop()


def start_services(scenario: Scenario, redis: RedisServer, log_dir: Path) -> Running:
    """Start the receiver(s) and the sender of `scenario`; return once frames are viewed."""
    log_dir.mkdir(parents=True, exist_ok=True)
    running = Running(Services(log_dir, env=child_env()))
    if scenario.mode in ARTICLE_MODES:
        return start_article(scenario, redis, running)
    try:
        for transport, mode in scenario.paths:
            args = ["--processor", "none"]
            if transport == "redis":
                args += ["--redis-url", redis.url, "--redis-mode", mode]
            running.receivers[transport] = running.services.receiver(transport, *args)
        running.sender = running.services.sender(*sender_args(scenario, running, redis.url))
        for transport, receiver in running.receivers.items():

            def received(url: str = receiver.url) -> bool:
                running.check()
                return total(read_metrics(url), "framewire_frames_received_total") > 0

            wait_until(received, what=f"frames at the {transport} receiver")
            viewer = Viewer(f"{receiver.url}/stream.mjpg")
            viewer.start()
            running.viewers.append(viewer)
            wait_until(lambda v=viewer: v.bytes > 0, what=f"the {transport} viewer")
        return running
    except BaseException:
        running.stop()
        raise


def sender_args(scenario: Scenario, running: Running, redis_url: str) -> list[str]:
    """`framewire send` options for the scenario's receivers."""
    http = running.receivers.get("http")
    args = ["--camera", CAMERA, "--width", str(scenario.width), "--height", str(scenario.height)]
    args += ["--fps", f"{scenario.fps:g}"]
    args += ["--http-url", f"{http.url}/frames" if http else ""]
    args += ["--redis-url", redis_url if scenario.redis_mode else ""]
    args += ["--http-mode", scenario.http_mode or "raw"]
    args += ["--redis-mode", scenario.redis_mode or "stream"]
    return args


def start_article(scenario: Scenario, redis: RedisServer, running: Running) -> Running:
    """The article's receiver and sender; no MJPEG viewer (its display loop takes each frame)."""
    # Imported here: `python -m framewire_bench.article` must not find it imported already.
    from framewire_bench.article import start

    ((transport, _),) = scenario.paths
    try:
        size = (scenario.width, scenario.height)
        receiver, running.sender = start(
            running.services,
            transport,
            size,
            scenario.fps,
            redis.url,
            CAMERA,
            scenario.article_quality,
        )
        running.receivers[transport] = receiver

        def received() -> bool:
            running.check()
            return total(read_metrics(receiver.url), "framewire_frames_received_total") > 0

        wait_until(received, what=f"frames at the article's {transport} receiver")
        return running
    except BaseException:
        running.stop()
        raise
