"""Where each service spends its CPU: py-spy profiles of the sender and both receivers.

`python -m framewire_bench.profile --out DIR` starts one bench scenario (by
default `both` at 1280x720, 30 fps: one sender feeding both receivers, one
MJPEG viewer on each), records every process with py-spy for `--seconds`
(sampling only threads that run, so the samples are CPU time), and writes
`profile.md`, per process:

- each thread's CPU over the window (from /proc, named by py-spy's dump):
  this is where native work shows, JPEG encode and decode included, since
  cv2 and simplejpeg release the GIL;
- the Python frames with the most own time while holding the GIL (py-spy
  `--gil`: the innermost frame of each sample). py-spy's idle detection
  counts threads blocked on a lock as active here, so it cannot be trusted
  for wall-clock profiles; GIL samples are work by construction.

py-spy comes with the dev dependencies (requirements-dev.lock).
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from framewire_bench.scenarios import Scenario, start_services
from framewire_bench.stack import RedisServer, StackError

THREAD_LINE = re.compile(r'^Thread (\d+) \((?:idle|active)\): "([^"]*)"', re.M)
TOP = 12
RATE = 250  # samples per second and thread


def worker_pid(pid: int) -> int:
    """The process doing the work: a gunicorn master's worker, or the process itself."""
    process = psutil.Process(pid)
    return next(iter(process.children()), process).pid


def own_time(raw: str) -> tuple[collections.Counter[str], int]:
    """Samples per innermost frame from py-spy's raw (collapsed) output, and the total."""
    frames: collections.Counter[str] = collections.Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        innermost = stack.split(";")[-1].strip()
        frames[innermost] += int(count)
    return frames, sum(frames.values())


def py_spy() -> str:
    found = shutil.which("py-spy", path=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    if found is None:
        raise StackError("py-spy is not installed (it comes with requirements-dev.lock)")
    return found


def thread_names(pid: int) -> dict[int, str]:
    """Thread id -> Python thread name, from `py-spy dump`."""
    dump = subprocess.run([py_spy(), "dump", "--pid", str(pid)], capture_output=True, text=True)
    return {int(m[1]): m[2] for m in THREAD_LINE.finditer(dump.stdout)}


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds so far of every thread of `pid`."""
    ticks = os.sysconf("SC_CLK_TCK")
    result = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        result[int(task.name)] = (int(fields[11]) + int(fields[12])) / ticks
    return result


def record(pids: dict[str, int], seconds: float, out: Path) -> dict[str, Path]:
    """Run one py-spy per process at once for `seconds`; the raw file of each."""
    files, procs = {}, []
    for name, pid in pids.items():
        files[name] = out / f"{name}.txt"
        command = [py_spy(), "record", "--pid", str(pid), "--duration", f"{seconds:g}"]
        command += ["--rate", str(RATE), "--format", "raw", "--gil", "--nonblocking"]
        command += ["--output", str(files[name])]
        procs.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    for proc in procs:
        _, err = proc.communicate(timeout=seconds + 30)
        if proc.returncode:
            raise StackError(f"py-spy failed: {err.decode(errors='replace').strip()[-300:]}")
    return files


@dataclass
class Measured:
    """One process's profile: CPU % of one core per thread name, and its GIL samples file."""

    threads: dict[str, float]
    samples: Path


def report(title: str, measured: dict[str, Measured], seconds: float) -> str:
    """The markdown of one profile run: per process, CPU by thread and top frames by own time."""
    lines = [f"## {title}", ""]
    for name, m in measured.items():
        frames, samples = own_time(m.samples.read_text(errors="replace"))
        total = sum(m.threads.values())
        lines += [f"### {name}: {total:.0f} % of one core", ""]
        busy = sorted(m.threads.items(), key=lambda item: -item[1])
        lines.append("CPU by thread: " + ", ".join(f"{t} {p:.1f} %" for t, p in busy if p >= 0.5))
        gil = samples / RATE / seconds * 100
        lines += ["", f"Python frames holding the GIL ({gil:.0f} % of one core), by own time:"]
        lines += ["", "| own time | frame |", "|---|---|"]
        for frame, count in frames.most_common(TOP):
            lines.append(f"| {100 * count / max(samples, 1):.1f} % | `{frame}` |")
        lines.append("")
    return "\n".join(lines)


def profile(scenario: Scenario, seconds: float, out: Path, title: str) -> str:
    """Start `scenario`, profile its processes, stop it; the markdown section."""
    out.mkdir(parents=True, exist_ok=True)
    redis = RedisServer(log_path=out / "redis.log")
    redis.start()
    try:
        running = start_services(scenario, redis, out / "logs")
        try:
            time.sleep(2.0)  # warm-up: caches, allocator, rate meters
            pids = {"sender": running.sender.proc.pid} if running.sender else {}
            for transport, receiver in running.receivers.items():
                pids[f"{transport}-receiver"] = worker_pid(receiver.proc.pid)
            names = {name: thread_names(pid) for name, pid in pids.items()}
            before = {name: thread_cpu(pid) for name, pid in pids.items()}
            started = time.monotonic()
            files = record(pids, seconds, out)
            elapsed = time.monotonic() - started
            after = {name: thread_cpu(pid) for name, pid in pids.items()}
            running.check()
        finally:
            running.stop()
    finally:
        redis.stop()
    measured = {}
    for name in pids:
        threads: dict[str, float] = collections.defaultdict(float)
        for tid, cpu in after[name].items():
            label = re.sub(r"[-_]\d+$", "", names[name].get(tid, "other"))
            threads[label] += 100 * (cpu - before[name].get(tid, 0.0)) / elapsed
        measured[name] = Measured(dict(threads), files[name])
    return report(title, measured, seconds)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m framewire_bench.profile")
    parser.add_argument("--out", type=Path, default=Path(tempfile.mkdtemp(prefix="profile-")))
    parser.add_argument("--mode", default="both")
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--title", default="")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.split("x"))
    scenario = Scenario(args.mode, width, height, args.fps)
    text = profile(scenario, args.seconds, args.out, args.title or scenario.name)
    (args.out / "profile.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
