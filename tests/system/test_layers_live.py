"""The sender, run as a process, loads neither Flask nor the bench."""

from __future__ import annotations

import subprocess
import sys


def test_the_sender_loads_neither_flask_nor_the_bench() -> None:
    code = (
        "import sys, framewire.cli, framewire.sender, framewire.sources, "
        "framewire.transports.http, framewire.transports.redis; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('flask', 'werkzeug')"
        " or m in ('framewire.pipeline', 'framewire.viewer', 'framewire.hub')"
        " or m.startswith('framewire_bench')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]", result.stdout
