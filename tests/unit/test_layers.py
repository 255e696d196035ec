"""The package's structure: imports run one way, and the sender never loads the receivers."""

from __future__ import annotations

import ast
from pathlib import Path

import framewire

SRC = Path(framewire.__file__).parent
# Lowest first; a module may import only from its own layer or below.
LAYERS = [  # as docs/internals.md ("Architecture") shows them
    {"frame", "metrics", "settings", "urls", "mailbox", "lanes", "runtime", "resilience"}
    | {"dns"}
    | {"processing", "overlay", "access", "splice", "owners"},
    {"sources", "transports", "transports.http", "transports.http_ingest", "transports.redis"}
    | {"transports.http_members"}
    | {"config", "cameras", "safety"},
    {"pipeline", "hub", "channel", "mjpeg", "grid", "variants", "relay", "relay_tiles"}
    | {"slot", "encodes", "watchers", "figures", "seats", "signals"},
    {"viewer", "ops", "app", "receivers", "worker", "request_buffer", "sender", "client"}
    | {"fanout"},
    {"cli"},
]


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    """Every module of the package and the package modules it imports (anywhere in it).

    `from framewire.transports import redis` imports the module `transports.redis`;
    `from framewire.transports import FrameSink` imports (a name of) the package `transports`.
    """
    paths = {module_name(path): path for path in SRC.rglob("*.py")}
    found: dict[str, set[str]] = {}
    for module, path in paths.items():
        names: list[str] = []
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    submodule = f"{node.module}.{alias.name}"
                    known = submodule.removeprefix("framewire.") in paths
                    names.append(submodule if known else node.module)
            elif isinstance(node, ast.Import):
                names += [a.name for a in node.names]
        targets = {n.removeprefix("framewire.") for n in names if n.startswith("framewire.")}
        found[module] = {t for t in targets if t in paths and t != module}
    return {m: ts for m, ts in found.items() if m}


def layer(module: str) -> int:
    """The layer of a module; a subpackage's modules share the layer of its package."""
    for candidate in (module, module.split(".")[0]):
        for index, members in enumerate(LAYERS):
            if candidate in members:
                return index
    raise AssertionError(f"module {module} has no layer: add it to LAYERS in {__file__}")


def test_no_import_cycle() -> None:
    graph = imports()
    visiting: list[str] = []
    done: set[str] = set()

    def visit(module: str) -> None:
        if module in done:
            return
        assert module not in visiting, "import cycle: " + " -> ".join([*visiting, module])
        visiting.append(module)
        for target in sorted(graph[module]):
            visit(target)
        visiting.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)


def test_imports_run_downwards() -> None:
    upward = [
        f"{module} (layer {layer(module)}) imports {target} (layer {layer(target)})"
        for module, targets in imports().items()
        for target in targets
        if layer(target) > layer(module) and target.split(".")[0] != module.split(".")[0]
    ]
    assert not upward, "\n".join(upward)
