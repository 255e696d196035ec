"""What one viewer costs, full stream against the 640 px 10 fps variant: bytes/s and CPU.

    .venv/bin/python scripts/variant_cost.py [--seconds 10]

Starts an HTTP receiver and a synthetic 1280x720 30 fps sender on loopback (ours, stopped
by PID), then measures for `--seconds` each: no viewer, one viewer of the full stream, one
viewer of `?width=640&fps=10`. Prints the figures as JSON (see framewire.bench.variant_cost).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from framewire.bench.variant_cost import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="framewire-variant-cost-") as directory:
        print(json.dumps(run(Path(directory), args.seconds), indent=2))


if __name__ == "__main__":
    main()
