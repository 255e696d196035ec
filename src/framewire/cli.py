"""The `framewire` command: `send`, a receiver per transport (`http-receiver`,
`redis-receiver`) and `bench`.

Every option is built from a setting in config.py (its default, help and
checks) and is a flag that also reads a `FRAMEWIRE_*` environment variable.
A bad value stops start-up with one line naming the option and its variable;
secrets (tokens, passwords in URLs) are never echoed.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Callable
from dataclasses import Field
from typing import Any, ClassVar

import click
from click.core import ParameterSource

from framewire import runtime, safety
from framewire.config import ConfigError, ReceiverConfig, SenderConfig, settings
from framewire.transports import Transport
from framewire.transports.registry import TRANSPORTS
from framewire.urls import parse_bind

log = logging.getLogger("framewire")

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]
TYPES = {"int": int, "float": float, "str": str}
# A receiver's options: those every receiver has, then its own transport's.
_OWN = {f.name for t in TRANSPORTS.values() for f in settings(t.receiving)}
RECEIVER_COMMON = [f.name for f in settings(ReceiverConfig) if f.name not in _OWN]


def flag(name: str) -> str:
    """The CLI flag of a setting: `max_body` -> `--max-body`."""
    return "--" + name.replace("_", "-")


def envvar(name: str) -> str:
    """The environment variable of a setting: `max_body` -> `FRAMEWIRE_MAX_BODY`."""
    return "FRAMEWIRE_" + name.upper()


class _Option(click.Option):
    """An option whose errors name it as every start-up error does: its flag and variable."""

    def get_error_hint(self, ctx: click.Context | None) -> str:
        return _hint(self.name or "")


def _option(f: Field[Any], default: Any) -> Decorator:
    meta = f.metadata
    if meta["choices"]:
        kind: Any = click.Choice(meta["choices"])
    elif meta["path"]:
        kind = click.Path(dir_okay=False)
    else:
        kind = TYPES[str(f.type)]
    return click.option(
        flag(f.name),
        cls=_Option,
        envvar=envvar(f.name),
        default=default,
        type=kind,
        help=meta["help"],
        show_default=default != "",
        show_envvar=True,
    )


def options(config: type, names: list[str], **defaults: Any) -> Decorator:
    """Click options for the settings `names` of `config`, in that order."""
    by_name = {f.name: f for f in settings(config)}
    decorators = [_option(by_name[n], defaults.get(n, by_name[n].default)) for n in names]

    def apply(func: Callable[..., Any]) -> Callable[..., Any]:
        for decorate in reversed(decorators):
            func = decorate(func)
        return func

    return apply


def build(config: type, **values: Any) -> Any:
    """The validated config; a bad value becomes a usage error naming the flag and variable."""
    try:
        return config(**values)
    except ConfigError as exc:
        name, message = exc.name, exc.message
        if not _set_by_user(name):  # a rule between options: name the one the user set
            name, message = next(
                ((n, m) for n, m in exc.others.items() if _set_by_user(n)), (name, message)
            )
        raise click.BadParameter(message, param_hint=_hint(name)) from None


def _set_by_user(name: str) -> bool:
    """Whether the option `name` of the running command came from the command line or env."""
    context = click.get_current_context(silent=True)
    source = context.get_parameter_source(name) if context is not None else None
    return source in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)


def _hint(name: str) -> str:
    """How an error names a setting: its flag and its environment variable."""
    return f"'{flag(name)}' / '{envvar(name)}'"


def _start(context: click.Context) -> None:
    """Process set-up for a service that is about to run (never for --help)."""
    level = context.find_root().params["log_level"]
    runtime.tune_malloc()
    runtime.quiet_native_logs(verbose=level.lower() == "debug")


class _Commands(click.Group):
    """The commands; `bench` (a package of its own) is imported only when it is the one run."""

    LAZY: ClassVar[dict[str, tuple[str, str]]] = {"bench": ("framewire_bench.command", "bench")}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*self.commands, *(n for n in self.LAZY if n not in self.commands)]  # as added

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.LAZY and cmd_name not in self.commands:
            module, name = self.LAZY[cmd_name]
            self.add_command(getattr(importlib.import_module(module), name), cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(
    cls=_Commands,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--log-level",
    cls=_Option,
    envvar="FRAMEWIRE_LOG_LEVEL",
    default="info",
    show_default=True,
    show_envvar=True,
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    help="Log level of every service.",
)
@click.version_option(package_name="framewire", prog_name="framewire")
def cli(log_level: str) -> None:
    """framewire: move camera frames over HTTP and Redis, watch them, measure which is faster."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


@cli.command()
@options(SenderConfig, [f.name for f in settings(SenderConfig)])
@click.pass_context
def send(context: click.Context, **values: Any) -> None:
    """Capture frames and send each to the HTTP and Redis receivers."""
    from prometheus_client import start_http_server

    from framewire.cameras import CamerasFileError, load_cameras
    from framewire.sender import Sender

    config: SenderConfig = build(SenderConfig, **values)
    try:
        cameras = load_cameras(config.cameras_file, config) if config.cameras_file else [config]
    except CamerasFileError as exc:
        raise click.BadParameter(str(exc), param_hint=_hint("cameras_file")) from None
    _start(context)
    for warning in safety.warnings(config):
        log.warning("%s", warning)
    sender = Sender(cameras)
    if config.metrics_bind:
        host, port = parse_bind(config.metrics_bind)
        try:
            start_http_server(port, host, registry=sender.metrics.registry)
        except OSError as exc:
            raise click.BadParameter(str(exc.strerror), param_hint=_hint("metrics_bind")) from None
    runtime.on_stop_signals(sender.stop)
    for camera in sender.cameras:
        targets = ", ".join(f"{w.name} {w.target}" for w in camera.workers)
        log.info(
            "sending %s as camera %s to %s",
            camera.source.description,
            camera.config.camera,
            targets,
        )
    sender.run()


def _serve(context: click.Context, transport: str, values: dict[str, Any]) -> None:
    from framewire.processing import load_processor
    from framewire.receivers import serve

    config: ReceiverConfig = build(ReceiverConfig, transport=transport, **values)
    try:
        load_processor(config.processor)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=_hint("processor")) from None
    _start(context)
    for warning in safety.warnings(config):
        log.warning("%s", warning)
    serve(config)


def _receiver(transport: Transport) -> None:
    """The `<name>-receiver` command of a transport: its receiving side, served."""
    peer = next((t for t in TRANSPORTS.values() if t is not transport), transport)
    own = [f.name for f in settings(transport.receiving)]

    @cli.command(f"{transport.name}-receiver", help=transport.receiver_help)
    @options(
        ReceiverConfig,
        [*RECEIVER_COMMON, *own],
        bind=f"0.0.0.0:{transport.port}",
        peer_port=peer.port,  # its peer is another transport's receiver
    )
    @click.pass_context
    def receiver(context: click.Context, **values: Any) -> None:
        _serve(context, transport.name, values)


for _transport in TRANSPORTS.values():
    _receiver(_transport)


def error_line(exc: click.ClickException) -> str:
    """How a usage error is reported: one line."""
    return f"framewire: error: {exc.format_message()}"


def main() -> None:
    """Entry point: click, but every usage error is a single line."""
    try:
        cli.main(standalone_mode=False, prog_name="framewire")
    except click.ClickException as exc:
        click.echo(error_line(exc), err=True)
        sys.exit(exc.exit_code)
    except click.Abort:
        sys.exit(130)
