"""The Helm chart carries copies of the canonical monitoring files: they are equal."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "framewire"


def test_chart_copies_equal_the_canonical_files() -> None:
    """The chart cannot read outside its directory: its copies must not drift."""
    pairs = {
        CHART / "files" / "alerts.yml": ROOT / "deploy" / "prometheus" / "alerts.yml",
        CHART / "files" / "framewire.json": ROOT / "deploy/grafana/dashboards/framewire.json",
    }
    for copy, canonical in pairs.items():
        assert copy.read_bytes() == canonical.read_bytes(), f"cp {canonical} {copy}"
