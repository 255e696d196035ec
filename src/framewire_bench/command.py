"""`framewire bench`: run the real services locally and measure HTTP against Redis.

For each scenario (a transport mode, a resolution, a source rate) the bench
starts the receiver(s) and a sender as subprocesses against its own
`redis-server`, keeps one MJPEG viewer open on each receiver, and scrapes
every `/metrics` before and after a measurement window. From the deltas it
computes received fps, bytes per frame, drops and CPU per process; the
viewers count the frames written to them. Latency quantiles (capture to
received and to served) are exact: at the end of each window the bench reads
every frame's own latency from the receivers' `/latencies`. It also times the
codec work of the same frames in-process (sender encode, receiver decode,
viewer encode), so latency reads as a multiple of encode + decode and CPU per
viewed frame as a multiple of the codec floor.

The full run is the whole matrix: every mode (HTTP `raw`, `form-base64`;
Redis `stream`, `pubsub`, `set-publish`; `both`, raw + stream from one
sender; and the article's own design, `article-http` and `article-redis`,
from bench/article.py) at every resolution and rate: 48 scenarios of 8 s,
about 9 minutes on 2 cores. `--quick` (about a minute) keeps one resolution
(1280x720), runs the comparison modes only unthrottled and the article's
design only at 30 fps (a camera's rate, which it was built for); 3 s windows.

Outputs in `--out`: `results.json`, `results.md` (figures and ratios, no
verdicts: `make bench-check` holds results against docs/bench/targets.json)
and `chart.png` (when matplotlib is installed: `pip install 'framewire[bench]'`);
each scenario's service logs are in `--out/logs/<scenario>/`.

`--cameras N` is the capacity mode instead (bench/capacity.py, its runner
bench/capacity_mode.py): N synthetic cameras (1280x720 at 30 fps) from one
sender through HTTP alone, Redis alone and both together, at spread capture
phases and then aligned (`--phases`), one viewer on cam0, pass or fail per
camera (fps - 0.5 received, p95 at most 20 ms); `--cameras max` searches the
largest N per setup and phase and states it over the codec-bound limit. It
writes results.json and results.md into `--out` as well.

`--replicas 1,2,3` is the replicas mode instead (bench/replicas.py, its runner
and report bench/replicas_report.py): for each n, n Redis receiver replicas
with `--advertise-url` sharing `--cameras` synthetic cameras (4, 1280x720 at
10 fps): decodes across all replicas per frame sent, CPU per replica and the
cameras each owns; `--replicas-pinned` adds the largest number of 30 fps
cameras passing the capacity rule with 1 and 2 replicas each pinned to a core.
`--replicas-producer replay` feeds Redis from bench/replay.py (frames encoded
once at its start) instead of `framewire send`, so the sender's encodes leave
the machine's budget; its pinned part also searches 1 replica fed by the sender.

`--variant-cost` is the variant-cost mode instead (bench/variant_cost.py):
one HTTP receiver and one synthetic camera; for a window each (`--duration`,
10 s), the receiver's CPU with no viewer, then bytes/s, parts/s and receiver
CPU of one viewer of the full stream, of `?width=640&fps=10` and of that at
quality 50. It writes results.json (`variant_cost`) and results.md too.

The package: `scenarios` (what runs), `stack` (processes) and `readers`
(what they serve), both shared with `make run` and the tests, `measure`
(deltas, CPU), `codecs` (the codec floor, the JPEG libraries, the physical
limit), `latency` (exact quantiles of a window), `run` (what every mode
shares: the output folder, the clock, the machine and the one writer),
`report`, `codec_report` and `against` (the outputs; `against` holds framewire
against the article's design and the floor), `variant_cost` (its mode), `capacity` and
`capacity_mode` and `capacity_report` (the capacity mode), `replicas` and
`replicas_report` (the replicas mode) and `command`
(this CLI).
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import click

from framewire.runtime import on_stop_signals, tune_malloc
from framewire_bench.capacity import DEFAULT_PHASES, DEFAULT_SETUPS, PHASES, SETUPS, Camera
from framewire_bench.capacity_mode import run_capacity
from framewire_bench.chart import fmt_ms
from framewire_bench.codecs import section as codec_section
from framewire_bench.limit import physical_limit
from framewire_bench.measure import WARMUP_SECONDS, over_floor, run_scenario
from framewire_bench.replicas import PRODUCERS, REPLICA_CAMERAS, REPLICA_FPS, parse_replicas
from framewire_bench.replicas_report import run_mode as run_replicas
from framewire_bench.report import write_report
from framewire_bench.run import Run
from framewire_bench.scenarios import (
    ARTICLE_QUALITY,
    MODES,
    Scenario,
    parse_list,
    parse_rates,
    parse_resolutions,
    scenarios,
)
from framewire_bench.stack import RedisServer, StackError
from framewire_bench.variant_cost import run_mode as run_variant_cost


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
    "unthrottled, the article's design only at the first rate (30 fps), 3 s windows.",
)
@_option(
    "--duration",
    "DURATION",
    type=click.FloatRange(0.5, 600),
    default=None,
    show_default="8 s; 3 s with --quick; with --cameras 10 s, 4 s with --quick; "
    "with --variant-cost 10 s, 3 s with --quick",
    help="Seconds measured per scenario (per trial with --cameras, per stream with "
    "--variant-cost).",
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
    help="Scenarios: each mode alone; `both` is raw and stream together; `article-http` "
    "and `article-redis` are the article's whole design.",
)
@_option(
    "--rates",
    "RATES",
    default="30,0",
    callback=_convert(parse_rates),
    help="Source frame rates (0: unthrottled).",
)
@_option(
    "--article-quality",
    "ARTICLE_QUALITY",
    type=click.IntRange(1, 100),
    default=ARTICLE_QUALITY,
    help="JPEG quality of the article's design (`article-http`, `article-redis`): framewire's "
    "by default, for equal work; 95 is cv2's default, which the article ran at.",
)
@_option(
    "--cameras",
    "CAMERAS",
    default=None,
    callback=_convert(lambda text: None if text is None else parse_cameras(text)),
    help="Capacity mode: N cameras (one sender, 1280x720 at 30 fps each) through HTTP alone, "
    "Redis alone and both; `max` searches the largest N that keeps every camera at fps - 0.5 "
    "with p95 <= 20 ms. --resolutions, --modes and --rates do not apply. With --replicas: the "
    "number of cameras the replicas share (4 by default).",
)
@_option(
    "--variant-cost",
    "VARIANT_COST",
    is_flag=True,
    help="Variant-cost mode: one HTTP receiver and camera; bytes/s and receiver CPU of one "
    "viewer of the full stream, of ?width=640&fps=10 and of that at quality 50, and of none. "
    "--resolutions, --modes and --rates do not apply.",
)
@_option(
    "--replicas",
    "REPLICAS",
    default=None,
    callback=_convert(lambda text: None if text is None else parse_replicas(text)),
    help="Replicas mode: for each n (e.g. 1,2,3), n Redis receiver replicas sharing --cameras "
    "synthetic cameras (4 by default, 1280x720 at 10 fps): decodes across all replicas per frame "
    "sent, CPU per replica, the cameras each owns. --resolutions, --modes and --rates do not "
    "apply.",
)
@_option(
    "--replicas-pinned",
    "REPLICAS_PINNED",
    is_flag=True,
    help="Replicas mode: also the pinned capacity: each replica under `taskset -c` on a core of "
    "its own (i mod cores), the largest number of 30 fps cameras passing the capacity rule for "
    "1 and 2 replicas, and the ratio (up to --max-cameras).",
)
@_option(
    "--replicas-producer",
    "REPLICAS_PRODUCER",
    type=click.Choice(PRODUCERS),
    default="sender",
    help="Replicas mode: what feeds Redis. `sender`: `framewire send`, a JPEG encode per frame "
    "(about 8 % of a core per 720p30 camera, on the replicas' cores); `replay`: the same "
    "synthetic frames encoded once at its start and XADDed at the cameras' rate, so the "
    "pinned comparison measures the receivers (its latency leaves out the sender's encode, "
    "about 4-5 ms at 720p). With `replay`, --replicas-pinned also searches 1 replica fed by "
    "the sender, for comparison.",
)
@_option(
    "--camera-size",
    "CAMERA_SIZE",
    default="1280x720",
    callback=_convert(lambda text: parse_resolutions(text)[0]),
    help="Capacity, variant-cost and replicas modes: each camera's WIDTHxHEIGHT.",
)
@_option(
    "--camera-fps",
    "CAMERA_FPS",
    type=click.FloatRange(1, 120),
    default=None,
    show_default="30; 10 with --replicas (its pinned capacity: 30)",
    help="Capacity, variant-cost and replicas modes: each camera's frame rate.",
)
@_option(
    "--max-cameras",
    "MAX_CAMERAS",
    type=click.IntRange(1, 1000),
    default=16,
    help="Capacity mode and --replicas-pinned: the search's cap (the receivers get "
    "--max-cameras of at least this).",
)
@_option(
    "--setups",
    "SETUPS",
    default=",".join(DEFAULT_SETUPS),
    callback=_convert(lambda text: parse_list(text, SETUPS)),
    help="Capacity mode: `http` alone, `redis` alone, `both` from one sender; `redis-cluster`:"
    " Redis alone on a Redis Cluster of 3 primaries and 3 replicas started here.",
)
@_option(
    "--phases",
    "PHASES",
    default=",".join(DEFAULT_PHASES),
    callback=_convert(lambda text: parse_list(text, PHASES)),
    help="Capacity mode: the cameras' capture phases, each run in turn per setup: `spread` (each"
    " camera at a random instant of its frame period, as real cameras free-run), `aligned` (all"
    " at the same instant, the worst case; its search starts at the spread one's answer).",
)
def bench(
    quick: bool,
    duration: float | None,
    out: Path,
    resolutions: list[tuple[int, int]],
    modes: list[str],
    rates: list[float],
    article_quality: int,
    cameras: int | str | None,
    variant_cost: bool,
    camera_size: tuple[int, int],
    camera_fps: float | None,
    max_cameras: int,
    setups: list[str],
    phases: list[str],
    replicas: list[int] | None,
    replicas_pinned: bool,
    replicas_producer: str,
) -> None:
    """Run the real services locally and measure HTTP against Redis."""
    # SIGTERM unwinds like Ctrl-C, so every service started is stopped on the way out.
    if threading.current_thread() is threading.main_thread():
        on_stop_signals(_exit_on_sigterm, signals=(signal.SIGTERM,))
    if variant_cost:
        fps = camera_fps or 30.0
        run_variant_cost(out, duration or (3.0 if quick else 10.0), camera_size, fps)
        return
    if replicas is not None or replicas_pinned:
        if cameras == "max":
            raise click.UsageError(
                "--replicas takes a number of --cameras; for the capacity "
                "of pinned replicas add --replicas-pinned"
            )
        camera = Camera(*camera_size, camera_fps or REPLICA_FPS)
        count = REPLICA_CAMERAS if cameras is None else int(cameras)
        duration = duration or (4.0 if quick else 10.0)
        run_replicas(
            out,
            replicas or [],
            count,
            camera,
            duration,
            replicas_pinned,
            max_cameras,
            replicas_producer,
        )
        return
    if cameras is not None:
        camera = Camera(*camera_size, camera_fps or 30.0)
        count = None if cameras == "max" else int(cameras)
        duration = duration or (4.0 if quick else 10.0)
        run_capacity(count, camera, duration, out, max_cameras, setups, phases)
        return
    tune_malloc()  # as the services do, so the codec baseline is comparable
    duration = duration or (3.0 if quick else 8.0)
    plan = scenarios(modes, resolutions, rates, quick, article_quality)
    if not plan:
        raise click.UsageError("no scenario matches --modes, --resolutions and --rates")
    run = Run(out, f"{len(plan)} scenarios of {duration:g} s")
    sizes = dict.fromkeys((s.width, s.height) for s in plan)
    codec = {f"{w}x{h}": {**codec_section(w, h), "limit": physical_limit(w, h)} for w, h in sizes}
    results = run_all(plan, duration, run.logs)
    for result in results:
        if "error" not in result:
            result["cpu_over_floor"] = over_floor(result, codec)
            result["cpu_over_own_floor"] = over_floor(result, codec, "own_floor_ms")
    options = {
        "quick": quick,
        "duration": duration,
        "warmup": WARMUP_SECONDS,
        "resolutions": [f"{w}x{h}" for w, h in resolutions],
        "modes": modes,
        "rates": rates,
        "article_quality": article_quality,
    }
    report = run.report(options=options, codec=codec, results=results)
    run.finish(write_report(out, report))
    failed = [result["name"] for result in results if "error" in result]
    if failed:
        raise click.ClickException(f"{len(failed)} scenario(s) failed: {', '.join(failed)}")


def parse_cameras(text: str) -> int | str:
    """`max` or a number of cameras from 1 to 1000; raises ValueError."""
    text = text.strip().lower()
    if text == "max":
        return text
    if not text.isdigit() or not 1 <= int(text) <= 1000:
        raise ValueError("must be a number of cameras from 1 to 1000, or `max`")
    return int(text)


def _exit_on_sigterm() -> None:
    raise SystemExit(128 + signal.SIGTERM)


def run_all(plan: list[Scenario], duration: float, log_dir: Path) -> list[dict[str, Any]]:
    """Run every scenario against one redis-server, with a progress bar."""
    results = []
    try:
        redis = RedisServer(log_path=log_dir / "redis-server.log")
        redis.start()
    except StackError as exc:
        raise click.ClickException(str(exc)) from None
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
                results.append(run_scenario(scenario, redis, duration, log_dir / tag))
                if not sys.stderr.isatty():
                    click.echo(f"  {scenario.name}: {_short(results[-1])}", err=True)
    finally:
        redis.stop()
    return results


def _short(result: Mapping[str, Any]) -> str:
    if "error" in result:
        return f"failed: {result['error']}"
    return ", ".join(
        f"{p['transport']} {p['fps']:.1f} fps p50 {fmt_ms(p['received_ms']['p50'])} ms"
        for p in result["paths"]
    )
