"""Start-up validation: one line naming the option, never the secret."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from framewire.cli import cli, error_line
from framewire.config import ReceiverConfig, SenderConfig

ROOT = Path(__file__).parents[2]

SECRET = "hunter2-s3cret"
ERROR_FORMAT = re.compile(
    r"framewire: error: Invalid value for '--[a-z-]+' / 'FRAMEWIRE_[A-Z_]+': "
)


@pytest.mark.parametrize(
    ("args", "env", "names"),
    [
        (["send", "--fps", "-1"], {}, ["--fps"]),
        (["send"], {"FRAMEWIRE_QUALITY": "101"}, ["--quality", "FRAMEWIRE_QUALITY"]),
        (["send"], {"FRAMEWIRE_CAMERA": "bad/camera"}, ["--camera", "FRAMEWIRE_CAMERA"]),
        (["send"], {"FRAMEWIRE_REDIS_URL": f"redis://:{SECRET}@host:99999/0"}, ["--redis-url"]),
        (["send"], {"FRAMEWIRE_REDIS_URL": f"http://:{SECRET}@host/0"}, ["FRAMEWIRE_REDIS_URL"]),
        (["send", "--http-url", f"ftp://u:{SECRET}@h/frames"], {}, ["--http-url"]),
        (["send", "--metrics-bind", "nope"], {}, ["--metrics-bind"]),
        (["http-receiver", "--bind", "1.2.3.4"], {}, ["--bind"]),
        (["http-receiver", "--processor", "nosuch"], {}, ["--processor"]),
        (["redis-receiver"], {"FRAMEWIRE_REDIS_URL": f"rediss://u:{SECRET}@"}, ["--redis-url"]),
        (["redis-receiver", "--threads", "1"], {}, ["--threads"]),
        (["http-receiver", "--threads", "16", "--max-viewers", "13"], {}, ["--max-viewers"]),
        # A rule between two options names the one the user set, not the default it meets.
        (["http-receiver", "--threads", "16"], {}, ["'--threads' / 'FRAMEWIRE_THREADS'", "52"]),
        (["redis-receiver"], {"FRAMEWIRE_THREADS": "16"}, ["'--threads' / 'FRAMEWIRE_THREADS'"]),
        (["http-receiver", "--viewer-password", SECRET], {}, ["'--viewer-password' / "]),
        (["http-receiver"], {"FRAMEWIRE_MAX_BODY": str(2**27)}, ["'--max-body' / "]),
        # click's own checks (types, choices) say it the same way.
        (["http-receiver", "--threads", "many"], {}, ["'--threads' / 'FRAMEWIRE_THREADS'"]),
        (["--log-level", "loud", "send"], {}, ["'--log-level' / 'FRAMEWIRE_LOG_LEVEL'"]),
        (["http-receiver", "--viewer-user", "ops"], {}, ["--viewer-user"]),
        (["send", "--http-url", "", "--redis-url", ""], {}, ["--http-url", "--redis-url"]),
        (["redis-receiver", "--redis-url", ""], {}, ["FRAMEWIRE_REDIS_URL"]),
        (["send", "--redis-mode", "nosuch"], {}, ["--redis-mode"]),
        (["http-receiver"], {"FRAMEWIRE_PEER_PORT": "65536"}, ["--peer-port", "PEER_PORT"]),
        (["send", "--redis-cluster", "10.0.0.1"], {}, ["--redis-cluster"]),
        (["redis-receiver"], {"FRAMEWIRE_REDIS_CLUSTER": "a:1,:2"}, ["REDIS_CLUSTER"]),
        (["send", "--redis-cluster", "a:1", "--redis-mode", "pubsub"], {}, ["--redis-cluster"]),
        (
            ["redis-receiver", "--redis-cluster", "a:1"],
            {"FRAMEWIRE_REDIS_URL": f"redis://:{SECRET}@a:1/3"},
            ["--redis-url"],
        ),
        # Combinations that cannot work: refused at start-up, naming both options.
        (["send", "--http-fanout", "dns", "--http-url", ""], {}, ["--http-fanout", "--http-url"]),
        (["send"], {"FRAMEWIRE_HTTP_CA_CERT": "/ca.pem"}, ["--http-ca-cert", "--http-url"]),
        (["http-receiver", "--http-peers", "peers.test"], {}, ["--http-peers", "--advertise-url"]),
        (["http-receiver"], {"FRAMEWIRE_HTTP_PEERS": "http://peers:8001"}, ["HTTP_PEERS"]),
        (
            ["send", "--redis-url", f"redis://:{SECRET}@h/0", "--redis-ca-cert", "/ca.pem"],
            {},
            ["--redis-ca-cert", "FRAMEWIRE_REDIS_CA_CERT", "--redis-url"],
        ),
        (
            ["redis-receiver", "--redis-url", "unix:///run/redis.sock"],
            {"FRAMEWIRE_REDIS_CA_CERT": "/ca.pem"},
            ["--redis-ca-cert", "--redis-url"],
        ),
        (
            ["http-receiver", "--viewer-user", "ops:team", "--viewer-password", SECRET],
            {},
            ["--viewer-user", "FRAMEWIRE_VIEWER_USER"],
        ),
    ],
)
def test_bad_value_is_one_line_naming_the_option(
    args: list[str], env: dict[str, str], names: list[str]
) -> None:
    result = CliRunner().invoke(
        cli, args, env={"FRAMEWIRE_TOKEN": SECRET, **env}, standalone_mode=False
    )
    assert isinstance(result.exception, click.ClickException), result.output
    line = error_line(result.exception)
    assert "\n" not in line
    # One format for every option error: the option, its variable, the reason.
    assert ERROR_FORMAT.match(line), line
    for name in names:
        assert name in line
    assert SECRET not in line + result.output


def test_combinations_that_work_are_not_refused() -> None:
    """The checks refuse only what cannot work."""
    assert SenderConfig(http_fanout="dns", redis_url="").http_fanout == "dns"
    assert SenderConfig(redis_url="rediss://h/0", redis_ca_cert="/ca.pem").redis_ca_cert
    assert SenderConfig(http_url="https://h/frames", http_ca_cert="/ca.pem").http_ca_cert
    assert ReceiverConfig(transport="redis", redis_url="rediss://h/0", redis_ca_cert="/ca.pem")
    assert ReceiverConfig(viewer_user="ops", viewer_password=SECRET).viewer_user == "ops"


def test_each_receiver_compares_with_the_other_by_default() -> None:
    """The page's peer is the other receiver on its default port, with no setting."""
    defaults = {
        name: {p.name: p.default for p in cli.commands[name].params}
        for name in ("http-receiver", "redis-receiver")
    }
    http, red = defaults["http-receiver"], defaults["redis-receiver"]
    assert http["peer_port"] == int(red["bind"].rsplit(":", 1)[1]) == 8002
    assert red["peer_port"] == int(http["bind"].rsplit(":", 1)[1]) == 8001
    assert http["peer_url"] == red["peer_url"] == ""


def test_version_is_the_packages() -> None:
    """`framewire --version` names the version pyproject.toml declares (CHANGELOG.md's newest)."""
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"framewire, version {declared}"
    assert f"## {declared} " in (ROOT / "CHANGELOG.md").read_text()
