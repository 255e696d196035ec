"""The cameras file: every camera of one sender, declared once (YAML).

    cameras:
      - id: garden
        source: rtsp://viewer:${CAM_GARDEN_PASSWORD}@192.0.2.7:554/stream1
        quality: 75
      - id: pattern
        source: synthetic
        width: 640
        height: 360
        fps: 15

A camera's keys are `id` (required) and the sender's camera settings
(`CAMERA_KEYS`); a key it leaves out takes the sender's option
(`--source`, `--width`, ...). `${NAME}` in a text value is replaced by the
environment variable NAME (`${NAME:-default}`: default when NAME is unset or
empty), so a credential never has to be in the file. A
bad file is a `CamerasFileError`: one line naming the file, the camera and
the field, never echoing a value (it may hold a password).
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from framewire.config import ConfigError, SenderConfig

# Key in the file -> SenderConfig field (the camera's own settings; transports stay global).
CAMERA_KEYS = {
    "id": "camera",
    "source": "source",
    "width": "width",
    "height": "height",
    "fps": "fps",
    "quality": "quality",
    "open_timeout": "open_timeout",
    "read_timeout": "read_timeout",
}
FIELD_KEYS = {field: key for key, field in CAMERA_KEYS.items()}
MAX_CAMERAS = 64
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_TYPES: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "float": (int, float)}


class CamerasFileError(ValueError):
    """A cameras file that cannot be used; the message is one line, safe to log."""


def expand(value: str, environ: Mapping[str, str]) -> str:
    """`value` with each `${NAME}` replaced from `environ`; KeyError names one that is unset.

    `${NAME:-default}` is `default` when NAME is unset or empty (as in the shell).
    """

    def replace(match: re.Match[str]) -> str:
        name, fallback = match.groups()
        if fallback is not None:
            return environ.get(name) or fallback
        return environ[name]

    return _REFERENCE.sub(replace, value)


def load_cameras(
    path: str, defaults: SenderConfig, environ: Mapping[str, str] | None = None
) -> list[SenderConfig]:
    """One validated config per camera of the file at `path`, on top of `defaults`."""
    environ = os.environ if environ is None else environ

    def fail(message: str) -> CamerasFileError:
        return CamerasFileError(f"cameras file {path}: {message}")

    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise fail(f"cannot be read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise fail("is not UTF-8 text") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise fail(f"is not valid YAML{where}") from None
    if not isinstance(document, dict) or set(document) != {"cameras"}:
        raise fail("must be a mapping with one key, `cameras`: a list of cameras")
    entries = document["cameras"]
    if not isinstance(entries, list) or not entries:
        raise fail("`cameras` must be a non-empty list")
    if len(entries) > MAX_CAMERAS:
        raise fail(f"has {len(entries)} cameras; one sender runs at most {MAX_CAMERAS}")
    cameras: list[SenderConfig] = []
    for number, entry in enumerate(entries, start=1):
        try:
            camera = _camera(entry, number, defaults, environ)
        except CamerasFileError as exc:
            raise fail(str(exc)) from None
        if any(c.camera == camera.camera for c in cameras):
            raise fail(f"camera '{camera.camera}': id: used twice")
        cameras.append(camera)
    return cameras


def _camera(
    entry: Any, number: int, defaults: SenderConfig, environ: Mapping[str, str]
) -> SenderConfig:
    """One camera's config; errors name the camera (its id, or its position) and the key."""
    if not isinstance(entry, dict):
        raise CamerasFileError(f"camera {number}: must be a mapping of keys to values")
    ident = entry.get("id")
    name = f"camera '{ident}'" if isinstance(ident, str) and ident else f"camera {number}"
    unknown = sorted(str(k) for k in entry if k not in CAMERA_KEYS)
    if unknown:
        known = ", ".join(CAMERA_KEYS)
        raise CamerasFileError(f"{name}: unknown key '{unknown[0]}' (known: {known})")
    if "id" not in entry:
        raise CamerasFileError(f"{name}: id: missing")
    types = {f.name: str(f.type) for f in dataclasses.fields(SenderConfig)}
    values: dict[str, Any] = {}
    for key, value in entry.items():
        field = CAMERA_KEYS[key]
        kind = types[field]
        if key == "source" and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # `source: 0`, a device index, as YAML reads it
        if isinstance(value, bool) or not isinstance(value, _TYPES[kind]):
            wanted = {"str": "text", "int": "a whole number", "float": "a number"}[kind]
            raise CamerasFileError(f"{name}: {key}: must be {wanted}")
        if kind == "str":
            try:
                value = expand(value, environ)
            except KeyError as exc:
                raise CamerasFileError(
                    f"{name}: {key}: environment variable {exc.args[0]} is not set"
                ) from None
        values[field] = value
    try:
        return dataclasses.replace(defaults, **values)
    except ConfigError as exc:
        key = FIELD_KEYS.get(exc.name, exc.name)
        raise CamerasFileError(f"{name}: {key}: {exc.message}") from None
