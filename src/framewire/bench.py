"""`framewire bench`: run the real services locally and measure HTTP against Redis.

For each scenario (a transport mode, a resolution, a source rate) the bench
starts the receiver(s) and a sender as subprocesses against its own
`redis-server`, keeps one MJPEG viewer open on each receiver, and scrapes
every `/metrics` before and after a measurement window. From the deltas it
computes delivered fps, latency quantiles (capture to received and to served,
interpolated inside histogram buckets like PromQL's `histogram_quantile`),
bytes per frame, drops and CPU per process. It also times the bare JPEG
encode + decode of the same frames in-process, so each transport's latency
can be read as a multiple of the codec cost.

The full run is the whole matrix: every mode (HTTP `raw`, `form-base64`;
Redis `stream`, `pubsub`, `set-publish`; and `both`, raw + stream from one
sender) at every resolution and rate: 36 scenarios of 8 s, about 6.5 minutes
on 2 cores. `--quick` (about a minute) keeps one resolution (1280x720) and
runs the comparison modes only unthrottled; 3 s windows.

Outputs in `--out`: `results.json`, `results.md` (table and targets) and
`chart.png` (when matplotlib is installed: `pip install 'framewire[bench]'`);
each service's log is in `--out/logs`.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import requests

from framewire.config import HTTP_MODES, REDIS_MODES

DEFAULT_MODES = ("raw", "stream")
# `both` is framewire's default modes together: HTTP raw and Redis stream from one sender.
MODES = (*HTTP_MODES, *REDIS_MODES, "both")
TARGET_RESOLUTION = "1280x720"
WARMUP_SECONDS = 1.0
START_TIMEOUT = 20.0
CODEC_FRAMES = 50
CAMERA = "cam0"
NOISE_PERCENT = 25.0  # other processes' CPU (% of a core) above which a scenario is flagged

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


class BenchError(RuntimeError):
    """A scenario could not be run (a service failed to start or no frames flowed)."""


# --- scenarios ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """One measurement: a mode (or `both`), a frame size and a source rate (0: unthrottled)."""

    mode: str
    width: int
    height: int
    fps: float

    @property
    def http_mode(self) -> str | None:
        return "raw" if self.mode == "both" else self.mode if self.mode in HTTP_MODES else None

    @property
    def redis_mode(self) -> str | None:
        return "stream" if self.mode == "both" else self.mode if self.mode in REDIS_MODES else None

    @property
    def paths(self) -> list[tuple[str, str]]:
        """(transport, mode) for each transport in use."""
        modes = [("http", self.http_mode), ("redis", self.redis_mode)]
        return [(transport, mode) for transport, mode in modes if mode]

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
    modes: list[str], resolutions: list[tuple[int, int]], rates: list[float], quick: bool = False
) -> list[Scenario]:
    """The scenario list: every mode x resolution x rate.

    Quick: one resolution (1280x720 if asked for, else the first), and the
    article and pubsub modes only at the last rate (by default unthrottled),
    where the comparison with the default modes is made.
    """
    if quick:
        wanted = [size for size in resolutions if f"{size[0]}x{size[1]}" == TARGET_RESOLUTION]
        resolutions = wanted or resolutions[:1]
    result = []
    for width, height in resolutions:
        for rate in rates:
            for mode in modes:
                if quick and mode not in (*DEFAULT_MODES, "both") and rate != rates[-1]:
                    continue
                result.append(Scenario(mode, width, height, rate))
    return result


# --- metrics: parsing, deltas, quantiles -------------------------------------------------------


def parse_metrics(text: str) -> Samples:
    """Prometheus text -> {(sample name, sorted labels): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def delta(before: Samples, after: Samples) -> Samples:
    """`after - before` per series (a series new in `after` counts from 0)."""
    return {key: value - before.get(key, 0.0) for key, value in after.items()}


def select(samples: Samples, name: str, **labels: str) -> list[tuple[dict[str, str], float]]:
    """The series called `name` whose labels include `labels`."""
    found = []
    for (sample_name, sample_labels), value in samples.items():
        if sample_name != name:
            continue
        as_dict = dict(sample_labels)
        if all(as_dict.get(key) == wanted for key, wanted in labels.items()):
            found.append((as_dict, value))
    return found


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the matching series."""
    return sum(value for _, value in select(samples, name, **labels))


def buckets(samples: Samples, name: str, **labels: str) -> list[tuple[float, float]]:
    """Cumulative (upper bound, count) of histogram `name`, summed over matching series."""
    counts: dict[float, float] = {}
    for sample_labels, value in select(samples, f"{name}_bucket", **labels):
        bound = float(sample_labels["le"])  # "+Inf" parses to inf
        counts[bound] = counts.get(bound, 0.0) + value
    return sorted(counts.items())


def histogram_quantile(q: float, cumulative: list[tuple[float, float]]) -> float | None:
    """The q-quantile of cumulative buckets, interpolated linearly inside a bucket.

    Follows Prometheus' `histogram_quantile`: the first bucket starts at 0, a
    rank in the +Inf bucket returns the highest finite bound, and counts are
    made monotonic first. None when there are no observations or no +Inf bucket.
    """
    if not 0 <= q <= 1:
        raise ValueError(f"quantile {q} is outside [0, 1]")
    if len(cumulative) < 2 or not math.isinf(cumulative[-1][0]):
        return None
    bounds = [bound for bound, _ in cumulative]
    counts, running = [], 0.0
    for _, count in cumulative:
        running = max(running, count)
        counts.append(running)
    observations = counts[-1]
    if observations <= 0:
        return None
    rank = q * observations
    index = next(i for i, count in enumerate(counts) if count >= rank and count > 0)
    if index == len(counts) - 1:
        return bounds[-2]
    lower = bounds[index - 1] if index > 0 else min(0.0, bounds[0])
    below = counts[index - 1] if index > 0 else 0.0
    return lower + (bounds[index] - lower) * (rank - below) / (counts[index] - below)


def latency_ms(samples: Samples, transport: str, stage: str) -> dict[str, float | None]:
    """p50/p95/p99 in milliseconds of framewire_frame_latency_seconds for one stage."""
    cumulative = buckets(
        samples, "framewire_frame_latency_seconds", transport=transport, stage=stage
    )
    result: dict[str, float | None] = {}
    for q in (0.5, 0.95, 0.99):
        value = histogram_quantile(q, cumulative)
        result[f"p{round(q * 100)}"] = None if value is None else value * 1000
    return result


# --- CPU from /proc ----------------------------------------------------------------------------


def parse_stat_ticks(stat: str) -> int:
    """utime + stime (clock ticks) from the text of /proc/PID/stat."""
    fields = stat[stat.rindex(")") + 2 :].split()  # the command may hold spaces and parens
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of stat(5)


def process_tree(pid: int) -> list[int]:
    """`pid` and its direct children (a gunicorn master and its worker)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    return [pid, *(int(child) for child in children)]


def cpu_ticks(pid: int) -> dict[int, int]:
    """CPU ticks used so far by `pid` and its children, per process."""
    ticks = {}
    for member in process_tree(pid):
        try:
            ticks[member] = parse_stat_ticks(Path(f"/proc/{member}/stat").read_text())
        except (OSError, ValueError, IndexError):
            continue  # exited meanwhile
    return ticks


def cpu_percent(
    before: Mapping[int, int], after: Mapping[int, int], seconds: float, hertz: int | None = None
) -> float:
    """CPU used between two `cpu_ticks` readings, in % of one core."""
    hertz = hertz or os.sysconf("SC_CLK_TCK")
    used = sum(ticks - before.get(pid, 0) for pid, ticks in after.items())
    return 100.0 * used / hertz / seconds if seconds > 0 else 0.0


def parse_machine_ticks(stat: str) -> dict[str, int]:
    """Busy and stolen clock ticks of all CPUs together, from the text of /proc/stat."""
    values = [int(value) for value in stat.splitlines()[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values + [0] * (8 - len(values))
    return {"busy": user + nice + system + irq + softirq, "steal": steal}


def machine_percent(
    before: Mapping[str, int], after: Mapping[str, int], seconds: float, ours: float
) -> dict[str, float]:
    """The whole machine's busy and stolen CPU, and what processes not ours used (% of a core)."""
    hertz = os.sysconf("SC_CLK_TCK")
    use = {key: 100.0 * (after[key] - before[key]) / hertz / seconds for key in ("busy", "steal")}
    return {**use, "other": max(0.0, use["busy"] - ours)}


# --- the in-process codec baseline -------------------------------------------------------------


def codec_cost(width: int, height: int, frames: int = CODEC_FRAMES) -> dict[str, float]:
    """Median ms of cv2 JPEG encode (quality 80) and decode of synthetic frames at this size."""
    import cv2
    import numpy as np

    from framewire.sources import SyntheticSource

    source = SyntheticSource(width, height, fps=0)
    params = [cv2.IMWRITE_JPEG_QUALITY, 80]
    encode, decode, both, sizes = [], [], [], []
    for index in range(frames + 5):
        image = source.read()
        started = time.perf_counter()
        ok, buffer = cv2.imencode(".jpg", image, params)
        encoded = time.perf_counter()
        decoded = cv2.imdecode(np.frombuffer(buffer, np.uint8), cv2.IMREAD_COLOR)
        finished = time.perf_counter()
        if not ok or decoded is None:
            raise BenchError("cv2 could not encode and decode a synthetic frame")
        if index >= 5:  # the first calls warm up caches and allocator
            encode.append(encoded - started)
            decode.append(finished - encoded)
            both.append(finished - started)
            sizes.append(len(buffer))
    return {
        "encode_ms": statistics.median(encode) * 1000,
        "decode_ms": statistics.median(decode) * 1000,
        "total_ms": statistics.median(both) * 1000,
        "bytes": statistics.median(sizes),
    }


# --- processes ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def framewire_command() -> list[str]:
    """How to run the `framewire` CLI with this interpreter."""
    script = Path(sys.executable).parent / "framewire"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from framewire.cli import main; main()"]


def child_env() -> dict[str, str]:
    """The environment for services: no FRAMEWIRE_* settings leak in, the bench sets them."""
    return {key: value for key, value in os.environ.items() if not key.startswith("FRAMEWIRE_")}


@dataclass
class Service:
    """A process the bench started, with its output in a log file."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    url: str = ""

    @classmethod
    def start(cls, name: str, args: list[str], log_path: Path, url: str = "") -> Service:
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=child_env(),
            )
        return cls(name, proc, log_path, url)

    def check(self) -> None:
        """Raise BenchError if the process has exited."""
        if self.proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace").strip().splitlines()[-5:]
            raise BenchError(
                f"{self.name} exited with status {self.proc.returncode}: " + " | ".join(tail)
            )

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, wait; SIGKILL if it does not exit in time."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def wait_for(
    check: Callable[[], object],
    what: str,
    services: Iterable[Service] = (),
    timeout: float = START_TIMEOUT,
) -> None:
    """Poll `check` until it returns something truthy; BenchError after `timeout`."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        for service in services:
            service.check()
        try:
            if check():
                return
        except (requests.RequestException, OSError) as exc:
            last = f" (last error: {type(exc).__name__})"
        time.sleep(0.05)
    raise BenchError(f"timed out after {timeout:g} s waiting for {what}{last}")


class RedisServer:
    """The bench's own redis-server on a free loopback port, without persistence."""

    def __init__(self, log_dir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise click.ClickException("redis-server is not on PATH (Debian: apt install redis)")
        self.port = free_port()
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no"]
        self.service = Service.start("redis-server", args, log_dir / "redis-server.log")
        self.url = f"redis://127.0.0.1:{self.port}/0"
        try:
            wait_for(self.ping, "redis-server", [self.service])
        except BaseException:
            self.stop()
            raise

    def client(self) -> Any:
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, protocol=2, socket_timeout=5)

    def ping(self) -> bool:
        import redis

        try:
            return bool(self.client().ping())
        except redis.ConnectionError:
            return False

    def flush(self) -> None:
        self.client().flushall()

    def stop(self) -> None:
        self.service.stop()


def redis_server_version() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        return "not installed"
    output = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
    version = next((part for part in output.split() if part.startswith("v=")), "v=?")
    return version[2:]


class Viewer(threading.Thread):
    """An MJPEG client reading /stream.mjpg as fast as it can, so frames get `served`."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True, name="bench-viewer")
        self.url = url
        self.bytes = 0
        self._closing = threading.Event()
        self._response: requests.Response | None = None

    def run(self) -> None:
        try:
            with requests.get(self.url, stream=True, timeout=10) as response:
                self._response = response
                for chunk in response.iter_content(chunk_size=65536):
                    self.bytes += len(chunk)
                    if self._closing.is_set():
                        return
        except (requests.RequestException, OSError, AttributeError, ValueError):
            pass  # closed under us when the scenario ends

    def close(self) -> None:
        self._closing.set()
        if self._response is not None:
            self._response.close()
        self.join(timeout=5)


# --- one scenario ------------------------------------------------------------------------------


@dataclass
class Running:
    """The services of one scenario."""

    receivers: dict[str, Service] = field(default_factory=dict)  # by transport
    sender: Service | None = None
    viewers: list[Viewer] = field(default_factory=list)

    @property
    def services(self) -> list[Service]:
        return [*self.receivers.values(), *([self.sender] if self.sender else [])]

    def stop(self) -> None:
        for viewer in self.viewers:
            viewer.close()
        for service in reversed(self.services):  # the sender first
            service.stop()


def scrape(url: str) -> Samples:
    response = requests.get(f"{url}/metrics", timeout=5)
    response.raise_for_status()
    return parse_metrics(response.text)


def start_services(scenario: Scenario, redis_url: str, log_dir: Path, tag: str) -> Running:
    """Start the receiver(s) and the sender of `scenario`; return once frames flow."""
    command = framewire_command()
    running = Running()
    try:
        for transport, mode in scenario.paths:
            port = free_port()
            args = [*command, f"{transport}-receiver", "--bind", f"127.0.0.1:{port}"]
            args += ["--processor", "none"]
            if transport == "redis":
                args += ["--redis-url", redis_url]
                if mode != "stream":
                    args += ["--redis-mode", mode]
            running.receivers[transport] = Service.start(
                f"{transport}-receiver",
                args,
                log_dir / f"{tag}-{transport}-receiver.log",
                f"http://127.0.0.1:{port}",
            )
        for receiver in running.receivers.values():
            healthz = f"{receiver.url}/healthz"
            wait_for(lambda url=healthz: requests.get(url, timeout=1).ok, healthz, [receiver])
        running.sender = start_sender(scenario, redis_url, running, log_dir, tag)
        metrics = f"{running.sender.url}/metrics"
        wait_for(lambda: requests.get(metrics, timeout=1).ok, metrics, running.services)
        for transport, receiver in running.receivers.items():
            wait_for(
                lambda url=receiver.url: total(scrape(url), "framewire_frames_received_total") > 0,
                f"frames at the {transport} receiver",
                running.services,
            )
            viewer = Viewer(f"{receiver.url}/stream.mjpg")
            viewer.start()
            running.viewers.append(viewer)
            wait_for(lambda v=viewer: v.bytes > 0, f"the {transport} viewer", running.services)
        return running
    except BaseException:
        running.stop()
        raise


def start_sender(
    scenario: Scenario, redis_url: str, running: Running, log_dir: Path, tag: str
) -> Service:
    """Start `framewire send` to the scenario's receivers."""
    port = free_port()
    http = running.receivers.get("http")
    args = [*framewire_command(), "send", "--camera", CAMERA]
    args += ["--width", str(scenario.width), "--height", str(scenario.height)]
    args += ["--fps", f"{scenario.fps:g}", "--metrics-bind", f"127.0.0.1:{port}"]
    args += ["--http-url", f"{http.url}/frames" if http else ""]
    args += ["--redis-url", redis_url if scenario.redis_mode else ""]
    if scenario.http_mode not in (None, "raw"):
        args += ["--http-mode", scenario.http_mode]
    if scenario.redis_mode not in (None, "stream"):
        args += ["--redis-mode", scenario.redis_mode]
    return Service.start("sender", args, log_dir / f"{tag}-sender.log", f"http://127.0.0.1:{port}")


def measure(running: Running, duration: float, extra_pids: Mapping[str, int]) -> dict[str, Any]:
    """Scrape and read CPU before and after a window of `duration` seconds; summarize."""
    pids = {f"{t}-receiver": s.proc.pid for t, s in running.receivers.items()}
    if running.sender:
        pids["sender"] = running.sender.proc.pid
    pids.update(extra_pids)
    urls = {service.name: service.url for service in running.services}
    me = os.getpid()

    def snapshot() -> tuple[float, dict[str, Samples], dict[str, dict[int, int]], dict[str, int]]:
        started = time.monotonic()
        samples = {name: scrape(url) for name, url in urls.items()}
        ticks = {name: cpu_ticks(pid) for name, pid in pids.items()}
        ticks["bench"] = {me: parse_stat_ticks(Path(f"/proc/{me}/stat").read_text())}
        machine = parse_machine_ticks(Path("/proc/stat").read_text())
        return (started + time.monotonic()) / 2, samples, ticks, machine

    t0, before, ticks0, machine0 = snapshot()
    time.sleep(duration)
    for service in running.services:
        service.check()
    t1, after, ticks1, machine1 = snapshot()
    seconds = t1 - t0
    changes = {name: delta(before[name], after[name]) for name in urls}
    cpu = {name: cpu_percent(ticks0[name], ticks1[name], seconds) for name in ticks0}
    result = summarize(changes, seconds, cpu)
    result["machine_cpu_percent"] = machine_percent(machine0, machine1, seconds, sum(cpu.values()))
    return result


def summarize(
    changes: Mapping[str, Samples], seconds: float, cpu: Mapping[str, float]
) -> dict[str, Any]:
    """Figures of one window from the metric deltas of each service (keyed by service name)."""
    sender = changes.get("sender", {})

    def per_second(count: float) -> float:
        return count / seconds if seconds > 0 else 0.0

    paths = []
    for name, samples in changes.items():
        if not name.endswith("-receiver"):
            continue
        transport = name.removesuffix("-receiver")
        frames = total(samples, "framewire_frames_received_total", transport=transport)
        count = total(samples, "framewire_frame_bytes_count", transport=transport)
        size = total(samples, "framewire_frame_bytes_sum", transport=transport)
        paths.append(
            {
                "transport": transport,
                "frames": frames,
                "fps": per_second(frames),
                "sent_fps": per_second(
                    total(sender, "framewire_frames_sent_total", transport=transport)
                ),
                "received_ms": latency_ms(samples, transport, "received"),
                "served_ms": latency_ms(samples, transport, "served"),
                "bytes_per_frame": size / count if count else None,
                "drops": drops_by_stage([samples, sender], transport),
                "send_errors": total(sender, "framewire_send_errors_total", transport=transport),
            }
        )
    return {
        "seconds": seconds,
        "captured_fps": per_second(total(sender, "framewire_frames_captured_total")),
        "paths": paths,
        "drops_total": sum(
            total(samples, "framewire_frames_dropped_total") for samples in changes.values()
        ),
        "cpu_percent": dict(cpu),
    }


def drops_by_stage(all_samples: Iterable[Samples], transport: str) -> dict[str, float]:
    """Dropped frames by stage for one transport, plus the sender's shared `capture` drops."""
    drops: dict[str, float] = {}
    for samples in all_samples:
        for labels, value in select(samples, "framewire_frames_dropped_total"):
            if labels.get("transport") in (transport, "none") and value:
                stage = labels.get("stage", "?")
                drops[stage] = drops.get(stage, 0.0) + value
    return drops


def run_scenario(
    scenario: Scenario, redis: RedisServer, duration: float, log_dir: Path, tag: str
) -> dict[str, Any]:
    """Start the scenario's services, warm up, measure, stop; the figures or an error."""
    record: dict[str, Any] = {
        "scenario": scenario.mode,
        "name": scenario.name,
        "modes": {transport: mode for transport, mode in scenario.paths},
        "width": scenario.width,
        "height": scenario.height,
        "resolution": scenario.resolution,
        "rate_fps": scenario.fps,
    }
    redis.flush()
    try:
        running = start_services(scenario, redis.url, log_dir, tag)
        try:
            time.sleep(WARMUP_SECONDS)
            extra = {"redis-server": redis.service.proc.pid} if scenario.redis_mode else {}
            record.update(measure(running, duration, extra))
        finally:
            running.stop()
    except (BenchError, requests.RequestException, OSError) as exc:
        record["error"] = str(exc) or type(exc).__name__
    return record


# --- report ------------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    """CPU model, cores and the versions the figures depend on."""
    import cv2

    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "opencv": cv2.__version__,
        "redis_server": redis_server_version(),
    }


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _triple(values: Mapping[str, float | None] | None) -> str:
    values = values or {}
    return " / ".join(_ms(values.get(key)) for key in ("p50", "p95", "p99"))


def _drops(by_stage: Mapping[str, float]) -> str:
    """`capture 120, send 3`: the nonzero stages, in pipeline order."""
    order = ["capture", "send", "receive", "process"]
    stages = sorted(by_stage, key=lambda s: order.index(s) if s in order else len(order))
    return ", ".join(f"{s} {by_stage[s]:.0f}" for s in stages if by_stage[s]) or "0"


def _rate(fps: float) -> str:
    return f"{fps:g} fps" if fps else "unthrottled"


def table_rows(results: list[dict[str, Any]], codec: Mapping[str, Any]) -> list[list[str]]:
    """One row per transport of each scenario."""
    rows = []
    for result in results:
        head = [result["scenario"], "", result["resolution"], _rate(result["rate_fps"])]
        if "error" in result:
            modes = ", ".join(f"{t} {m}" for t, m in result["modes"].items())
            rows.append([head[0], modes, *head[2:], f"failed: {result['error']}"])
            rows[-1] += [""] * (11 - len(rows[-1]))
            continue
        cpu = ", ".join(f"{name} {value:.0f}" for name, value in result["cpu_percent"].items())
        machine = result.get("machine_cpu_percent", {})
        cpu += "".join(
            f", {key} {machine[key]:.0f}" for key in ("other", "steal") if key in machine
        )
        cost = codec.get(result["resolution"], {}).get("total_ms")
        for path in result["paths"]:
            p50 = path["received_ms"].get("p50")
            ratio = f"{p50 / cost:.1f}x" if p50 is not None and cost else "-"
            size = path["bytes_per_frame"]
            rows.append(
                [
                    head[0],
                    f"{path['transport']} {result['modes'][path['transport']]}",
                    *head[2:],
                    f"{path['fps']:.1f}",
                    _triple(path["received_ms"]),
                    _triple(path["served_ms"]),
                    "-" if size is None else f"{size / 1024:.1f} KiB",
                    _drops(path["drops"]),
                    cpu,
                    ratio,
                ]
            )
    return rows


HEADER = [
    "scenario",
    "mode",
    "resolution",
    "rate",
    "delivered fps",
    "received p50 / p95 / p99 ms",
    "served p50 / p95 / p99 ms",
    "bytes/frame",
    "drops",
    "CPU % of one core",
    "p50 / codec",
]


def markdown_table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def find_path(
    results: list[dict[str, Any]], mode: str, fps: float, transport: str
) -> dict[str, Any] | None:
    """The figures of `transport` in scenario `mode` at 1280x720 and `fps`, if measured."""
    for result in results:
        if (
            result["scenario"] == mode
            and result["resolution"] == TARGET_RESOLUTION
            and result["rate_fps"] == fps
            and "error" not in result
        ):
            for path in result["paths"]:
                if path["transport"] == transport:
                    return path
    return None


def _target(name: str, met: bool | None, detail: str) -> dict[str, Any]:
    return {"target": name, "met": met, "detail": detail}


def evaluate_targets(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Check the issue's targets at 1280x720; `met` is None when not measured."""
    targets = []
    alone_and_both = [("raw", "http"), ("stream", "redis"), ("both", "http"), ("both", "redis")]
    for mode, transport in alone_and_both:
        name = f"30 fps 1280x720, {transport} in `{mode}`: >= 29.5 fps, p50 <= 8 ms, p95 <= 15 ms"
        path = find_path(results, mode, 30.0, transport)
        if path is None:
            targets.append(_target(name, None, "not measured"))
            continue
        fps, p50, p95 = path["fps"], path["received_ms"]["p50"], path["received_ms"]["p95"]
        met = fps >= 29.5 and p50 is not None and p50 <= 8 and p95 is not None and p95 <= 15
        detail = f"{fps:.1f} fps, p50 {_ms(p50)} ms, p95 {_ms(p95)} ms"
        targets.append(_target(name, met, detail))
    for mode, transport, floor in (("stream", "redis", 200), ("raw", "http", 150)):
        name = f"unthrottled 1280x720, {transport} `{mode}` alone: >= {floor} fps"
        path = find_path(results, mode, 0.0, transport)
        if path is None:
            targets.append(_target(name, None, "not measured"))
        else:
            targets.append(_target(name, path["fps"] >= floor, f"{path['fps']:.1f} fps"))
    pairs = [("raw", "form-base64", "http"), ("stream", "set-publish", "redis")]
    for default, article, transport in pairs:
        name = (
            f"unthrottled 1280x720, {transport} `{default}` against the article's `{article}`: "
            ">= 5x the fps, <= 1/3 of the p50 latency"
        )
        ours = find_path(results, default, 0.0, transport)
        theirs = find_path(results, article, 0.0, transport)
        if ours is None or theirs is None:
            targets.append(_target(name, None, "not measured"))
            continue
        fps_ratio = ours["fps"] / theirs["fps"] if theirs["fps"] else math.inf
        ours_p50, theirs_p50 = ours["received_ms"]["p50"], theirs["received_ms"]["p50"]
        lat_ratio = ours_p50 / theirs_p50 if ours_p50 is not None and theirs_p50 else None
        met = fps_ratio >= 5 and lat_ratio is not None and lat_ratio <= 1 / 3
        detail = (
            f"{ours['fps']:.1f} against {theirs['fps']:.1f} fps ({fps_ratio:.1f}x); "
            f"p50 {_ms(ours_p50)} against {_ms(theirs_p50)} ms "
            f"({'-' if lat_ratio is None else f'{lat_ratio:.2f}'}x)"
        )
        targets.append(_target(name, met, detail))
    return targets


def noisy(results: list[dict[str, Any]], threshold: float = NOISE_PERCENT) -> list[str]:
    """Scenarios during which other processes used more than `threshold` % of a core."""
    return [
        f"{result['name']} ({result['machine_cpu_percent']['other']:.0f} %)"
        for result in results
        if result.get("machine_cpu_percent", {}).get("other", 0.0) > threshold
    ]


def render_markdown(report: Mapping[str, Any]) -> str:
    """results.md: machine, method, the table and the targets."""
    machine, options = report["machine"], report["options"]
    codec = report["codec"]
    lines = [
        "# framewire bench",
        "",
        f"{report['started']}, {report['elapsed_seconds']:.0f} s in total. "
        f"{machine['cpu_model']}, {machine['cores']} cores; Python {machine['python']}, "
        f"OpenCV {machine['opencv']}, redis-server {machine['redis_server']}.",
        "",
        f"Each scenario: {options['duration']:g} s measured after {WARMUP_SECONDS:g} s of "
        "warm-up, one MJPEG viewer open on each receiver, synthetic frames, JPEG quality 80, "
        "`--processor none`. Latency is capture to received (decoded) and capture to served "
        "(annotated and encoded for the viewer), interpolated inside histogram buckets. "
        "Drops are per stage: `capture` at the sender (shared by both transports; "
        "the source outruns the encoder), then `send`, `receive` and `process` of that "
        "transport; unthrottled runs drop by design, the latest frame wins. "
        "CPU is per process in % of one core (receivers include their gunicorn worker; "
        "`bench` is this process, running the viewers; `other` is what the rest of the "
        "machine used meanwhile, `steal` what the hypervisor took: high values mean noise). "
        "`p50 / codec` is received p50 over the in-process JPEG encode + decode time.",
        "",
        "## Codec cost (in-process, median of 50 frames)",
        "",
        "| resolution | encode ms | decode ms | encode + decode ms | bytes/frame |",
        "|---|---|---|---|---|",
    ]
    for resolution, cost in codec.items():
        lines.append(
            f"| {resolution} | {cost['encode_ms']:.2f} | {cost['decode_ms']:.2f} | "
            f"{cost['total_ms']:.2f} | {cost['bytes'] / 1024:.1f} KiB |"
        )
    lines += ["", "## Results", "", markdown_table(table_rows(report["results"], codec)), ""]
    lines += ["## Targets", ""]
    verdict = {True: "met", False: "MISSED", None: "not measured"}
    for target in report["targets"]:
        lines.append(f"- **{verdict[target['met']]}**: {target['target']}: {target['detail']}")
    disturbed = noisy(report["results"])
    if disturbed:
        lines += [
            "",
            f"**Noisy**: other processes used more than {NOISE_PERCENT:g} % of a core during "
            f"{len(disturbed)} of {len(report['results'])} scenarios, so those figures "
            "understate what framewire does on an idle machine: " + ", ".join(disturbed) + ".",
        ]
    lines += ["", f"Chart: {report['chart']}", ""]
    return "\n".join(lines)


def write_chart(path: Path, results: list[dict[str, Any]]) -> str:
    """chart.png of delivered fps and p50 latency per row; a note when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "skipped: matplotlib is not installed (pip install 'framewire[bench]')"
    labels, fps, p50 = [], [], []
    for result in results:
        for item in result.get("paths", []):
            mode = result["modes"][item["transport"]]
            both = " (both)" if result["scenario"] == "both" else ""
            rate = f"{result['rate_fps']:g}" if result["rate_fps"] else "max"
            labels.append(f"{item['transport']} {mode}{both} {result['resolution']} @{rate}")
            fps.append(item["fps"])
            p50.append(item["received_ms"]["p50"] or 0.0)
    if not labels:
        return "skipped: no figures"
    height = max(3.0, 0.28 * len(labels) + 1.2)
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, height), sharey=True)
    left.set_ylim(len(labels) - 0.5, -0.5)  # top to bottom, no empty margins
    positions = range(len(labels))
    left.barh(positions, fps, color="tab:blue")
    left.set_xlabel("delivered fps")
    right.barh(positions, p50, color="tab:orange")
    right.set_xlabel("p50 latency, capture to received (ms)")
    left.set_yticks(list(positions), labels, fontsize=8)
    for axis in (left, right):
        axis.grid(axis="x", alpha=0.3)
    figure.suptitle("framewire bench: HTTP against Redis")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return f"`{path.name}`"


def write_report(out: Path, report: dict[str, Any]) -> str:
    """Write results.json, chart.png and results.md into `out`; return the Markdown."""
    out.mkdir(parents=True, exist_ok=True)
    report["chart"] = write_chart(out / "chart.png", report["results"])
    report["targets"] = evaluate_targets(report["results"])
    (out / "results.json").write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")
    text = render_markdown(report)
    (out / "results.md").write_text(text)
    return text


# --- the command -------------------------------------------------------------------------------


def _convert(parse: Callable[[str], Any]) -> Callable[[click.Context, click.Parameter, str], Any]:
    def callback(_: click.Context, __: click.Parameter, value: str) -> Any:
        try:
            return parse(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None

    return callback


def _option(name: str, envvar: str, **kwargs: Any) -> Callable[[Any], Any]:
    kwargs.setdefault("show_default", True)
    return click.option(name, envvar=f"FRAMEWIRE_BENCH_{envvar}", show_envvar=True, **kwargs)


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@_option(
    "--quick",
    "QUICK",
    is_flag=True,
    help="About a minute: one resolution (1280x720 if listed), comparison modes only "
    "unthrottled, 3 s windows.",
)
@_option(
    "--duration",
    "DURATION",
    type=click.FloatRange(0.5, 600),
    default=None,
    show_default="8 s; 3 s with --quick",
    help="Seconds measured per scenario.",
)
@_option(
    "--out",
    "OUT",
    type=click.Path(file_okay=False, path_type=Path),
    default="bench-results",
    help="Directory for results.json, results.md, chart.png and logs/.",
)
@_option(
    "--resolutions",
    "RESOLUTIONS",
    default="640x480,1280x720,1920x1080",
    callback=_convert(parse_resolutions),
    help="Comma-separated WIDTHxHEIGHT.",
)
@_option(
    "--modes",
    "MODES",
    default=",".join(MODES),
    callback=_convert(lambda text: parse_list(text, MODES)),
    help="Scenarios: each mode alone; `both` is raw and stream together.",
)
@_option(
    "--rates",
    "RATES",
    default="30,0",
    callback=_convert(parse_rates),
    help="Source frame rates (0: unthrottled).",
)
def bench(
    quick: bool,
    duration: float | None,
    out: Path,
    resolutions: list[tuple[int, int]],
    modes: list[str],
    rates: list[float],
) -> None:
    """Run the real services locally and measure HTTP against Redis."""
    from framewire.runtime import tune_malloc

    # SIGTERM unwinds like Ctrl-C, so every service started is stopped on the way out.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
    tune_malloc()  # as the services do, so the codec baseline is comparable
    duration = duration or (3.0 if quick else 8.0)
    plan = scenarios(modes, resolutions, rates, quick)
    if not plan:
        raise click.UsageError("no scenario matches --modes, --resolutions and --rates")
    started, clock = time.strftime("%Y-%m-%d %H:%M:%S %z"), time.monotonic()
    log_dir = out / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    click.echo(
        f"framewire bench: {len(plan)} scenarios of {duration:g} s, logs in {log_dir}", err=True
    )
    sizes = dict.fromkeys((s.width, s.height) for s in plan)
    codec = {f"{w}x{h}": codec_cost(w, h) for w, h in sizes}
    results = run_all(plan, duration, log_dir)
    report = {
        "started": started,
        "elapsed_seconds": time.monotonic() - clock,
        "machine": machine_info(),
        "options": {
            "quick": quick,
            "duration": duration,
            "warmup": WARMUP_SECONDS,
            "resolutions": [f"{w}x{h}" for w, h in resolutions],
            "modes": modes,
            "rates": rates,
        },
        "codec": codec,
        "results": results,
    }
    text = write_report(out, report)
    click.echo(text)
    click.echo(f"framewire bench: {report['elapsed_seconds']:.0f} s; results in {out}", err=True)
    failed = [result["name"] for result in results if "error" in result]
    if failed:
        raise click.ClickException(f"{len(failed)} scenario(s) failed: {', '.join(failed)}")


def _exit_on_sigterm(signum: int, _: object) -> None:
    raise SystemExit(128 + signum)


def run_all(plan: list[Scenario], duration: float, log_dir: Path) -> list[dict[str, Any]]:
    """Run every scenario against one redis-server, with a progress bar."""
    results = []
    redis = RedisServer(log_dir)
    try:
        with click.progressbar(
            plan,
            label="bench",
            item_show_func=lambda s: s.name if s else "",
            file=sys.stderr,
            show_pos=True,
        ) as bar:
            for index, scenario in enumerate(bar, 1):
                tag = f"{index:02d}-{scenario.mode}-{scenario.resolution}-{scenario.fps:g}"
                results.append(run_scenario(scenario, redis, duration, log_dir, tag))
                if not sys.stderr.isatty():
                    click.echo(f"  {scenario.name}: {_short(results[-1])}", err=True)
    finally:
        redis.stop()
    return results


def _short(result: Mapping[str, Any]) -> str:
    if "error" in result:
        return f"failed: {result['error']}"
    return ", ".join(
        f"{p['transport']} {p['fps']:.1f} fps p50 {_ms(p['received_ms']['p50'])} ms"
        for p in result["paths"]
    )


if __name__ == "__main__":
    bench()
