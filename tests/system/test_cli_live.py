"""The framewire command as a process: its exit status and help, and secrets kept out of a
live receiver's log."""

from __future__ import annotations

import os
import subprocess

from conftest import FRAMEWIRE

SECRET = "hunter2-s3cret"


def run(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FRAMEWIRE, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_main_prints_one_line_and_exits_2() -> None:
    result = run(["send", "--fps", "-1"], {"FRAMEWIRE_TOKEN": SECRET})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "framewire: error: Invalid value for '--fps' / 'FRAMEWIRE_FPS': must be from 0 to 1000"
    ]


def test_help_lists_env_vars() -> None:
    result = run(["send", "--help"])
    assert result.returncode == 0
    assert "FRAMEWIRE_SOURCE" in result.stdout and "FRAMEWIRE_REDIS_URL" in result.stdout


def test_secrets_stay_out_of_the_log(services, redis_server) -> None:
    """A sender with a password in its Redis URL logs the URL redacted."""
    url = f"redis://default:{SECRET}@127.0.0.1:{redis_server.port}/0"
    sender = services.sender(
        "--http-url", "", "--redis-url", url, "--token", SECRET, "--width", "64", "--height", "48"
    )
    sender.stop()
    log = sender.log()
    assert "redis://default:***@127.0.0.1" in log
    assert SECRET not in log
