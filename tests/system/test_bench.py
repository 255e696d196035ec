"""`framewire bench`: its logic (quantiles, CPU, scenarios, report), bench-check, a quick run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import FRAMEWIRE, wait_until
from framewire_bench import capacity, capacity_mode, codecs, measure, scenarios, variant_cost
from framewire_bench import limit as bench_limit
from framewire_bench.readers import Viewer


def test_cpu_seconds_include_the_child_of_a_process() -> None:
    parent = subprocess.Popen(["/bin/sh", "-c", "sleep 30 & wait"])
    try:
        wait_until(lambda: len(measure.cpu_seconds(parent.pid)) == 2, what="the child")
        used = measure.cpu_seconds(parent.pid)
        assert parent.pid in used and all(value >= 0 for value in used.values())
        assert list(measure.cpu_seconds(parent.pid, children=False)) == [parent.pid]
    finally:
        for pid in measure.cpu_seconds(parent.pid):
            if pid != parent.pid:
                os.kill(pid, 15)
        parent.terminate()
        parent.wait(timeout=10)


ROOT = Path(__file__).resolve().parents[2]


def bench_check(results: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`make bench-check` without make: scripts/bench_check.py on `results`."""
    script = str(ROOT / "scripts" / "bench_check.py")
    return subprocess.run(
        [sys.executable, script, str(results), *args], capture_output=True, text=True, timeout=60
    )


# --- codec timings and the loopback limit, measured on this machine (a library lookup
# runs ldconfig; the limit uses a loopback listener) ---------------------------------------------


def test_each_library_times_the_same_frames_and_the_fastest_is_named() -> None:
    found = codecs.compare(176, 120, count=3)
    assert (found["quality"], found["subsampling"], found["restart_interval"]) == (80, "4:2:0", 11)
    table = found["libraries"]
    assert set(table) == {"cv2", "simplejpeg", "turbojpeg"}
    assert table["cv2"]["available"] and table["simplejpeg"]["available"]  # the services' own
    timed = {name: figures for name, figures in table.items() if figures["available"]}
    for name, figures in timed.items():
        for step in ("encode", "decode", "decode_half"):
            assert figures[f"{step}_ms"] > 0 and figures[f"{step}_cpu_ms"] > 0, (name, step)
        assert figures["shape_half"] == [60, 88, 3], name  # decoded at 1/2 scale in the DCT
        assert 0.8 < figures["bytes"] / table["cv2"]["bytes"] < 1.25, name  # alike quality
    # Restart markers cost bytes (2 each, plus padding to a byte): the interval took effect.
    assert table["cv2"]["encode_rst_bytes"] > table["cv2"]["bytes"]
    assert table["simplejpeg"]["encode_rst_ms"] is None  # only cv2 exposes it
    for step, name in found["fastest"].items():
        assert table[name][f"{step}_cpu_ms"] == min(f[f"{step}_cpu_ms"] for f in timed.values())


def test_physical_limit_is_encode_loopback_and_decode_of_one_frame() -> None:
    limit = bench_limit.physical_limit(160, 120, count=5)
    assert limit["libraries"] == {"encode": "cv2", "decode": "simplejpeg"}
    parts = [limit[f"{step}_ms"] for step in ("encode", "transfer", "decode")]
    assert all(value > 0 for value in parts), limit
    assert limit["total_ms"] >= max(parts)  # the chain, ending at the receiver's answer


def test_codec_bound_comes_from_the_bench_codec_timings() -> None:
    bound = capacity_mode.measure_bound(capacity.Camera(160, 120, 30.0), cores=2)
    assert bound["resolution"] == "160x120"
    assert min(bound[f"{step}_ms"] for step in ("encode", "decode", "splice")) > 0
    assert bound["cameras"]["one"] > bound["cameras"]["both"] > 0


# --- a real quick run ---------------------------------------------------------------------------


def test_quick_run_measures_every_scenario(tmp_path: Path) -> None:
    out = tmp_path / "results"
    args = ["--quick", "--resolutions", "160x120", "--duration", "1.5", "--out", str(out)]
    command = [FRAMEWIRE, "bench", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]

    saved = json.loads((out / "results.json").read_text())
    expected = scenarios.scenarios(list(scenarios.MODES), [(160, 120)], [30.0, 0.0], quick=True)
    assert [r["name"] for r in saved["results"]] == [s.name for s in expected]
    for result in saved["results"]:
        assert "error" not in result, result
        assert [p["transport"] for p in result["paths"]] == list(result["modes"])
        assert result["cpu_percent"]["sender"] > 0
        assert result["machine_cpu_percent"]["busy"] > 0
        assert result["cpu_ms_per_frame"]["total"] > 0 and result["cpu_over_floor"] > 0
        own_floor = saved["codec"]["160x120"]["own_floor_ms"]  # timings: no order asserted
        per_frame = result["cpu_ms_per_frame"]["total"]
        assert result["cpu_over_own_floor"] == pytest.approx(per_frame / own_floor)
        for path in result["paths"]:
            assert path["fps"] > 0, result["name"]
            assert path["viewer_fps"] > 0 and path["viewer_frames"] > 0, result["name"]
            assert path["bytes_per_frame"] > 0, result["name"]
            for stage in ("received_ms", "served_ms"):
                exact = path[stage]
                assert exact["frames"] > 0 and exact["overflow"] in (True, False), stage
                assert exact["method"].startswith("exact"), stage  # the article's too
                assert exact["p50"] <= exact["p95"] <= exact["p99"], (result["name"], stage)
            assert all(v is not None for v in path["received_hist_ms"].values()), result["name"]
    codec = saved["codec"]["160x120"]
    assert codec["floor_ms"] > codec["total_ms"] > 0
    assert codec["own_floor_ms"] == pytest.approx(codec["total_ms"] + codec["viewer_splice_ms"])
    assert {"cv2", "simplejpeg", "turbojpeg"} == set(codec["libraries"])
    assert codec["libraries"][codec["fastest"]["decode"]]["available"]
    assert codec["limit"]["total_ms"] > codec["limit"]["transfer_ms"] > 0
    assert [(row["transport"], row["theirs"]) for row in saved["summary"]] == [
        ("http", "article-http"),
        ("redis", "article-redis"),
    ]
    assert all(row["over_limit_ms"] is not None for row in saved["summary"])
    assert {(c["transport"], c["theirs"], c["rate_fps"]) for c in saved["comparisons"]} == {
        ("http", "article-http", 30.0),
        ("redis", "article-redis", 30.0),
    }
    assert (out / "results.md").exists()
    assert "| scenario | mode |" in done.stdout  # the table is printed too
    assert "## CPU per viewed frame (ms)" in done.stdout
    for section in ("## Summary", "## JPEG libraries", "### turbojpeg", "## Physical limit"):
        assert section in done.stdout
    assert "MISSED" not in done.stdout and "Targets" not in done.stdout

    # The same run against lenient targets at its own size: bench-check passes.
    targets = tmp_path / "targets.json"
    path = {"scenario": "both", "resolution": "160x120", "rate_fps": 30, "min_fps": 1}
    compare = {"transport": "redis", "ours": "stream", "theirs": "article-redis"}
    compare |= {"resolution": "160x120", "rate_fps": 30, "min_fps_ratio": 0.01}
    own = {"scenario": "both", "resolution": "160x120", "rate_fps": 30, "floor": "own"}
    lenient = {
        "paths": [{**path, "transport": "http"}, {**path, "transport": "redis"}],
        "limit": [{**path, "transport": "redis", "max_p50_over_limit": 1000}],
        "comparisons": [compare],
        "floor": [{**own, "max_cpu_over_floor": 1000}],
    }
    targets.write_text(json.dumps(lenient))
    checked = bench_check(out / "results.json", "--targets", str(targets))
    assert checked.returncode == 0, checked.stdout + checked.stderr


# --- the viewer's count of frames written ------------------------------------------------------


def test_viewer_counts_a_boundary_split_between_two_reads(tmp_path: Path) -> None:
    boundary = b"--frame"
    # The second boundary starts 3 bytes before the 64 KiB mark, where one read ends.
    first = boundary + b"\r\n\r\n" + b"x" * (65536 - 3 - len(boundary) - 6) + b"\r\n"
    body = first + (boundary + b"\r\n\r\n" + b"y" * 1000 + b"\r\n") * 2
    assert body.index(boundary, 1) == 65536 - 3

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        viewer = Viewer(f"http://127.0.0.1:{server.server_port}/")
        viewer.start()
        viewer.join(timeout=10)
        assert (viewer.parts, viewer.bytes) == (3, len(body))
    finally:
        server.shutdown()
        server.server_close()


def test_capacity_mode_runs_a_trial_per_setup(tmp_path: Path) -> None:
    out = tmp_path / "capacity"
    args = ["--cameras", "2", "--camera-size", "320x240", "--duration", "2", "--out", str(out)]
    args += ["--setups", "http,both"]  # the default phases: spread, then aligned
    done = subprocess.run([FRAMEWIRE, "bench", *args], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]

    saved = json.loads((out / "results.json").read_text())
    assert saved["kind"] == "capacity" and saved["options"]["min_fps"] == 29.5
    assert saved["options"]["phases"] == ["spread", "aligned"]
    assert [(s["setup"], s["phase"]) for s in saved["capacity"]] == [
        ("http", "spread"),
        ("http", "aligned"),
        ("both", "spread"),
        ("both", "aligned"),
    ]
    codec = saved["codec"]
    assert codec["resolution"] == "320x240" and codec["cores"] == os.cpu_count()
    assert codec["cameras"]["one"] > codec["cameras"]["both"] > 0
    for setup in saved["capacity"]:
        assert setup["cameras"] == 2 and setup["passed"] == setup["trials"][-1]["passed"]
        assert (
            setup["codec_limit"] == codec["cameras"]["both" if setup["setup"] == "both" else "one"]
        )
        assert setup["of_codec_limit"] is None  # a trial at N, not a search
        for trial in setup["trials"]:
            assert "error" not in trial, trial
            assert trial["phase"] == setup["phase"]
            transports = [p["transport"] for p in trial["paths"]]
            assert transports == list(capacity.SETUPS[setup["setup"]])
            assert trial["cpu_percent"]["sender"] > 0
            for path in trial["paths"]:
                assert set(path["cameras"]) == {"cam0", "cam1"}
                assert path["viewer_fps"] > 0 and path["viewed_served_ms"]["frames"] > 0
                for figures in path["cameras"].values():
                    assert figures["fps"] > 0 and figures["captured_fps"] > 0
                    assert 0 < figures["p50_ms"] <= figures["p95_ms"] <= figures["p99_ms"]
                    meets = figures["fps"] >= 29.5 and figures["p95_ms"] <= 20.0
                    assert figures["passed"] == meets, figures
                assert path["passed"] == all(c["passed"] for c in path["cameras"].values())
                assert path["min_fps"] == min(c["fps"] for c in path["cameras"].values())
            assert trial["passed"] == all(p["passed"] for p in trial["paths"])
    assert "| setup | phases | result | codec-bound limit |" in done.stdout
    assert (out / "results.md").read_text() in done.stdout  # the report is printed too


def test_variant_cost_mode_writes_its_section(tmp_path: Path) -> None:
    out = tmp_path / "variants"
    args = ["--variant-cost", "--camera-size", "320x240", "--duration", "1", "--out", str(out)]
    done = subprocess.run([FRAMEWIRE, "bench", *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]

    saved = json.loads((out / "results.json").read_text())
    assert saved["kind"] == "variant-cost" and saved["results"] == []
    assert saved["options"] == {"duration": 1.0, "camera_size": "320x240", "camera_fps": 30.0}
    figures = saved["variant_cost"]
    assert list(figures) == ["no viewer", *variant_cost.STREAMS]
    assert figures["no viewer"]["cpu_percent"] >= 0
    for name in variant_cost.STREAMS:
        stream = figures[name]
        assert stream["parts_per_second"] > 0 and stream["bytes_per_part"] > 0, name
        assert stream["cpu_percent"] > 0, name
    share = figures["640 px 10 fps"]["share_of_full_bytes"]
    expected = figures["640 px 10 fps"]["bytes_per_second"] / figures["full"]["bytes_per_second"]
    assert share == pytest.approx(expected, abs=1e-4)
    assert (out / "results.md").read_text() in done.stdout
    assert "| stream | bytes/s | parts/s | bytes/part |" in done.stdout


def test_replicas_mode_decodes_each_frame_once_across_the_replicas(tmp_path: Path) -> None:
    # The replay producer (the real sender's start is the capacity mode's, tested above).
    producer = "replay"
    out = tmp_path / "replicas"
    args = ["--replicas", "1,2", "--cameras", "2", "--camera-size", "320x240"]
    args += ["--camera-fps", "10", "--duration", "3", "--out", str(out)]
    args += ["--replicas-producer", producer]
    done = subprocess.run([FRAMEWIRE, "bench", *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]

    saved = json.loads((out / "results.json").read_text())
    assert saved["kind"] == "replicas" and saved["pinned"] is None
    assert saved["options"]["producer"] == producer
    assert [t["replica_count"] for t in saved["replicas"]] == [1, 2]
    for trial in saved["replicas"]:
        assert "error" not in trial, trial
        n = trial["replica_count"]
        assert len(trial["replicas"]) == n and all(r["members"] == n for r in trial["replicas"])
        owned = sorted(c for r in trial["replicas"] for c in r["owned"])
        assert owned == ["cam0", "cam1"]  # each camera owned once
        assert all(r["decodes_not_owned"] == 0 for r in trial["replicas"])
        assert trial["frames_sent"] > 0
        assert 0.9 <= trial["decodes_per_frame_sent"] <= 1.1, trial  # holds on a loaded machine
        assert all(r["cpu_percent"] >= 0 for r in trial["replicas"])
        assert trial["producer"] == producer and trial["cpu_percent"][producer] > 0
        assert trial["producer_cpu_per_camera"] == trial["cpu_percent"][producer] / 2
        for name, figures in trial["cameras"].items():
            owner = trial["replicas"][figures["owner"]]
            assert name in owner["owned"] and figures["fps"] > 0 and figures["frames"] > 0
    assert saved["replicas"][0]["cpu_per_replica_over_ideal"] == pytest.approx(1.0)
    assert "| n | decodes per frame sent |" in done.stdout
