"""`make bench-check`: hold a bench's results.json against the targets in docs/bench/targets.json.

    python scripts/bench_check.py [RESULTS] [--targets FILE] [--capacity CAPACITY_RESULTS]

Prints one line per target (met, MISSED or not measured) and exits 1 unless
every target was measured and met. The bench itself reports figures only.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from framewire.bench.against import comparisons, find_path
from framewire.bench.chart import fmt_ms, fmt_rate

ROOT = Path(__file__).resolve().parent.parent

Verdict = tuple[bool | None, str, str]  # met (None: not measured), target, figures


def _bound(value: float | None, low: float | None = None, high: float | None = None) -> bool:
    if value is None:
        return False
    return (low is None or value >= low) and (high is None or value <= high)


def check_paths(targets: list[dict[str, Any]], results: list[dict[str, Any]]) -> Iterator[Verdict]:
    """fps and latency bounds of one transport in one scenario."""
    for t in targets:
        name = (
            f"{t['resolution']} {fmt_rate(t['rate_fps'])}, {t['transport']} in `{t['scenario']}`:"
        )
        bounds = [("fps", ">=", t.get("min_fps")), ("p50 ms", "<=", t.get("max_p50_ms"))]
        bounds.append(("p95 ms", "<=", t.get("max_p95_ms")))
        name += ",".join(f" {what} {op} {value:g}" for what, op, value in bounds if value)
        path = find_path(results, t["scenario"], t["resolution"], t["rate_fps"], t["transport"])
        if path is None:
            yield None, name, "not measured"
            continue
        fps, p50, p95 = path["fps"], path["received_ms"]["p50"], path["received_ms"]["p95"]
        met = (
            _bound(fps, low=t.get("min_fps"))
            and ("max_p50_ms" not in t or _bound(p50, high=t["max_p50_ms"]))
            and ("max_p95_ms" not in t or _bound(p95, high=t["max_p95_ms"]))
        )
        yield met, name, f"{fps:.1f} fps, p50 {fmt_ms(p50)} ms, p95 {fmt_ms(p95)} ms"


def check_comparisons(
    targets: list[dict[str, Any]], results: list[dict[str, Any]]
) -> Iterator[Verdict]:
    """Ratios of framewire's default mode against the article's whole design."""
    measured = comparisons(results)
    keys = ("transport", "ours", "theirs", "resolution", "rate_fps")
    for t in targets:
        bounds = [("fps ratio", ">=", t.get("min_fps_ratio"))]
        bounds.append(("p50 ratio", "<=", t.get("max_p50_ratio")))
        name = (
            f"{t['resolution']} {fmt_rate(t['rate_fps'])}, {t['transport']} `{t['ours']}` against "
            f"`{t['theirs']}`:" + ",".join(f" {w} {op} {v:g}" for w, op, v in bounds if v)
        )
        found = next((c for c in measured if all(c[k] == t[k] for k in keys)), None)
        if found is None:
            yield None, name, "not measured"
            continue
        fps_ratio, p50_ratio = found["fps_ratio"], found["p50_ratio"]
        met = ("min_fps_ratio" not in t or _bound(fps_ratio, low=t["min_fps_ratio"])) and (
            "max_p50_ratio" not in t or _bound(p50_ratio, high=t["max_p50_ratio"])
        )
        figures = [
            f"{value:.2f}x" if value is not None else "-" for value in (fps_ratio, p50_ratio)
        ]
        yield met, name, f"fps {figures[0]}, p50 {figures[1]}"


def check_floor(targets: list[dict[str, Any]], results: list[dict[str, Any]]) -> Iterator[Verdict]:
    """Total CPU per viewed frame of a scenario over its resolution's codec floor."""
    for t in targets:
        name = (
            f"{t['resolution']} {fmt_rate(t['rate_fps'])} `{t['scenario']}`: "
            f"CPU per viewed frame / codec floor <= {t['max_cpu_over_floor']:g}"
        )
        found = next(
            (
                r
                for r in results
                if (r["scenario"], r["resolution"], r["rate_fps"])
                == (t["scenario"], t["resolution"], t["rate_fps"])
            ),
            None,
        )
        ratio = found.get("cpu_over_floor") if found else None
        if ratio is None:
            yield None, name, "not measured"
            continue
        yield _bound(ratio, high=t["max_cpu_over_floor"]), name, f"{ratio:.2f}x"


def check_capacity(
    targets: list[dict[str, Any]], capacity: list[dict[str, Any]]
) -> Iterator[Verdict]:
    """The largest number of cameras a setup carried (`framewire bench --cameras max`)."""
    for t in targets:
        name = f"capacity, {t['setup']}: at least {t['min_cameras']} cameras"
        found = next((c for c in capacity if c["setup"] == t["setup"]), None)
        if found is None:
            yield None, name, "not measured"
            continue
        largest = found["largest"]
        yield largest >= t["min_cameras"], name, f"{largest} cameras"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="?", type=Path, default=Path("bench-results/results.json"))
    parser.add_argument("--targets", type=Path, default=ROOT / "docs/bench/targets.json")
    parser.add_argument(
        "--capacity", type=Path, help="results.json of `framewire bench --cameras max`"
    )
    args = parser.parse_args(argv)
    try:
        results = json.loads(args.results.read_text())["results"]
        targets = json.loads(args.targets.read_text())
        capacity = json.loads(args.capacity.read_text())["capacity"] if args.capacity else []
    except (OSError, ValueError, KeyError) as exc:
        print(f"bench-check: cannot read the results or {args.targets}: {exc}", file=sys.stderr)
        return 2
    verdicts = [
        *check_paths(targets.get("paths", []), results),
        *check_comparisons(targets.get("comparisons", []), results),
        *check_floor(targets.get("floor", []), results),
        *check_capacity(targets.get("capacity", []), capacity),
    ]
    label = {True: "met", False: "MISSED", None: "not measured"}
    for met, name, figures in verdicts:
        print(f"{label[met]:>12}: {name}: {figures}")
    passed = sum(met is True for met, _, _ in verdicts)
    print(f"bench-check: {passed} of {len(verdicts)} targets met ({args.targets})")
    return 0 if passed == len(verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
