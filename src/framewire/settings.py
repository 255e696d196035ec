"""How a setting is declared and checked: its default, range or choices, help, and check.

A setting is a dataclass field made by `setting()`. The CLI builds one flag
per field (`--max-body`, env `FRAMEWIRE_MAX_BODY`) with the field's default
and help; constructing a `Validated` dataclass checks every field, then its
cross-field rules, raising `ConfigError` that names the field. The settings
themselves are in config.py and, for each transport, in its plug module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING, Field, field, fields
from typing import Any

SECONDS = {"low": 0.01, "high": 3600.0}


class ConfigError(ValueError):
    """A bad setting; `name` is the field (the CLI turns it into a flag and env var).

    A rule between fields may say how it reads from the other fields' side
    (`others`: field -> message): the CLI names the one the user set.
    """

    def __init__(self, name: str, message: str, others: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.name = name
        self.message = message
        self.others = others or {}


def setting(
    default: Any,
    help: str = "",
    *,
    low: float | None = None,
    high: float | None = None,
    choices: tuple[str, ...] = (),
    check: Callable[[Any], None] | None = None,
    path: bool = False,
) -> Any:
    """A config field: its default, help, range or choices, and a `check` of a set value
    (raising ValueError with the reason)."""
    meta = {
        "help": help,
        "low": low,
        "high": high,
        "choices": choices,
        "check": check,
        "path": path,
    }
    return field(default=default, metadata=meta)


def settings(config: type) -> list[Field[Any]]:
    """The setting fields of a config class (fields made by `setting()`)."""
    return [f for f in fields(config) if "help" in f.metadata]


def default(config: type, name: str) -> Any:
    """The default of one setting."""
    value = next(f.default for f in fields(config) if f.name == name)
    assert value is not MISSING
    return value


class Validated:
    """Validates every setting on construction, then the class's own cross-field rules."""

    def __post_init__(self) -> None:
        for f in settings(type(self)):
            _check_field(f, getattr(self, f.name))
        self.check()

    def check(self) -> None:
        """Cross-field rules; raise ConfigError."""


def _check_field(f: Field[Any], value: Any) -> None:
    meta = f.metadata
    if meta["choices"] and value not in meta["choices"]:
        raise ConfigError(f.name, f"must be one of {', '.join(meta['choices'])}")
    if meta["low"] is not None and not meta["low"] <= value <= meta["high"]:
        raise ConfigError(f.name, f"must be from {meta['low']:g} to {meta['high']:g}")
    if meta["check"] is not None and value:
        try:
            meta["check"](value)
        except ValueError as exc:
            raise ConfigError(f.name, str(exc)) from None
