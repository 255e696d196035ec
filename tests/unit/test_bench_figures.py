"""The bench's logic in process: quantiles, CPU, codecs, scenarios, the capacity search, the
report, the chart and bench-check (tests/system/test_bench.py runs the bench for real)."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from framewire.metrics import SECONDS_BUCKETS, ReceiverMetrics, SenderMetrics
from framewire_bench import (
    capacity,
    capacity_mode,
    capacity_report,
    chart,
    codec_report,
    codecs,
    command,
    measure,
    report,
    scenarios,
    variant_cost,
)
from framewire_bench import run as bench_run
from framewire_bench.readers import Samples, parse_metrics, total

INF = math.inf


# --- histogram quantiles ------------------------------------------------------------------------


def test_quantile_interpolates_inside_the_bucket() -> None:
    # 10 in (0, 1], 10 in (1, 2], none above: the median is the top of the first bucket.
    cumulative = [(1.0, 10.0), (2.0, 20.0), (INF, 20.0)]
    assert measure.histogram_quantile(0.5, cumulative) == pytest.approx(1.0)
    assert measure.histogram_quantile(0.75, cumulative) == pytest.approx(1.5)
    assert measure.histogram_quantile(0.25, cumulative) == pytest.approx(0.5)  # first starts at 0
    assert measure.histogram_quantile(1.0, cumulative) == pytest.approx(2.0)


def test_quantile_skips_empty_buckets() -> None:
    cumulative = [(0.001, 0.0), (0.002, 0.0), (0.003, 4.0), (0.004, 4.0), (INF, 4.0)]
    assert measure.histogram_quantile(0.5, cumulative) == pytest.approx(0.0025)
    assert measure.histogram_quantile(0.0, cumulative) == pytest.approx(0.002)


def test_quantile_in_the_inf_bucket_is_the_highest_finite_bound() -> None:
    cumulative = [(0.1, 1.0), (0.5, 2.0), (INF, 10.0)]
    assert measure.histogram_quantile(0.99, cumulative) == 0.5


def test_quantile_without_data_is_none() -> None:
    assert measure.histogram_quantile(0.5, []) is None
    assert measure.histogram_quantile(0.5, [(INF, 5.0)]) is None  # one bucket: nothing to go on
    assert measure.histogram_quantile(0.5, [(1.0, 0.0), (INF, 0.0)]) is None  # no observations
    assert measure.histogram_quantile(0.5, [(1.0, 3.0), (2.0, 5.0)]) is None  # no +Inf bucket


def test_quantile_makes_counts_monotonic() -> None:
    # A scrape racing an observation can show a lower count in a higher bucket.
    cumulative = [(1.0, 10.0), (2.0, 9.0), (3.0, 20.0), (INF, 20.0)]
    assert measure.histogram_quantile(0.5, cumulative) == pytest.approx(1.0)
    assert measure.histogram_quantile(0.75, cumulative) == pytest.approx(2.5)


def test_quantile_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError):
        measure.histogram_quantile(1.5, [(1.0, 1.0), (INF, 1.0)])


def _scrape(registry: CollectorRegistry) -> Samples:
    return parse_metrics(generate_latest(registry).decode())


def test_latency_comes_from_the_delta_of_two_scrapes() -> None:
    registry = CollectorRegistry()
    latency = Histogram(
        "framewire_frame_latency_seconds",
        "",
        ["camera", "transport", "stage"],
        buckets=SECONDS_BUCKETS,
        registry=registry,
    )
    received = Counter(
        "framewire_frames_received_total", "", ["camera", "transport"], registry=registry
    )
    for _ in range(100):  # before the window: slow frames, which must not count
        latency.labels("cam0", "http", "received").observe(0.2)
    before = _scrape(registry)
    for value in (0.0035,) * 50 + (0.0045,) * 50:
        latency.labels("cam0", "http", "received").observe(value)
        latency.labels("cam1", "http", "received").observe(value)  # summed over cameras
        latency.labels("cam0", "redis", "received").observe(1.0)  # another transport
        received.labels("cam0", "http").inc()
    change = measure.delta(before, _scrape(registry))

    figures = measure.latency_ms(change, "http", "received")
    assert figures["p50"] == pytest.approx(3.5)  # the top of the (3, 3.5] ms bucket
    assert 4.0 < figures["p95"] <= 4.5
    assert measure.latency_ms(change, "http", "served") == {"p50": None, "p95": None, "p99": None}
    assert total(change, "framewire_frames_received_total", transport="http") == 100


def test_summary_of_a_window_uses_the_services_own_metrics() -> None:
    receiver, sender = ReceiverMetrics(), SenderMetrics()
    receiver.frames_received.labels("cam0", "http").inc(5)  # before the window
    before = {"http-receiver": _scrape(receiver.registry), "sender": _scrape(sender.registry)}
    for _ in range(60):
        sender.frames_captured.labels("cam0").inc()
        sender.frames_sent.labels("cam0", "http").inc()
        receiver.frames_received.labels("cam0", "http").inc()
        receiver.frame_bytes.labels("cam0", "http").observe(100_000)
        receiver.frame_latency.labels("cam0", "http", "received").observe(0.006)
        receiver.frame_latency.labels("cam0", "http", "served").observe(0.009)
    sender.frames_dropped.labels("cam0", "none", "capture").inc(7)
    sender.frames_dropped.labels("cam0", "http", "send").inc(2)
    receiver.frames_dropped.labels("cam0", "http", "process").inc(1)
    after = {"http-receiver": _scrape(receiver.registry), "sender": _scrape(sender.registry)}
    changes = {name: measure.delta(before[name], after[name]) for name in before}

    summary = measure.summarize(changes, 2.0, {"sender": 10.0, "http-receiver": 20.0})
    (path,) = summary["paths"]
    assert path["transport"] == "http"
    assert path["fps"] == path["sent_fps"] == summary["captured_fps"] == 30.0
    assert path["bytes_per_frame"] == 100_000
    assert 5.5 < path["received_hist_ms"]["p50"] <= 6.0  # half-millisecond buckets
    assert 8.5 < path["served_hist_ms"]["p50"] <= 9.0
    assert path["drops"] == {"capture": 7, "send": 2, "process": 1}
    assert summary["drops_total"] == 10
    assert summary["cpu_percent"] == {"sender": 10.0, "http-receiver": 20.0}


# --- CPU ----------------------------------------------------------------------------------------


def test_cpu_per_viewed_frame_and_against_the_codec_floor() -> None:
    # 50 % of a core for 2 s is 1 s; over 100 frames, 10 ms each.
    per_frame = measure.cpu_ms_per_frame({"sender": 50.0, "http-receiver": 25.0}, 2.0, 100)
    assert per_frame == pytest.approx({"sender": 10.0, "http-receiver": 5.0, "total": 15.0})
    assert measure.cpu_ms_per_frame({"sender": 50.0}, 2.0, 0) is None  # nothing viewed
    result = {"resolution": "1280x720", "cpu_ms_per_frame": per_frame}
    codec = {"1280x720": {"floor_ms": 6.0}}
    assert measure.over_floor(result, codec) == pytest.approx(2.5)
    assert measure.over_floor(result, {}) is None
    assert measure.over_floor({**result, "cpu_ms_per_frame": None}, codec) is None


def test_codec_floor_is_sender_encode_receiver_decode_and_viewer_encode() -> None:
    cost = codecs.codec_cost(160, 120, count=5)
    parts = ("encode_ms", "decode_ms", "viewer_encode_ms", "total_ms", "floor_ms", "bytes")
    assert all(cost[key] > 0 for key in parts)
    assert cost["floor_ms"] > cost["total_ms"]  # the viewer encode comes on top


# --- the JPEG libraries and the physical limit -------------------------------------------------


def test_cv2_restart_encode_has_a_marker_after_every_mcu_row() -> None:
    (image,) = codecs.frames(320, 240, 1)
    libraries, _ = codecs.load(names=("cv2",))
    jpeg = libraries["cv2"].encode_rst(image)
    dri = jpeg.index(b"\xff\xdd")  # define restart interval: 4-byte length, then the interval
    assert int.from_bytes(jpeg[dri + 4 : dri + 6], "big") == 20  # 320 / 16 MCUs
    scan = jpeg[jpeg.index(b"\xff\xda") :]
    markers = [scan.count(bytes([0xFF, 0xD0 + n])) for n in range(8)]
    assert sum(markers) == 240 // 16 - 1  # between the 15 rows, numbered 0-7 in turn
    assert markers == [2, 2, 2, 2, 2, 2, 1, 1]
    assert libraries["cv2"].decode(jpeg).shape == (240, 320, 3)


def test_a_missing_library_is_not_available_and_the_bench_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "turbojpeg", None)  # as if PyTurboJPEG were not installed
    found = codecs.compare(160, 120, count=2)
    missing = found["libraries"]["turbojpeg"]
    assert missing["available"] is False and missing["reason"].startswith("not available: ")
    assert "turbojpeg" not in found["fastest"].values()
    assert found["libraries"]["cv2"]["decode_ms"] > 0
    text = "\n".join(codec_report.library_lines({"160x120": found}))
    assert "### turbojpeg\n\nnot available: " in text


def test_fastest_is_the_lowest_median_per_step() -> None:
    table = {
        "a": {"available": True, "encode_ms": 2.0, "decode_ms": 3.0, "decode_half_ms": None},
        "b": {"available": True, "encode_ms": 2.5, "decode_ms": 1.0, "decode_half_ms": 0.5},
        "c": {"available": False, "reason": "not available: no"},
    }
    assert codecs.fastest(table) == {"encode": "a", "decode": "b", "decode_half": "b"}
    # CPU time decides where it was taken: a's encode waited on a busy machine, b's did not.
    table["a"] |= {"encode_cpu_ms": 1.9}
    table["b"] |= {"encode_ms": 1.5, "encode_cpu_ms": 2.4}
    assert codecs.fastest(table)["encode"] == "a"
    assert codecs.fastest({}) == {"encode": None, "decode": None, "decode_half": None}


def test_cpu_percent_of_one_core() -> None:
    before = {10: 1.0, 11: 0.5}
    after = {10: 1.5, 11: 1.0, 12: 0.5}  # a child that appeared counts from 0
    assert measure.cpu_percent(before, after, seconds=2.0) == pytest.approx(75.0)
    assert measure.cpu_percent(before, before, seconds=0.0) == 0.0


def test_machine_cpu_and_the_share_of_other_processes() -> None:
    live = measure.machine_seconds()
    assert live["busy"] > 0 and live["steal"] >= 0
    before, after = {"busy": 10.0, "steal": 1.0}, {"busy": 12.0, "steal": 1.5}
    use = measure.machine_percent(before, after, seconds=2.0, ours=60.0)
    assert use == pytest.approx({"busy": 100.0, "steal": 25.0, "other": 40.0})


# --- scenarios and options ----------------------------------------------------------------------


def test_full_matrix_and_quick_subset() -> None:
    sizes = scenarios.parse_resolutions("640x480,1280x720,1920x1080")
    full = scenarios.scenarios(list(scenarios.MODES), sizes, [30.0, 0.0])
    assert len(full) == len(scenarios.MODES) * 3 * 2
    both = next(s for s in full if s.mode == "both")
    assert both.paths == [("http", "raw"), ("redis", "stream")]
    article = next(s for s in full if s.mode == "article-redis")
    assert article.paths == [("redis", "article-redis")] and article.uses_redis
    assert article.http_mode is None and article.redis_mode is None  # not framewire's sender

    quick = scenarios.scenarios(list(scenarios.MODES), sizes, [30.0, 0.0], quick=True)
    assert {s.article_quality for s in full} == {scenarios.ARTICLE_QUALITY}
    at_95 = scenarios.scenarios(["article-http"], sizes, [0.0], article_quality=95)
    assert [s.article_quality for s in at_95] == [95] * len(sizes)
    assert {s.resolution for s in quick} == {"1280x720"}
    articles = set(scenarios.ARTICLE_MODES)
    assert {s.mode for s in quick if s.fps == 30} == {"raw", "stream", "both", *articles}
    assert {s.mode for s in quick if s.fps == 0} == set(scenarios.MODES) - articles


@pytest.mark.parametrize(
    ("env", "value", "message"),
    [
        ("RESOLUTIONS", "1280by720", "WIDTHxHEIGHT"),
        ("MODES", "raw,carrier-pigeon", "comma-separated list"),
        ("RATES", "30,-1", "frame rates"),
        ("CAMERAS", "lots", "or `max`"),
        ("CAMERAS", "0", "from 1 to 1000"),
        ("SETUPS", "http,pigeon", "comma-separated list of http, redis, both"),
        ("PHASES", "spread,random", "comma-separated list of spread, aligned"),
        ("ARTICLE_QUALITY", "101", "1<=x<=100"),
    ],
)
def test_bad_options_are_one_line_errors(env: str, value: str, message: str) -> None:
    result = CliRunner().invoke(command.bench, [], env={f"FRAMEWIRE_BENCH_{env}": value})
    assert result.exit_code == 2
    assert message in result.output


# --- report -------------------------------------------------------------------------------------


def _path(transport: str, fps: float, p50: float, p95: float) -> dict:
    return {
        "transport": transport,
        "frames": fps * 8,
        "fps": fps,
        "sent_fps": fps,
        "viewer_fps": fps - 1,
        "received_ms": {"p50": p50, "p95": p95, "p99": p95 + 1, "frames": 8, "overflow": False},
        "served_ms": {"p50": p50 + 2, "p95": p95 + 2, "p99": None, "frames": 0},
        "bytes_per_frame": 81_920.0,
        "drops": {"capture": 3.0, "send": 0.0},
        "send_errors": 0.0,
    }


def _result(mode: str, fps: float, *paths: dict, error: str = "") -> dict:
    scenario = scenarios.Scenario(mode, 1280, 720, fps)
    result = {
        "scenario": mode,
        "name": scenario.name,
        "modes": dict(scenario.paths),
        "width": 1280,
        "height": 720,
        "resolution": "1280x720",
        "rate_fps": fps,
    }
    if error:
        return {**result, "error": error}
    cpu = {"sender": 40.0, "http-receiver": 20.0}
    machine = {"busy": 71.0, "steal": 0.0, "other": 11.0}
    figures = {"seconds": 8.0, "captured_fps": fps, "paths": list(paths), "cpu_percent": cpu}
    viewed = sum(path["viewer_fps"] for path in paths) * 8.0
    per_frame = measure.cpu_ms_per_frame(cpu, 8.0, viewed)
    figures |= {"viewer_frames": viewed, "cpu_ms_per_frame": per_frame}
    figures["cpu_over_floor"] = per_frame["total"] / 8.0 if per_frame else None
    figures["cpu_over_own_floor"] = per_frame["total"] / 5.0 if per_frame else None
    return {**result, **figures, "machine_cpu_percent": machine}


def test_report_flags_windows_whose_latency_log_overflowed(tmp_path: Path) -> None:
    path = _path("http", 29.9, 6.0, 9.0)
    path["received_ms"]["overflow"] = True
    text = report.write_report(tmp_path, _report([_result("raw", 30.0, path)]))
    assert "6.0 / 9.0 / 10.0 (overflow)" in text
    assert "**Overflow**" in text and "raw 1280x720 30 fps." in text


def _article(transport: str, fps: float, *path: dict) -> dict:
    """The article's design at `fps`: measured like raw, named as the bench names it."""
    scenario = f"article-{transport}"
    return {**_result("raw", fps, *path), "scenario": scenario, "modes": {transport: scenario}}


CHART_RESULTS = [
    _result("raw", 30.0, _path("http", 29.9, 6.0, 9.0)),
    _result("stream", 30.0, _path("redis", 29.8, 5.0, 8.0)),
    _result("both", 30.0, _path("http", 29.0, 6.0, 9.0), _path("redis", 29.5, 5.0, 8.0)),
    _article("http", 30.0, _path("http", 25.0, 40.0, 50.0)),
    _result("raw", 0.0, _path("http", 200.0, 12.0, 17.0)),
    _result("stream", 0.0, _path("redis", 260.0, 10.0, 14.0)),
    _article("http", 0.0, _path("http", 25.0, 56.0, 65.0)),
    _article("redis", 0.0, _path("redis", 40.0, 34.0, 39.0)),
]


def test_chart_answers_each_question_from_the_figures() -> None:
    """One panel per question at the headline size, titled with the answer the data gives."""
    assert chart.headline_resolution(CHART_RESULTS) == "1280x720"
    assert chart.camera_rate(CHART_RESULTS) == 30.0
    flat = chart.bars(CHART_RESULTS, "1280x720", 0.0)
    assert [b.label for b in flat] == [
        "framewire HTTP",
        "framewire Redis",
        "article's HTTP",
        "article's Redis",
    ]
    assert (
        chart.fast_answer(flat) == "Redis moves 1.3x HTTP's frames, 6.5-8.0x the article's design"
    )
    paced = chart.bars(CHART_RESULTS, "1280x720", 30.0)  # `both` is not a bar; no article-redis
    assert [(b.label, b.p50, b.p95) for b in paced] == [
        ("framewire HTTP", 6.0, 9.0),
        ("framewire Redis", 5.0, 8.0),
        ("article's HTTP", 40.0, 50.0),
    ]
    assert chart.late_answer(paced, 4.5) == (
        "A frame arrives in 5.0-6.0 ms (p50), 0.5-1.5 ms over the limit; the article's 40 ms"
    )
    assert chart.late_answer(paced[:1], None) == "A frame arrives in 6.0 ms (p50)"
    assert paced[0].floor_ms == pytest.approx(8.0)  # what cpu_over_floor was computed against
    assert chart.cost_answer(paced).endswith(
        "the codec floor; the article's design " + (f"{paced[2].cpu_ms / 8.0:.1f}x")
    )
    even = [chart.Bar("framewire HTTP", "b", True, 100.0, None, None, None, None),
            chart.Bar("framewire Redis", "r", True, 102.0, None, None, None, None)]  # fmt: skip
    assert chart.fast_answer(even) == "HTTP and Redis move about as many frames"


def test_chart_draws_what_the_run_has(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    codec = {"1280x720": {"limit": {"total_ms": 4.5}}}
    assert chart.write_chart(tmp_path / "a.png", CHART_RESULTS, codec) == "`a.png`"
    only_paced = [r for r in CHART_RESULTS if r["rate_fps"]]  # no unthrottled run: two panels
    assert chart.write_chart(tmp_path / "b.png", only_paced) == "`b.png`"
    assert (tmp_path / "a.png").read_bytes().startswith(b"\x89PNG")
    assert chart.write_chart(tmp_path / "c.png", []) == "skipped: no figures"


def test_report_flags_scenarios_disturbed_by_other_processes(tmp_path: Path) -> None:
    busy = _result("raw", 30.0, _path("http", 29.9, 6.0, 9.0))
    busy["machine_cpu_percent"]["other"] = 80.0
    results = [busy, _result("stream", 30.0, _path("redis", 30.0, 5.0, 7.0))]
    text = report.write_report(tmp_path, _report(results))
    assert "during 1 of 2 scenarios" in text
    assert "raw 1280x720 30 fps (80 %)" in text


def _library(encode: float, decode: float, half: float, rst: float | None = None) -> dict:
    figures = {"available": True, "version": "1.0", "encode_ms": encode, "decode_ms": decode}
    figures |= {"decode_half_ms": half, "encode_rst_ms": rst, "bytes": 81920.0}
    return {**figures, "encode_rst_bytes": None if rst is None else 82000.0}


LIBRARIES = {
    "floor_libraries": {"encode": "cv2", "decode": "simplejpeg", "viewer": "cv2"},
    "quality": 80,
    "subsampling": "4:2:0",
    "restart_interval": 80,
    "libraries": {
        "cv2": {**_library(2.0, 2.5, 1.25, rst=2.25), "encode_cpu_ms": 1.5},
        "simplejpeg": _library(2.2, 1.9, 1.0),
        "turbojpeg": {"available": False, "reason": "not available: no libturbojpeg"},
    },
    "fastest": {"encode": "cv2", "decode": "simplejpeg", "decode_half": "simplejpeg"},
    "limit": {"encode_ms": 2.0, "transfer_ms": 0.25, "decode_ms": 2.0, "total_ms": 4.5},
}
LIBRARIES["limit"]["libraries"] = {"encode": "cv2", "decode": "simplejpeg"}


def _report(results: list[dict]) -> dict:
    return {
        "started": "2026-01-01 00:00:00 +0000",
        "elapsed_seconds": 100.0,
        "machine": {
            "cpu_model": "Test CPU",
            "cores": 2,
            "python": "3.11",
            "opencv": "5.0",
            "redis_server": "7.0",
        },
        "options": {"duration": 8.0},
        "codec": {
            "1280x720": {
                "encode_ms": 2,
                "decode_ms": 2,
                "viewer_encode_ms": 4,
                "total_ms": 4,
                "floor_ms": 8,
                "own_floor_ms": 5,
                "bytes": 81920,
                **LIBRARIES,
            }
        },
        "results": results,
    }


def test_report_writes_json_markdown_and_ratios_without_verdicts(tmp_path: Path) -> None:
    text = report.write_report(tmp_path, _report(RESULTS))

    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["results"] == RESULTS
    assert saved["machine"]["cpu_model"] == "Test CPU"
    assert (tmp_path / "results.md").read_text() == text
    row = "| raw | http raw | 1280x720 | 30 fps | 29.9 | 28.9 | 6.0 / 9.0 / 10.0 | 8.0 / 11.0 / - |"
    assert row in text
    # 60 % of a core over 8 s is 4.8 s of CPU, over 231.2 viewed frames: 20.76 ms, 2.6x the floor.
    cpu = "| sender 40, http-receiver 20, other 11, steal 0 | 20.76 | 2.6x | 1.5x |"
    assert "80.0 KiB | capture 3 " + cpu in text
    assert "nearest-rank" in text and "no bucket interpolation" in text
    assert "| raw 1280x720 30 fps | 231 | 13.84 | 6.92 | 20.76 | 2.6x | 4.15x |" in text
    assert "| 1280x720 | 2.00 | 2.00 | 4.00 | 4.00 | 8.00 | - | - | 80.0 KiB |" in text
    # A table per JPEG library, the fastest at each step, and the physical limit.
    assert "### cv2 1.0\n\n| resolution | encode ms | encode, restart every MCU row ms |" in text
    assert "| 1280x720 | 2.00 (1.50 CPU) | 2.25 | 2.50 | 1.25 | 80.0 KiB |" in text
    assert "| 1280x720 | 2.20 | - | 1.90 | 1.00 | 80.0 KiB |" in text  # simplejpeg
    assert "### turbojpeg\n\nnot available: no libturbojpeg\n" in text
    fastest = "encode **cv2** (1.50 ms CPU), decode **simplejpeg** (1.90 ms), decode at 1/2 scale"
    assert f"Fastest at 1280x720 (by median CPU time): {fastest} **simplejpeg** (1.00 ms)." in text
    assert "| 1280x720 | 2.00 | 0.25 | 2.00 | 4.50 |" in text
    assert "| 2.6x | 1.5x | +1.5 ms (1.3x) |" in text  # http raw at 30 fps: p50 6.0 ms
    # The summary, near the top: ours against the article's design, the floor and the limit.
    assert text.index("## Summary") < text.index("## Codec cost") < text.index("## Results")
    http = "| http `raw` against `article-http` | 1280x720 | 160.0 / - | 6.0 / 20.0 (0.30x) "
    assert http + "| 2.6x / 3.1x | +1.5 ms (1.3x) |" in text
    redis = "| redis `stream` against `article-redis` | 1280x720 | - / - | 4.0 / - | 2.7x / - "
    assert redis + "| -0.5 ms (0.9x) |" in text
    http_row, redis_row = saved["summary"]
    assert http_row["fps"] == [160.0, None] and http_row["fps_ratio"] is None
    assert http_row["p50_ratio"] == pytest.approx(0.3)
    assert http_row["over_limit_ms"] == pytest.approx(1.5) and http_row["limit_ms"] == 4.5
    assert redis_row["cpu_over_floor"][1] is None
    assert "**Overflow**" not in text
    assert "failed: redis-receiver exited with status 1" in text

    (compared,) = saved["comparisons"]  # stream against article-redis: not measured
    assert compared["ours"] == "raw" and compared["theirs"] == "article-http"
    assert compared["fps_ratio"] == pytest.approx(29.9 / 25.0)
    assert compared["p50_ratio"] == pytest.approx(6.0 / 20.0)
    assert "## Against the article's design\n\n" + report.ARTICLE_NOTE in text
    assert "| http | `raw` against `article-http` | 1280x720 | 30 fps |" in text
    assert "29.9 against 25.0 | 1.20x | 6.0 against 20.0 | 0.30x |" in text
    assert "| article-http | http article-http | 1280x720 | 30 fps | 25.0 |" in text
    assert "The article's sender encoded at JPEG quality 80 (framewire's, for equal work)." in text
    at_95 = {**_report(RESULTS), "options": {"duration": 8.0, "article_quality": 95}}
    text_95 = report.write_report(tmp_path, at_95)
    assert "quality 80 (the article's design: 95)" in text_95
    assert "JPEG quality 95 (cv2's default, the article's own)." in text_95
    for verdict in ("**met**", "MISSED", "not measured", "## Targets"):
        assert verdict not in text  # verdicts belong to bench-check
    assert "targets" not in saved
    assert "**Noisy**" not in text  # others used 11 % of a core: below the threshold

    has_matplotlib = importlib.util.find_spec("matplotlib") is not None
    assert (tmp_path / "chart.png").exists() == has_matplotlib
    assert ("skipped: matplotlib is not installed" in text) != has_matplotlib


RESULTS = [
    _result("raw", 30.0, _path("http", 29.9, 6.0, 9.0)),
    _result("stream", 30.0, _path("redis", 29.0, 4.0, 7.0)),  # too slow for the target
    _result("raw", 0.0, _path("http", 160.0, 7.0, 12.0)),
    _result("article-http", 30.0, _path("http", 25.0, 20.0, 30.0)),
    _result("stream", 0.0, error="redis-receiver exited with status 1"),
]
ROOT = Path(__file__).resolve().parents[2]


def checked(results: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """scripts/bench_check.py's main() on `results` in this process, answered as a process is."""
    spec = importlib.util.spec_from_file_location(
        "bench_check", ROOT / "scripts" / "bench_check.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = module.main([str(results), *args])
    return subprocess.CompletedProcess(["bench_check"], code, out.getvalue(), err.getvalue())


def test_bench_check_holds_results_against_the_checked_in_targets(tmp_path: Path) -> None:
    """Every target in docs/bench/targets.json gets one verdict line, then a summary."""
    report.write_report(tmp_path, _report(RESULTS))
    done = checked(tmp_path / "results.json")
    checked_in = json.loads((ROOT / "docs/bench/targets.json").read_text())
    count = sum(len(targets) for targets in checked_in.values() if isinstance(targets, list))
    assert {"paths", "limit", "between", "comparisons", "floor", "capacity"} <= set(checked_in)
    lines = done.stdout.splitlines()
    assert len(lines) == count + 1, done.stdout
    verdicts = [line.split(":")[0].strip() for line in lines[:-1]]
    assert set(verdicts) <= {"met", "MISSED", "not measured"}
    assert lines[-1].startswith(f"bench-check: {verdicts.count('met')} of {count} targets met")
    assert done.returncode == (0 if verdicts.count("met") == count else 1)


def test_bench_check_gives_a_verdict_per_target(tmp_path: Path) -> None:
    report.write_report(tmp_path, _report(RESULTS))
    targets = tmp_path / "targets.json"
    path = {"resolution": "1280x720", "rate_fps": 30, "min_fps": 29.5}
    against = {"transport": "http", "ours": "raw", "theirs": "article-http"}
    targets.write_text(
        json.dumps(
            {
                "paths": [
                    {**path, "scenario": "raw", "transport": "http", "max_p95_ms": 15},
                    {**path, "scenario": "stream", "transport": "redis", "max_p50_ms": 1},
                    {**path, "scenario": "stream", "transport": "redis", "rate_fps": 0},
                ],
                "comparisons": [
                    {**against, "resolution": "1280x720", "rate_fps": 30, "min_fps_ratio": 1.1}
                ],
            }
        )
    )
    done = checked(tmp_path / "results.json", "--targets", str(targets))
    assert done.returncode == 1, done.stderr
    verdicts = [line.split(":")[0].strip() for line in done.stdout.splitlines()[:-1]]
    assert verdicts == ["met", "MISSED", "not measured", "met"], done.stdout
    assert done.stdout.splitlines()[-1].startswith("bench-check: 2 of 4 targets met")


def test_bench_check_holds_cpu_over_floor_and_capacity(tmp_path: Path) -> None:
    report.write_report(tmp_path, _report(RESULTS))
    measured = json.loads((tmp_path / "results.json").read_text())["results"]
    raw = next(r for r in measured if r["scenario"] == "raw" and r.get("cpu_over_floor"))
    floor = {key: raw[key] for key in ("scenario", "resolution", "rate_fps")}
    own = {**floor, "floor": "own"}
    capacity = tmp_path / "capacity.json"
    found = [
        {"setup": "redis", "phase": "spread", "largest": 11, "codec_limit": 14.0},
        {"setup": "redis", "phase": "aligned", "largest": 6, "codec_limit": 14.0},
        {"setup": "both", "largest": 5},  # a run from before the phases: every camera at once
    ]
    for setup in found[:2]:
        setup["of_codec_limit"] = setup["largest"] / setup["codec_limit"]
    capacity.write_text(json.dumps({"capacity": found}))
    targets = tmp_path / "targets.json"
    targets.write_text(
        json.dumps(
            {
                "floor": [
                    {**floor, "max_cpu_over_floor": raw["cpu_over_floor"] + 0.01},
                    {**floor, "max_cpu_over_floor": raw["cpu_over_floor"] - 0.01},
                    {**floor, "scenario": "pubsub", "max_cpu_over_floor": 9},
                    {**own, "max_cpu_over_floor": raw["cpu_over_own_floor"] + 0.01},
                    {**own, "max_cpu_over_floor": raw["cpu_over_own_floor"] - 0.01},
                ],
                "capacity": [
                    {"setup": "redis", "min_cameras": 11},
                    {"setup": "redis", "min_cameras": 12},
                    {"setup": "http", "min_cameras": 1},
                    {"setup": "redis", "phase": "spread", "min_of_codec_limit": 0.7},
                    {"setup": "redis", "phase": "aligned", "min_of_codec_limit": 0.5},
                    {"setup": "both", "phase": "spread", "min_cameras": 1},
                    {"setup": "both", "phase": "aligned", "min_cameras": 5},
                    {"setup": "both", "phase": "aligned", "min_of_codec_limit": 0.1},
                ],
            }
        )
    )
    args = ["--targets", str(targets), "--capacity", str(capacity)]
    done = checked(tmp_path / "results.json", *args)
    lines = done.stdout.splitlines()[:-1]
    verdicts = [line.split(":")[0].strip() for line in lines]
    floors = ["met", "MISSED", "not measured", "met", "MISSED"]
    capacities = ["met", "MISSED", "not measured", "met", "MISSED"]
    capacities += ["not measured", "met", "not measured"]  # no codec limit in an old run
    assert verdicts == floors + capacities, done.stdout + done.stderr
    assert "framewire's own floor (encode + decode + splice)" in lines[3]
    assert "11 cameras, 0.79 of the codec-bound 14.0" in lines[5]
    assert "6 cameras, 0.43 of the codec-bound 14.0" in lines[9]
    assert done.returncode == 1


def test_bench_check_holds_latency_over_the_limit_and_http_against_redis(tmp_path: Path) -> None:
    results = [*RESULTS, _result("stream", 0.0, _path("redis", 200.0, 9.0, 15.0))]
    report.write_report(tmp_path, _report(results))  # the physical limit: 4.5 ms
    path = {"resolution": "1280x720", "rate_fps": 30}
    http, redis = (
        {"scenario": "raw", "transport": "http"},
        {"scenario": "stream", "transport": "redis"},
    )
    between = {"ours": http, "theirs": redis, "resolution": "1280x720", "rate_fps": 0}
    targets = tmp_path / "targets.json"
    targets.write_text(
        json.dumps(
            {
                "limit": [  # http: p50 6.0 ms (1.33x), p95 9.0 (2.00x); redis 4.0 and 7.0
                    {**path, **http, "max_p50_over_limit": 1.15, "max_p95_over_limit": 2.0},
                    {**path, **redis, "max_p50_over_limit": 1.15, "max_p95_over_limit": 1.6},
                    {**path, **redis, "max_p95_over_limit": 1.4},
                    {**path, **http, "rate_fps": 15, "max_p50_over_limit": 9},
                ],
                "between": [  # unthrottled: http 160 fps, redis 200
                    {**between, "min_fps_ratio": 0.8},
                    {**between, "min_fps_ratio": 0.9},
                    {
                        **between,
                        "rate_fps": 30,
                        "theirs": {**redis, "scenario": "pubsub"},
                        "min_fps_ratio": 0,
                    },
                ],
            }
        )
    )
    done = checked(tmp_path / "results.json", "--targets", str(targets))
    lines = done.stdout.splitlines()
    verdicts = [line.split(":")[0].strip() for line in lines[:-1]]
    assert verdicts == ["MISSED", "met", "MISSED", "not measured", "met", "MISSED", "not measured"]
    assert "p50 6.0 ms (1.33x), p95 9.0 ms (2.00x) over a limit of 4.50 ms" in lines[0]
    assert "p50 <= 1.15x the physical limit, p95 <= 2x the physical limit" in lines[0]
    assert "160.0 against 200.0 fps (0.80x)" in lines[4]
    assert lines[-1].startswith("bench-check: 2 of 7 targets met")


def test_bench_check_passes_when_every_target_is_met(tmp_path: Path) -> None:
    report.write_report(tmp_path, _report(RESULTS))
    targets = tmp_path / "targets.json"
    target = {"scenario": "raw", "transport": "http", "resolution": "1280x720", "rate_fps": 0}
    targets.write_text(json.dumps({"paths": [{**target, "min_fps": 100, "max_p95_ms": 12}]}))
    done = checked(tmp_path / "results.json", "--targets", str(targets))
    assert done.returncode == 0, done.stdout
    assert done.stdout.splitlines()[-1].startswith("bench-check: 1 of 1 targets met")
    assert checked(tmp_path / "missing.json").returncode == 2


# --- capacity: the search, the cameras file, the report, a real small run ------------------------


def test_capacity_search_doubles_then_bisects() -> None:
    def fake(capacity_: int):  # passes up to `capacity_` cameras
        return lambda count: count <= capacity_

    assert capacity.search(fake(6), 16) == (6, [1, 2, 4, 8, 6, 7])
    assert capacity.search(fake(0), 16) == (0, [1])
    assert capacity.search(fake(99), 10) == (10, [1, 2, 4, 8, 10])  # the cap
    assert capacity.search(fake(11), 12) == (11, [1, 2, 4, 8, 12, 10, 11])
    for limit in range(1, 21):
        for largest in range(25):
            found, tried = capacity.search(fake(largest), limit)
            assert found == min(largest, limit), (limit, largest)
            assert len(tried) == len(set(tried)) and max(tried) <= limit
    with pytest.raises(ValueError):
        capacity.search(fake(1), 0)


def test_capacity_search_from_a_start_halves_down_when_it_fails() -> None:
    """The aligned search starts at the spread answer: a few trials when it is near."""

    def fake(capacity_: int):
        return lambda count: count <= capacity_

    assert capacity.search(fake(6), 16, start=11) == (6, [11, 5, 8, 6, 7])
    assert capacity.search(fake(11), 16, start=11) == (11, [11, 16, 13, 12])
    assert capacity.search(fake(0), 16, start=11) == (0, [11, 5, 2, 1])
    assert capacity.search(fake(99), 10, start=10) == (10, [10])
    assert capacity.search(fake(3), 10, start=1) == capacity.search(fake(3), 10)
    for limit in range(1, 21):
        for start in range(1, 25):
            for largest in range(25):
                found, tried = capacity.search(fake(largest), limit, start)
                assert found == min(largest, limit), (limit, start, largest)
                assert len(tried) == len(set(tried)) and max(tried) <= limit


def test_capacity_verdict_is_fps_and_p95_of_every_camera() -> None:
    camera = capacity.Camera(1280, 720, 30.0)
    assert capacity.verdict(29.5, 20.0, camera)
    assert not capacity.verdict(29.4, 5.0, camera)
    assert not capacity.verdict(30.0, 20.1, camera)
    assert not capacity.verdict(30.0, None, camera)  # no frame in the window


def test_capacity_cameras_file_is_what_the_sender_reads(tmp_path: Path) -> None:
    from framewire.cameras import load_cameras
    from framewire.config import SenderConfig

    camera = capacity.Camera(640, 360, 15.0)
    path = capacity.cameras_file(tmp_path / "cameras.yaml", 3, camera)
    loaded = load_cameras(str(path), SenderConfig(), environ={})
    assert [c.camera for c in loaded] == ["cam0", "cam1", "cam2"]
    assert {(c.source, c.width, c.height, c.fps, c.quality) for c in loaded} == {
        ("synthetic", 640, 360, 15.0, 80)
    }


def test_codec_bound_is_cores_at_85_percent_over_the_codec_work_of_a_frame() -> None:
    bound = capacity_mode.codec_bound(2, 30.0, encode_ms=2.5, decode_ms=2.4, splice_ms=0.31)
    assert bound["ms_per_frame"] == {"one": pytest.approx(5.21), "both": pytest.approx(7.92)}
    assert bound["cameras"]["one"] == pytest.approx(2 * 0.85 * 1000 / (30 * 5.21))  # 10.9
    assert bound["cameras"]["both"] == pytest.approx(2 * 0.85 * 1000 / (30 * 7.92))  # 7.2
    for setup, key in (("http", "one"), ("redis", "one"), ("redis-cluster", "one")):
        assert capacity_mode.bound_of(setup, bound) == bound["cameras"][key]
    assert capacity_mode.bound_of("both", bound) == bound["cameras"]["both"]
    searched = {"setup": "redis", "largest": 8}
    assert capacity_mode.of_bound(searched, bound) == pytest.approx(8 / bound["cameras"]["one"])
    assert capacity_mode.of_bound({"setup": "both", "cameras": 4, "passed": True}, bound) is None


def _trial(count: int, passed: bool, other: float = 5.0) -> dict:
    cameras = {
        f"cam{i}": {"fps": 30.0 if passed else 25.0, "p95_ms": 8.0, "passed": passed}
        for i in range(count)
    }
    path = {"transport": "redis", "passed": passed, "min_fps": 30.0 if passed else 25.0}
    path |= {"max_p95_ms": 8.0, "viewer_fps": 29.9, "viewed_served_ms": {"p95": 11.0}}
    return {
        "setup": "redis",
        "phase": "spread",
        "cameras": count,
        "passed": passed,
        "paths": [{**path, "cameras": cameras}],
        "cpu_percent": {"sender": 50.0},
        "machine_cpu_percent": {"busy": 80.0, "steal": 0.0, "other": other},
    }


def test_capacity_report_gives_the_largest_n_and_the_trials_that_decided_it(
    tmp_path: Path,
) -> None:
    trials = [_trial(1, True), _trial(2, True), _trial(4, False, other=90.0), _trial(3, True)]
    bound = capacity_mode.codec_bound(2, 30.0, encode_ms=2.5, decode_ms=2.4, splice_ms=0.31)
    bound["resolution"] = "1280x720"
    setup = {"setup": "redis", "phase": "spread", "largest": 3, "at_limit": False}
    setup |= {"trials": trials, "codec_limit": bound["cameras"]["one"]}
    setup["of_codec_limit"] = capacity_mode.of_bound(setup, bound)
    aligned_trials = [{**_trial(3, False), "phase": "aligned"}, {**_trial(1, True)}]
    aligned = {**setup, "phase": "aligned", "largest": 1, "trials": aligned_trials}
    aligned["of_codec_limit"] = capacity_mode.of_bound(aligned, bound)
    options = {"cameras": None, "camera_size": "1280x720", "camera_fps": 30.0, "min_fps": 29.5}
    options |= {"duration": 10.0, "warmup": 2.0, "max_cameras": 16}
    machine = {"cpu_model": "test", "cores": 2, "python": "3", "opencv": "5", "redis_server": "7"}
    saved = {"started": "now", "elapsed_seconds": 1.0, "machine": machine, "options": options}
    report_ = {**saved, "codec": bound, "capacity": [setup, aligned]}
    text = bench_run.write(tmp_path, report_, capacity_report.render_markdown)
    row = "| Redis alone | spread | 3 | 10.9 | 0.28x | 1: pass, 2: pass, 4: FAIL, 3: pass |"
    assert row in text
    assert "| Redis alone | aligned | 1 | 10.9 | 0.09x | 3: FAIL, 1: pass |" in text
    assert "| redis | spread | 4 | FAIL (noisy) | redis | 25.0 |" in text
    assert "cam3 25.0 / 8.0 **x**" in text
    assert "One transport: 2 x 0.85 x 1000 / (30 x 5.21 ms) = 10.9 cameras" in text
    assert "both (one encode, two decodes, two splices): 2 x 0.85 x 1000 / (30 x 7.92 ms)" in text
    saved_json = json.loads((tmp_path / "results.json").read_text())
    assert [(s["phase"], s["largest"]) for s in saved_json["capacity"]] == [
        ("spread", 3),
        ("aligned", 1),
    ]
    assert saved_json["capacity"][0]["of_codec_limit"] == pytest.approx(3 / 10.88, abs=1e-3)
    assert saved_json["codec"]["cameras"]["one"] == pytest.approx(10.88, abs=0.01)
    assert capacity_report.summary({"capacity": [setup, aligned]}) == (
        "capacity, Redis alone, spread phases: 3 (0.28 of the codec-bound 10.9)\n"
        "capacity, Redis alone, aligned phases: 1 (0.09 of the codec-bound 10.9)"
    )


# --- variant cost: the windows, the report, a real short run ------------------------------------


def test_variant_cost_measures_no_viewer_then_each_stream() -> None:
    asked: list[tuple[str | None, float]] = []

    def window(query: str | None, seconds: float) -> dict:  # a fake window: bytes by stream
        asked.append((query, seconds))
        if query is None:
            return {"cpu_percent": 10.0}
        rate = {"": 3_200_000, "?width=640&fps=10": 400_000}.get(query, 250_000)
        return {"bytes_per_second": rate, "parts_per_second": 10.0, "bytes_per_part": 40_000}

    figures = variant_cost.measure_all(window, 2.5)
    assert asked == [(None, 2.5), *((query, 2.5) for query in variant_cost.STREAMS.values())]
    assert list(figures) == ["no viewer", *variant_cost.STREAMS]
    assert "share_of_full_bytes" not in figures["full"]
    assert figures["640 px 10 fps"]["share_of_full_bytes"] == 0.125
    assert figures["640 px 10 fps quality 50"]["share_of_full_bytes"] == pytest.approx(
        0.0781, abs=1e-4
    )

    nothing = variant_cost.measure_all(lambda q, s: {"bytes_per_second": 0, "cpu_percent": 1}, 1)
    assert nothing["640 px 10 fps"]["share_of_full_bytes"] is None  # no full stream to divide by

    for row in figures.values():
        row.setdefault("cpu_percent", 12.5)
    machine = {"cpu_model": "test", "cores": 2, "python": "3", "opencv": "5", "redis_server": "7"}
    options = {"duration": 2.5, "camera_size": "1280x720", "camera_fps": 30.0}
    saved = {"started": "now", "elapsed_seconds": 11.0, "machine": machine, "options": options}
    text = variant_cost.markdown({**saved, "variant_cost": figures})
    assert "| no viewer | - | - | - | 10.0 |" in text
    assert "| full | 3,200,000 | 10.0 | 40,000 | 12.5 |" in text
    assert "| `?width=640&fps=10` | 400,000 (12.5 % of full) | 10.0 | 40,000 | 12.5 |" in text
