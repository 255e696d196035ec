"""The replicas mode's logic in process: its options, who owns what, its report, bench-check
(tests/system/test_bench.py runs it for real)."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from prometheus_client import generate_latest

from framewire.metrics import ReceiverMetrics
from framewire_bench import command, replicas, replicas_report
from framewire_bench.readers import Samples, parse_metrics

ROOT = Path(__file__).resolve().parents[2]


def test_replica_counts_are_distinct_numbers_from_1_to_16() -> None:
    assert replicas.parse_replicas("1, 2,3,2") == [1, 2, 3]
    for bad in ("0", "17", "two", "1,,2"):
        with pytest.raises(ValueError, match="from 1 to 16"):
            replicas.parse_replicas(bad)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--replicas", "1,0"], "from 1 to 16"),
        (["--replicas", "1,2", "--cameras", "max"], "--replicas-pinned"),
    ],
)
def test_bad_replica_options_are_one_line_errors(args: list[str], message: str) -> None:
    result = CliRunner().invoke(command.bench, args)
    assert result.exit_code == 2
    assert message in result.output


def _view(members: int, owned: dict[str, int], received: dict[str, int]) -> Samples:
    metrics = ReceiverMetrics()
    metrics.replica_members.labels("redis").set(members)
    for camera, value in owned.items():
        metrics.camera_owned.labels(camera, "redis").set(value)
    for camera, count in received.items():
        metrics.frames_received.labels(camera, "redis").inc(count)
    return parse_metrics(generate_latest(metrics.registry).decode())


def test_each_camera_owner_is_the_replica_reporting_it() -> None:
    views = [
        _view(2, {"cam0": 1, "cam1": 0}, {"cam0": 5, "cam1": 3}),  # cam1: decoded before a handover
        _view(2, {"cam1": 1}, {"cam1": 2}),
    ]
    assert replicas.owned(views[0]) == ["cam0"] and replicas.members(views[1]) == 2
    assert replicas.owners_of(views, ["cam0", "cam1", "cam2"]) == {
        "cam0": [0],
        "cam1": [1],
        "cam2": [],
    }


def _trial(n: int, decodes: float, cpu: list[float], owned: list[list[str]], **extra) -> dict:
    rows = [
        {
            "url": f"http://127.0.0.1:{9000 + i}",
            "core": extra.get("cores", [None] * n)[i],
            "members": n,
            "owned": owned[i],
            "decodes": decodes / n,
            "decodes_not_owned": 0.0,
            "dropped": 0.0,
            "cpu_percent": cpu[i],
            "decode_percent": cpu[i] / 3,
        }
        for i in range(n)
    ]
    machine = {"busy": 100.0, "steal": 0.0, "other": extra.get("other", 5.0)}
    return {
        "replica_count": n,
        "camera_count": extra.get("cameras", 4),
        "pinned": "cores" in extra,
        "passed": extra.get("passed", True),
        "frames_sent": 400.0,
        "decodes": decodes,
        "decodes_per_frame_sent": decodes / 400,
        "dropped": 0.0,
        "cpu_per_replica_mean": sum(cpu) / n,
        "cpu_replicas_total": sum(cpu),
        "cpu_per_replica_over_ideal": extra.get("over"),
        "replicas": rows,
        "min_fps": 29.9,
        "max_p95_ms": 12.5,
        "cpu_percent": {"sender": 30.0, "redis-server": 4.0},
        "machine_cpu_percent": machine,
    }


def _report() -> dict:
    cams = ["cam0", "cam1", "cam2", "cam3"]
    sharing = [
        _trial(1, 400, [20.0], [cams], over=1.0),
        _trial(2, 404, [9.0, 12.0], [cams[:2], cams[2:]], over=1.05),
        _trial(3, 440, [4.0, 8.0, 12.0], [["cam0"], ["cam1"], cams[2:]], over=1.2),
    ]
    one = _trial(1, 400, [90.0], [cams], cores=[0])
    two = _trial(2, 400, [70.0, 70.0], [cams[:2], cams[2:]], cores=[0, 1], cameras=8)
    two["passed"] = False
    pinned = {
        "cores": [0, 1],
        "fps": 30.0,
        "two_over_one": 7 / 4,
        "searches": [
            {"replicas": 1, "largest": 4, "at_limit": False, "trials": [one]},
            {"replicas": 2, "largest": 7, "at_limit": False, "trials": [two]},
        ],
    }
    machine = {
        "cpu_model": "test",
        "cores": 2,
        "python": "3.11",
        "opencv": "5",
        "redis_server": "7",
    }
    options = {"cameras": 4, "camera_size": "1280x720", "camera_fps": 10.0}
    options |= {"duration": 10.0, "warmup": 2.0}
    return {
        "kind": "replicas",
        "started": "now",
        "elapsed_seconds": 60.0,
        "machine": machine,
        "options": options,
        "replicas": sharing,
        "pinned": pinned,
        "results": [],
    }


def test_report_has_a_row_per_replica_count_and_the_pinned_ratio() -> None:
    text = replicas_report.render_markdown(_report())
    assert "| n | decodes per frame sent | CPU per replica % |" in text
    assert "| 2 | 1.010 (404 / 400; 0 not by the owner, 0 skipped) | 9.0, 12.0 | 10.5 (1.05x)" in (
        text
    )
    assert "2 (cam0 cam1) / 2 (cam2 cam3)" in text
    assert "| 1 | sender | 4 | 4: pass |" in text and "| 2 | sender | 7 | 8: FAIL |" in text
    assert "Two replicas over one: 1.75x." in text
    assert "two over one 1.75x" in replicas_report.summary(_report())


def test_the_report_names_the_producer_its_cpu_and_the_senders_comparison() -> None:
    report = _report()
    report["options"]["producer"] = "replay"
    for trial in report["replicas"]:
        trial["producer"] = "replay"
        trial["cpu_percent"] = {"replay": 4.0, "redis-server": 4.0}
    pinned = report["pinned"]
    pinned["producer"] = "replay"
    for search in pinned["searches"]:
        for trial in search["trials"]:
            trial["producer"] = "replay"
            trial["cpu_percent"] = {"replay": 12.0, "redis-server": 6.0}
    sender = _trial(1, 400, [95.0], [["cam0"]], cores=[0], cameras=6)
    sender["cpu_percent"] = {"sender": 48.0, "redis-server": 5.0}
    sender["passed"] = False
    one = {"replicas": 1, "largest": 5, "at_limit": False, "trials": [sender]}
    pinned["sender_one"] = {"producer": "sender", "searches": [one], "two_over_one": None}
    text = replicas_report.render_markdown(report)
    assert "the replay producer (`--replicas-producer replay`" in text
    assert replicas_report.REPLAY_NOTE in text
    assert "| 1 | replay | 4 | 4: pass |" in text and "| 1 | sender | 5 | 6: FAIL |" in text
    assert "Two replicas over one: 1.75x (producer `replay`)." in text
    assert "| 1 | replay | 4 | pass | 29.9 / 12.5 | 90.0 | 12.0 (3.00 per camera) | 6 |" in text
    assert "| 1 | sender | 6 | FAIL | 29.9 / 12.5 | 95.0 | 48.0 (8.00 per camera) | 5 |" in text
    assert "| 2 | 1.010 (404 / 400" in text and "| 4.0 (1.00 per camera) |" in text
    summary = replicas_report.summary(report)
    assert "producer replay): 1: 4, 2: 7; two over one 1.75x" in summary
    assert "with the real sender: 1: 5" in summary
    assert "replay 4.0 (1.00 per camera) % of a core" in summary


def test_bench_check_holds_decodes_cpu_and_the_pinned_ratio(tmp_path: Path) -> None:
    found = tmp_path / "replicas.json"
    found.write_text(json.dumps(_report()))
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"results": []}))
    targets = tmp_path / "targets.json"
    decodes = [{"replicas": n, "max_decodes_per_frame_sent": 1.05} for n in (1, 2, 3, 4)]
    cpu = [{"replicas": n, "max_cpu_per_replica_over_ideal": 1.1} for n in (2, 3)]
    pinned = [{"replicas": 2, "over": 1, "min_ratio": r} for r in (1.8, 1.7)]
    targets.write_text(json.dumps({"replicas": decodes + cpu, "replicas_pinned": pinned}))
    spec = importlib.util.spec_from_file_location("bench_check", ROOT / "scripts/bench_check.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = module.main([str(results), "--targets", str(targets), "--replicas", str(found)])
    lines = out.getvalue().splitlines()
    verdicts = [line.split(":")[0].strip() for line in lines[:-1]]
    assert verdicts == [
        *["met", "met", "MISSED", "not measured"],  # 1.000, 1.010, 1.100
        *["met", "MISSED"],  # 1.05x, 1.2x
        *["MISSED", "met"],  # 7 against 4 cameras: 1.75x
    ], out.getvalue()
    assert "7 against 4 cameras (1.75x)" in lines[6]
    assert code == 1
