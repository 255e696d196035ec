"""One bench run, whatever its mode: its output folder, its clock, the machine, one writer.

Every mode (the scenario matrix, `--cameras`, `--variant-cost`) opens a `Run`
(the folder and its `logs/`, the start time, the machine's CPU and the versions
the figures depend on), builds its report with `Run.report`, writes it with
`write` (results.json, and results.md from the mode's own Markdown) under the
same `heading`, and ends with `Run.finish`.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import click


def redis_server_version() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        return "not installed"
    output = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
    version = next((part for part in output.split() if part.startswith("v=")), "v=?")
    return version[2:]


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


def heading(title: str, report: Mapping[str, Any]) -> list[str]:
    """The top of every results.md: the title, when and how long, and on what machine."""
    machine = report["machine"]
    return [
        f"# {title}",
        "",
        f"{report['started']}, {report['elapsed_seconds']:.0f} s in total. "
        f"{machine['cpu_model']}, {machine['cores']} cores; Python {machine['python']}, "
        f"OpenCV {machine['opencv']}, redis-server {machine['redis_server']}.",
        "",
    ]


def write(out: Path, report: Mapping[str, Any], markdown: Callable[[Any], str]) -> str:
    """Write results.json and results.md (`markdown` of the report) into `out`; the Markdown."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")
    text = markdown(report)
    (out / "results.md").write_text(text)
    return text


class Run:
    """A mode's run: `out` (its services' logs in `logs`), its start and the machine."""

    def __init__(self, out: Path, what: str) -> None:
        self.out, self.logs = out, out / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.started = time.strftime("%Y-%m-%d %H:%M:%S %z")
        self.clock = time.monotonic()
        self.machine = machine_info()
        click.echo(f"framewire bench: {what}; logs in {self.logs}", err=True)

    def seconds(self) -> float:
        return time.monotonic() - self.clock

    def report(self, kind: str | None = None, **sections: Any) -> dict[str, Any]:
        """The report's preamble (`kind`, start, length, machine), then the mode's sections."""
        return {
            **({"kind": kind} if kind else {}),
            "started": self.started,
            "elapsed_seconds": self.seconds(),
            "machine": self.machine,
            **sections,
        }

    def finish(self, text: str, *notes: str) -> None:
        """Print the report, then `notes` and where the results are on stderr."""
        click.echo(text)
        for note in notes:
            click.echo(note, err=True)
        click.echo(f"framewire bench: {self.seconds():.0f} s; results in {self.out}", err=True)
