"""`framewire bench`: its own logic (quantiles, CPU, scenarios, report) and one quick real run."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from conftest import FRAMEWIRE, wait_until
from framewire import bench
from framewire.metrics import SECONDS_BUCKETS, ReceiverMetrics, SenderMetrics

INF = math.inf


# --- histogram quantiles ------------------------------------------------------------------------


def test_quantile_interpolates_inside_the_bucket() -> None:
    # 10 in (0, 1], 10 in (1, 2], none above: the median is the top of the first bucket.
    cumulative = [(1.0, 10.0), (2.0, 20.0), (INF, 20.0)]
    assert bench.histogram_quantile(0.5, cumulative) == pytest.approx(1.0)
    assert bench.histogram_quantile(0.75, cumulative) == pytest.approx(1.5)
    assert bench.histogram_quantile(0.25, cumulative) == pytest.approx(0.5)  # first starts at 0
    assert bench.histogram_quantile(1.0, cumulative) == pytest.approx(2.0)


def test_quantile_skips_empty_buckets() -> None:
    cumulative = [(0.001, 0.0), (0.002, 0.0), (0.003, 4.0), (0.004, 4.0), (INF, 4.0)]
    assert bench.histogram_quantile(0.5, cumulative) == pytest.approx(0.0025)
    assert bench.histogram_quantile(0.0, cumulative) == pytest.approx(0.002)


def test_quantile_in_the_inf_bucket_is_the_highest_finite_bound() -> None:
    cumulative = [(0.1, 1.0), (0.5, 2.0), (INF, 10.0)]
    assert bench.histogram_quantile(0.99, cumulative) == 0.5


def test_quantile_without_data_is_none() -> None:
    assert bench.histogram_quantile(0.5, []) is None
    assert bench.histogram_quantile(0.5, [(INF, 5.0)]) is None  # one bucket: nothing to go on
    assert bench.histogram_quantile(0.5, [(1.0, 0.0), (INF, 0.0)]) is None  # no observations
    assert bench.histogram_quantile(0.5, [(1.0, 3.0), (2.0, 5.0)]) is None  # no +Inf bucket


def test_quantile_makes_counts_monotonic() -> None:
    # A scrape racing an observation can show a lower count in a higher bucket.
    cumulative = [(1.0, 10.0), (2.0, 9.0), (3.0, 20.0), (INF, 20.0)]
    assert bench.histogram_quantile(0.5, cumulative) == pytest.approx(1.0)
    assert bench.histogram_quantile(0.75, cumulative) == pytest.approx(2.5)


def test_quantile_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError):
        bench.histogram_quantile(1.5, [(1.0, 1.0), (INF, 1.0)])


def _scrape(registry: CollectorRegistry) -> bench.Samples:
    return bench.parse_metrics(generate_latest(registry).decode())


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
    change = bench.delta(before, _scrape(registry))

    figures = bench.latency_ms(change, "http", "received")
    assert figures["p50"] == pytest.approx(4.0)
    assert 4.0 < figures["p95"] <= 5.0
    assert bench.latency_ms(change, "http", "served") == {"p50": None, "p95": None, "p99": None}
    assert bench.total(change, "framewire_frames_received_total", transport="http") == 100


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
    changes = {name: bench.delta(before[name], after[name]) for name in before}

    summary = bench.summarize(changes, 2.0, {"sender": 10.0, "http-receiver": 20.0})
    (path,) = summary["paths"]
    assert path["transport"] == "http"
    assert path["fps"] == path["sent_fps"] == summary["captured_fps"] == 30.0
    assert path["bytes_per_frame"] == 100_000
    assert 5.0 < path["received_ms"]["p50"] <= 7.5
    assert 7.5 < path["served_ms"]["p50"] <= 10.0
    assert path["drops"] == {"capture": 7, "send": 2, "process": 1}
    assert summary["drops_total"] == 10
    assert summary["cpu_percent"] == {"sender": 10.0, "http-receiver": 20.0}


# --- CPU ----------------------------------------------------------------------------------------


def test_stat_parsing_survives_odd_command_names() -> None:
    fields = ["S"] + ["0"] * 10 + ["150", "25"] + ["0"] * 30  # utime, stime: fields 14, 15
    stat = "4242 (gunicorn: (worker) x) " + " ".join(fields)
    assert bench.parse_stat_ticks(stat) == 175


def test_cpu_percent_of_one_core() -> None:
    before = {10: 100, 11: 50}
    after = {10: 150, 11: 100, 12: 50}  # a child that appeared counts from 0
    assert bench.cpu_percent(before, after, seconds=2.0, hertz=100) == pytest.approx(75.0)
    assert bench.cpu_percent(before, before, seconds=0.0, hertz=100) == 0.0


def test_machine_ticks_and_the_share_of_other_processes() -> None:
    stat = "cpu  100 5 50 9000 20 3 2 7 0 0\ncpu0 50 2 25 4500 10 1 1 3 0 0\n"
    assert bench.parse_machine_ticks(stat) == {"busy": 160, "steal": 7}
    live = bench.parse_machine_ticks(Path("/proc/stat").read_text())
    assert live["busy"] > 0 and live["steal"] >= 0


def test_cpu_ticks_include_the_child_of_a_process() -> None:
    parent = subprocess.Popen(["/bin/sh", "-c", "sleep 30 & wait"])
    try:
        wait_until(lambda: len(bench.process_tree(parent.pid)) == 2, what="the child")
        ticks = bench.cpu_ticks(parent.pid)
        assert set(ticks) == set(bench.process_tree(parent.pid))
        assert all(value >= 0 for value in ticks.values())
    finally:
        for pid in bench.process_tree(parent.pid)[1:]:
            subprocess.run(["kill", str(pid)], check=False)
        parent.terminate()
        parent.wait(timeout=10)


# --- scenarios and options ----------------------------------------------------------------------


def test_full_matrix_and_quick_subset() -> None:
    sizes = bench.parse_resolutions("640x480,1280x720,1920x1080")
    full = bench.scenarios(list(bench.MODES), sizes, [30.0, 0.0])
    assert len(full) == len(bench.MODES) * 3 * 2
    both = next(s for s in full if s.mode == "both")
    assert both.paths == [("http", "raw"), ("redis", "stream")]

    quick = bench.scenarios(list(bench.MODES), sizes, [30.0, 0.0], quick=True)
    assert {s.resolution for s in quick} == {"1280x720"}
    assert {s.mode for s in quick if s.fps == 30} == {"raw", "stream", "both"}
    assert {s.mode for s in quick if s.fps == 0} == set(bench.MODES)


@pytest.mark.parametrize(
    ("env", "value", "message"),
    [
        ("RESOLUTIONS", "1280by720", "WIDTHxHEIGHT"),
        ("MODES", "raw,carrier-pigeon", "comma-separated list"),
        ("RATES", "30,-1", "frame rates"),
    ],
)
def test_bad_options_are_one_line_errors(env: str, value: str, message: str) -> None:
    result = CliRunner().invoke(bench.bench, [], env={f"FRAMEWIRE_BENCH_{env}": value})
    assert result.exit_code == 2
    assert message in result.output


# --- report -------------------------------------------------------------------------------------


def _path(transport: str, fps: float, p50: float, p95: float) -> dict:
    return {
        "transport": transport,
        "frames": fps * 8,
        "fps": fps,
        "sent_fps": fps,
        "received_ms": {"p50": p50, "p95": p95, "p99": p95 + 1},
        "served_ms": {"p50": p50 + 2, "p95": p95 + 2, "p99": None},
        "bytes_per_frame": 81_920.0,
        "drops": {"capture": 3.0, "send": 0.0},
        "send_errors": 0.0,
    }


def _result(mode: str, fps: float, *paths: dict, error: str = "") -> dict:
    scenario = bench.Scenario(mode, 1280, 720, fps)
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
    return {**result, **figures, "machine_cpu_percent": machine}


def test_report_flags_scenarios_disturbed_by_other_processes(tmp_path: Path) -> None:
    busy = _result("raw", 30.0, _path("http", 29.9, 6.0, 9.0))
    busy["machine_cpu_percent"]["other"] = 80.0
    results = [busy, _result("stream", 30.0, _path("redis", 30.0, 5.0, 7.0))]
    text = bench.write_report(tmp_path, _report(results))
    assert "during 1 of 2 scenarios" in text
    assert "raw 1280x720 30 fps (80 %)" in text


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
        "codec": {"1280x720": {"encode_ms": 2, "decode_ms": 2, "total_ms": 4, "bytes": 81920}},
        "results": results,
    }


def test_report_writes_json_markdown_and_targets(tmp_path: Path) -> None:
    results = [
        _result("raw", 30.0, _path("http", 29.9, 6.0, 9.0)),
        _result("stream", 30.0, _path("redis", 29.0, 4.0, 7.0)),  # too slow: missed
        _result("raw", 0.0, _path("http", 160.0, 7.0, 12.0)),
        _result("form-base64", 0.0, _path("http", 20.0, 25.0, 30.0)),
        _result("stream", 0.0, error="redis-receiver exited with status 1"),
    ]
    text = bench.write_report(tmp_path, _report(results))

    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["results"] == results
    assert saved["machine"]["cpu_model"] == "Test CPU"
    assert (tmp_path / "results.md").read_text() == text
    assert (
        "| raw | http raw | 1280x720 | 30 fps | 29.9 | 6.0 / 9.0 / 10.0 | 8.0 / 11.0 / - |" in text
    )
    assert "80.0 KiB | capture 3 | sender 40, http-receiver 20, other 11, steal 0 | 1.5x |" in text
    assert "failed: redis-receiver exited with status 1" in text

    verdicts = {t["target"]: t["met"] for t in saved["targets"]}
    assert verdicts["30 fps 1280x720, http in `raw`: >= 29.5 fps, p50 <= 8 ms, p95 <= 15 ms"]
    assert not verdicts[
        "30 fps 1280x720, redis in `stream`: >= 29.5 fps, p50 <= 8 ms, p95 <= 15 ms"
    ]
    assert verdicts["unthrottled 1280x720, http `raw` alone: >= 150 fps"]
    assert verdicts["unthrottled 1280x720, redis `stream` alone: >= 200 fps"] is None
    against = "unthrottled 1280x720, http `raw` against the article's `form-base64`"
    assert next(met for name, met in verdicts.items() if name.startswith(against))
    assert "**MISSED**" in text and "**met**" in text and "**not measured**" in text
    assert "**Noisy**" not in text  # others used 11 % of a core: below the threshold

    has_matplotlib = importlib.util.find_spec("matplotlib") is not None
    assert (tmp_path / "chart.png").exists() == has_matplotlib
    assert ("skipped: matplotlib is not installed" in text) != has_matplotlib


# --- a real quick run ---------------------------------------------------------------------------


def _bench_command() -> list[str]:
    """`framewire bench` once it is registered in the CLI, else the module itself."""
    from framewire.cli import cli

    if "bench" in cli.commands:
        return [FRAMEWIRE, "bench"]
    return [sys.executable, "-m", "framewire.bench"]


def test_quick_run_measures_every_scenario(tmp_path: Path) -> None:
    out = tmp_path / "results"
    args = ["--quick", "--resolutions", "160x120", "--duration", "1.5", "--out", str(out)]
    done = subprocess.run([*_bench_command(), *args], capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]

    report = json.loads((out / "results.json").read_text())
    expected = bench.scenarios(list(bench.MODES), [(160, 120)], [30.0, 0.0], quick=True)
    assert [r["name"] for r in report["results"]] == [s.name for s in expected]
    for result in report["results"]:
        assert "error" not in result, result
        assert [p["transport"] for p in result["paths"]] == list(result["modes"])
        assert result["cpu_percent"]["sender"] > 0
        assert result["machine_cpu_percent"]["busy"] > 0
        for path in result["paths"]:
            assert path["fps"] > 0, result["name"]
            assert path["bytes_per_frame"] > 0, result["name"]
            for stage in ("received_ms", "served_ms"):
                assert all(v is not None for v in path[stage].values()), (result["name"], stage)
    assert report["codec"]["160x120"]["total_ms"] > 0
    assert (out / "results.md").exists()
    assert "| scenario | mode |" in done.stdout  # the table is printed too
