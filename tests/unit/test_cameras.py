"""The cameras file: what it declares, and each kind of mistake refused with one line."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from framewire.cameras import CamerasFileError, load_cameras
from framewire.cli import cli, error_line
from framewire.config import SenderConfig

SECRET = "s3cret-pw-1234"
GOOD = """
cameras:
  - id: garden
    source: rtsp://viewer:${CAM_GARDEN_PASSWORD}@192.0.2.7:554/stream1
    quality: 70
  - id: pattern
    width: 640
    height: 360
    fps: 15
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "cameras.yaml"
    path.write_text(text)
    return str(path)


def test_each_camera_takes_the_file_then_the_sender_options(tmp_path: Path) -> None:
    defaults = SenderConfig(quality=90, fps=25.0, read_timeout=3.0)
    garden, pattern = load_cameras(write(tmp_path, GOOD), defaults, {"CAM_GARDEN_PASSWORD": SECRET})
    assert garden.camera == "garden"
    assert garden.source == f"rtsp://viewer:{SECRET}@192.0.2.7:554/stream1"
    assert (garden.quality, garden.fps, garden.read_timeout) == (70, 25.0, 3.0)
    assert (pattern.camera, pattern.source, pattern.quality) == ("pattern", "synthetic", 90)
    assert (pattern.width, pattern.height, pattern.fps) == (640, 360, 15.0)
    # Transport settings are the sender's, shared by every camera.
    assert garden.redis_url == pattern.redis_url == defaults.redis_url


def test_the_shipped_cameras_files_load(monkeypatch: pytest.MonkeyPatch) -> None:
    """deploy/cameras/*.yaml: the default (one synthetic camera) and the example."""
    deploy = Path(__file__).resolve().parents[2] / "deploy" / "cameras"
    monkeypatch.setenv("CAM_DOOR_PASSWORD", SECRET)
    found = {p.name: load_cameras(str(p), SenderConfig()) for p in sorted(deploy.glob("*.yaml"))}
    assert [c.camera for c in found["cameras.yaml"]] == ["cam0"]
    # Its one camera is the sender's options: FRAMEWIRE_CAMERA names it.
    monkeypatch.setenv("FRAMEWIRE_CAMERA", "door")
    (named,) = load_cameras(str(deploy / "cameras.yaml"), SenderConfig(source="0"))
    assert (named.camera, named.source) == ("door", "0")
    assert found["cameras.yaml"][0].source == "synthetic"
    assert len(found["example.yaml"]) >= 3


def test_a_device_index_needs_no_quotes(tmp_path: Path) -> None:
    """`source: 0` (YAML reads a number) is device 0, as `source: "0"` and `/dev/video0` are."""
    text = "cameras:\n  - id: a\n    source: 0\n  - id: b\n    source: /dev/video1\n"
    a, b = load_cameras(write(tmp_path, text), SenderConfig())
    assert (a.source, b.source) == ("0", "/dev/video1")
    bad = write(tmp_path, "cameras:\n  - id: a\n    source: true\n")
    with pytest.raises(CamerasFileError, match="camera 'a': source: must be text"):
        load_cameras(bad, SenderConfig())


def test_a_reference_may_carry_a_default(tmp_path: Path) -> None:
    """`${NAME:-default}`: the default when NAME is unset or empty, else NAME."""
    path = write(tmp_path, "cameras:\n  - id: ${CAM_ID:-cam0}\n    source: ${CAM_SRC:-0}\n")
    for environ, expected in [
        ({}, ("cam0", "0")),
        ({"CAM_ID": "", "CAM_SRC": ""}, ("cam0", "0")),
        ({"CAM_ID": "door", "CAM_SRC": "synthetic"}, ("door", "synthetic")),
    ]:
        (camera,) = load_cameras(path, SenderConfig(), environ)
        assert (camera.camera, camera.source) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cameras:\n  - id: a\n    fsp: 30\n", "camera 'a': unknown key 'fsp'"),
        ("cameras:\n  - id: a\n  - id: b\n  - id: a\n", "camera 'a': id: used twice"),
        (
            f"cameras:\n  - id: a\n    source: ftp://u:{SECRET}@cam/stream\n",
            "camera 'a': source: must start with rtsp://",
        ),
        ("cameras:\n  - id: a\n    source: rtsp://:554/x\n", "camera 'a': source: has no host"),
        (
            "cameras:\n  - id: a\n    source: rtsp://u:${NOT_SET_ANYWHERE}@cam/s\n",
            "camera 'a': source: environment variable NOT_SET_ANYWHERE is not set",
        ),
        (
            "cameras:\n  - id: a\n    width: 10\n",
            "camera 'a': width: must be 0 (as the source sends) or at least 16, not 10",
        ),
        ("cameras:\n  - id: a\n    fps: fast\n", "camera 'a': fps: must be a number"),
        ("cameras:\n  - id: a\n    width: true\n", "camera 'a': width: must be a whole number"),
        ("cameras:\n  - id: bad/id\n", "camera 'bad/id': id: "),
        ("cameras:\n  - source: synthetic\n", "camera 1: id: missing"),
        ("cameras:\n  - id: a\n  - just text\n", "camera 2: must be a mapping"),
        ("cameras: []\n", "`cameras` must be a non-empty list"),
        ("camera:\n  - id: a\n", "must be a mapping with one key, `cameras`"),
        ("cameras:\n  - id: a\n   width: 3\n", "is not valid YAML at line 3"),
    ],
)
def test_a_bad_cameras_file_is_one_line_naming_file_camera_and_field(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, text)
    result = CliRunner().invoke(
        cli,
        ["send", "--cameras-file", path],
        env={"FRAMEWIRE_METRICS_BIND": ""},
        standalone_mode=False,
    )
    assert isinstance(result.exception, click.ClickException), result.output
    line = error_line(result.exception)
    assert "\n" not in line
    assert "'--cameras-file' / 'FRAMEWIRE_CAMERAS_FILE'" in line
    assert f"cameras file {path}: {expected}" in line, line
    assert SECRET not in line + result.output


def test_a_missing_cameras_file_is_named(tmp_path: Path) -> None:
    path = str(tmp_path / "nope.yaml")
    with pytest.raises(CamerasFileError, match=r"nope\.yaml: cannot be read \(No such file"):
        load_cameras(path, SenderConfig())
