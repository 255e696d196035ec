"""`make bench-check`: hold a bench's results.json against the targets in docs/bench/targets.json.

    python scripts/bench_check.py [RESULTS] [--targets FILE] [--capacity CAPACITY_RESULTS]
        [--replicas REPLICAS_RESULTS]

Prints one line per target (met, MISSED or not measured) and exits 1 unless
every target was measured and met. The bench itself reports figures only.

Target kinds (each a list in targets.json): `paths` (fps and latency of one
transport in one scenario), `limit` (its p50 and p95 over the physical limit
the same run measured), `between` (one path's fps over another's), `comparisons`
(framewire's fps over the article's design), `floor` (CPU per viewed frame over
the codec floor, or with `"floor": "own"` over framewire's own floor: encode +
decode + band splice) and `capacity` (a capacity run's largest N per setup and
phase, in cameras or over the codec-bound limit of that run), `replicas` (a
replicas run's decodes per frame sent and mean CPU per replica over n = 1's / n,
per number of replicas) and `replicas_pinned` (its pinned capacity with n
replicas over that with fewer).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from framewire_bench.against import comparisons, find_path
from framewire_bench.chart import fmt_ms, fmt_number, fmt_rate

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


def check_limit(
    targets: list[dict[str, Any]], results: list[dict[str, Any]], codec: dict[str, Any]
) -> Iterator[Verdict]:
    """p50 and p95 of one path over the physical limit the same run measured at its size."""
    for t in targets:
        bounds = [("p50", t.get("max_p50_over_limit")), ("p95", t.get("max_p95_over_limit"))]
        name = (
            f"{t['resolution']} {fmt_rate(t['rate_fps'])}, {t['transport']} in `{t['scenario']}`:"
            + ",".join(
                f" {what} <= {value:g}x the physical limit" for what, value in bounds if value
            )
        )
        path = find_path(results, t["scenario"], t["resolution"], t["rate_fps"], t["transport"])
        limit = ((codec.get(t["resolution"]) or {}).get("limit") or {}).get("total_ms")
        if path is None or not limit:
            yield None, name, "not measured"
            continue
        met, cells = True, []
        for what, high in bounds:
            value = path["received_ms"].get(what)
            ratio = None if value is None else value / limit
            if high is not None:
                met = met and ratio is not None and ratio <= high
            cells.append(f"{what} {fmt_ms(value)} ms ({fmt_number(ratio, 2, 'x')})")
        figures = ", ".join(cells)
        yield met, name, f"{figures} over a limit of {limit:.2f} ms"


def check_between(
    targets: list[dict[str, Any]], results: list[dict[str, Any]]
) -> Iterator[Verdict]:
    """One path's fps over another's in the same run (HTTP's over Redis's, say)."""
    for t in targets:
        ours, theirs = t["ours"], t["theirs"]
        name = (
            f"{t['resolution']} {fmt_rate(t['rate_fps'])}, {ours['transport']} in "
            f"`{ours['scenario']}` against {theirs['transport']} in `{theirs['scenario']}`: "
            f"fps ratio >= {t['min_fps_ratio']:g}"
        )
        paths = [
            find_path(results, p["scenario"], t["resolution"], t["rate_fps"], p["transport"])
            for p in (ours, theirs)
        ]
        if paths[0] is None or paths[1] is None or not paths[1]["fps"]:
            yield None, name, "not measured"
            continue
        ratio = paths[0]["fps"] / paths[1]["fps"]
        figures = f"{paths[0]['fps']:.1f} against {paths[1]['fps']:.1f} fps ({ratio:.2f}x)"
        yield ratio >= t["min_fps_ratio"], name, figures


def check_comparisons(
    targets: list[dict[str, Any]], results: list[dict[str, Any]]
) -> Iterator[Verdict]:
    """fps of framewire's default mode over the article's whole design."""
    measured = comparisons(results)
    keys = ("transport", "ours", "theirs", "resolution", "rate_fps")
    for t in targets:
        name = (
            f"{t['resolution']} {fmt_rate(t['rate_fps'])}, {t['transport']} `{t['ours']}` against "
            f"`{t['theirs']}`: fps ratio >= {t['min_fps_ratio']:g}"
        )
        found = next((c for c in measured if all(c[k] == t[k] for k in keys)), None)
        if found is None or found["fps_ratio"] is None:
            yield None, name, "not measured"
            continue
        ratio = found["fps_ratio"]
        yield _bound(ratio, low=t["min_fps_ratio"]), name, f"fps {ratio:.2f}x"


def check_floor(targets: list[dict[str, Any]], results: list[dict[str, Any]]) -> Iterator[Verdict]:
    """Total CPU per viewed frame of a scenario over its resolution's codec floor (or our own)."""
    for t in targets:
        own = t.get("floor") == "own"
        floor = "framewire's own floor (encode + decode + splice)" if own else "codec floor"
        name = (
            f"{t['resolution']} {fmt_rate(t['rate_fps'])} `{t['scenario']}`: "
            f"CPU per viewed frame / {floor} <= {t['max_cpu_over_floor']:g}"
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
        ratio = found.get("cpu_over_own_floor" if own else "cpu_over_floor") if found else None
        if ratio is None:
            yield None, name, "not measured"
            continue
        yield _bound(ratio, high=t["max_cpu_over_floor"]), name, f"{ratio:.2f}x"


def check_capacity(
    targets: list[dict[str, Any]], capacity: list[dict[str, Any]]
) -> Iterator[Verdict]:
    """The largest number of cameras a setup carried (`framewire bench --cameras max`).

    Per phase (`spread` unless the target says); a result without one is from
    before the phases were spread, when every camera captured at once: `aligned`.
    """
    for t in targets:
        phase = t.get("phase", "spread")
        bounds = []
        if "min_cameras" in t:
            bounds.append(f"at least {t['min_cameras']} cameras")
        if "min_of_codec_limit" in t:
            bounds.append(f"at least {t['min_of_codec_limit']:g} of the codec-bound limit")
        name = f"capacity, {t['setup']}, {phase} phases: {', '.join(bounds)}"
        found = next(
            (
                c
                for c in capacity
                if c["setup"] == t["setup"] and c.get("phase", "aligned") == phase
            ),
            None,
        )
        ratio = (found or {}).get("of_codec_limit")
        if found is None or "largest" not in found or ("min_of_codec_limit" in t and not ratio):
            yield None, name, "not measured"
            continue
        largest = found["largest"]
        met = largest >= t.get("min_cameras", 0) and (ratio or 0) >= t.get("min_of_codec_limit", 0)
        figures = f"{largest} cameras"
        if ratio is not None:
            figures += f", {ratio:.2f} of the codec-bound {found['codec_limit']:.1f}"
        yield met, name, figures


def check_replicas(
    targets: list[dict[str, Any]], sharing: list[dict[str, Any]]
) -> Iterator[Verdict]:
    """Decodes per frame sent, and CPU per replica over 1/n, of n replicas sharing the cameras."""
    bounds = {
        "max_decodes_per_frame_sent": ("decodes across all replicas per frame sent", "{:.3f}"),
        "max_cpu_per_replica_over_ideal": ("mean CPU per replica / (CPU of one / n)", "{:.2f}x"),
    }
    for t in targets:
        key = next(k for k in bounds if k in t)
        what, form = bounds[key]
        name = f"replicas, {t['replicas']} sharing the cameras: {what} <= {t[key]:g}"
        found = next(
            (r for r in sharing if r["replica_count"] == t["replicas"] and "error" not in r), None
        )
        value = (found or {}).get(key.removeprefix("max_"))
        if value is None:
            yield None, name, "not measured"
            continue
        yield _bound(value, high=t[key]), name, form.format(value)


def check_replicas_pinned(
    targets: list[dict[str, Any]], pinned: dict[str, Any] | None
) -> Iterator[Verdict]:
    """Cameras carried by n pinned replicas over those carried by fewer (`over`)."""
    searches = {s["replicas"]: s for s in (pinned or {}).get("searches", [])}
    for t in targets:
        name = (
            f"replicas, pinned to a core each: {t['replicas']} carry >= {t['min_ratio']:g}x "
            f"the cameras of {t['over']}"
        )
        ours, theirs = searches.get(t["replicas"]), searches.get(t["over"])
        if ours is None or theirs is None or not theirs["largest"]:
            yield None, name, "not measured"
            continue
        ratio = ours["largest"] / theirs["largest"]
        figures = f"{ours['largest']} against {theirs['largest']} cameras ({ratio:.2f}x)"
        producer = (pinned or {}).get("producer", "sender")
        figures += f", producer {producer}" if producer != "sender" else ""
        yield ratio >= t["min_ratio"], name, figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="?", type=Path, default=Path("bench-results/results.json"))
    parser.add_argument("--targets", type=Path, default=ROOT / "docs/bench/targets.json")
    parser.add_argument(
        "--capacity", type=Path, help="results.json of `framewire bench --cameras max`"
    )
    parser.add_argument(
        "--replicas", type=Path, help="results.json of `framewire bench --replicas ...`"
    )
    args = parser.parse_args(argv)
    try:
        document = json.loads(args.results.read_text())
        results, codec = document["results"], document.get("codec") or {}
        targets = json.loads(args.targets.read_text())
        capacity = json.loads(args.capacity.read_text())["capacity"] if args.capacity else []
        replicas = json.loads(args.replicas.read_text()) if args.replicas else {}
        sharing, pinned = replicas.get("replicas", []), replicas.get("pinned")
    except (OSError, ValueError, KeyError) as exc:
        print(f"bench-check: cannot read the results or {args.targets}: {exc}", file=sys.stderr)
        return 2
    verdicts = [
        *check_paths(targets.get("paths", []), results),
        *check_limit(targets.get("limit", []), results, codec),
        *check_between(targets.get("between", []), results),
        *check_comparisons(targets.get("comparisons", []), results),
        *check_floor(targets.get("floor", []), results),
        *check_capacity(targets.get("capacity", []), capacity),
        *check_replicas(targets.get("replicas", []), sharing),
        *check_replicas_pinned(targets.get("replicas_pinned", []), pinned),
    ]
    label = {True: "met", False: "MISSED", None: "not measured"}
    for met, name, figures in verdicts:
        print(f"{label[met]:>12}: {name}: {figures}")
    passed = sum(met is True for met, _, _ in verdicts)
    print(f"bench-check: {passed} of {len(verdicts)} targets met ({args.targets})")
    return 0 if passed == len(verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
