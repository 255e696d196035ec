"""The docs and .env.example agree with the code: every option named, defaults as defined."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

import click
import yaml

from framewire.cli import cli, envvar
from framewire.config import ReceiverConfig, SenderConfig, default, settings

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "configuration.md"  # the option reference
START, END = "<!-- options:start -->\n", "<!-- options:end -->\n"
# .env.example values that differ from the code's defaults on purpose, for compose.
COMPOSE_DEFAULTS = {
    "FRAMEWIRE_TOKEN": "compose refuses anonymous frames",
    "FRAMEWIRE_RATE_LIMIT": "compose limits viewer requests per client",
    "FRAMEWIRE_CAMERAS_FILE": "compose runs the cameras file in deploy/cameras",
}


def test_option_reference_is_generated_from_the_cli() -> None:
    """The option tables of docs/configuration.md are the CLI's own (FRAMEWIRE_UPDATE_DOCS=1)."""
    text = REFERENCE.read_text()
    assert START in text and END in text, f"docs/configuration.md lacks the {START.strip()} markers"
    head, rest = text.split(START)
    _, tail = rest.split(END)
    expected = head + START + reference() + END + tail
    if os.environ.get("FRAMEWIRE_UPDATE_DOCS") == "1" and text != expected:
        REFERENCE.write_text(expected)
        return
    stale = "docs/configuration.md's option reference is stale: FRAMEWIRE_UPDATE_DOCS=1 make test"
    assert text == expected, stale


def test_env_example_names_real_settings_with_their_defaults() -> None:
    values = dict(
        re.findall(r"^(FRAMEWIRE_[A-Z0-9_]+)=(.*)$", (ROOT / ".env.example").read_text(), re.M)
    )
    known = {
        envvar(f.name): (config, f.name)
        for config in (SenderConfig, ReceiverConfig)
        for f in settings(config)
    }
    for name, value in values.items():
        if name not in known:
            continue  # compose's own variables (ports, host names) are checked by compose
        if name in COMPOSE_DEFAULTS or value == "":
            continue
        config, field = known[name]
        assert str(default(config, field)) == value or float(default(config, field)) == float(
            value
        ), f".env.example sets {name}={value}, the code's default is {default(config, field)}"


# Settings the sender and the receivers share by name: each means the same on both sides
# (the two ends of one transport must agree on it), so one `.env` line sets both.
SHARED = {"token", "redis_url", "redis_mode", "redis_ca_cert", "redis_cluster", "transports"}


def test_a_setting_shared_by_sender_and_receivers_means_one_thing() -> None:
    """Under compose every variable reaches every service: a name in both is one setting."""
    sender = {f.name for f in settings(SenderConfig)}
    receiver = {f.name for f in settings(ReceiverConfig)}
    assert sender & receiver == SHARED, "a new shared name must mean the same on both sides"
    assert "stream_quality" in receiver and "quality" in sender


# compose.yaml's variables that .env.example cannot set: the name of the env file itself.
NOT_IN_ENV_FILE = {"FRAMEWIRE_ENV_FILE"}


def test_every_compose_variable_is_in_env_example_with_compose_default() -> None:
    """Each `${NAME:-default}` of compose.yaml is documented in .env.example, with that default."""
    compose = (ROOT / "compose.yaml").read_text()
    used = dict(re.findall(r"\$\{([A-Z0-9_]+):-([^}]*)\}", compose))
    documented = dict(re.findall(r"^([A-Z0-9_]+)=(.*)$", (ROOT / ".env.example").read_text(), re.M))
    for name, fallback in used.items():
        if name in NOT_IN_ENV_FILE:
            continue
        assert name in documented, f"compose.yaml uses {name}; .env.example does not say it"
        if fallback.startswith("${"):  # defaults to another variable: left empty there
            assert documented[name] == "", f"{name}: compose's default is another variable"
            continue
        assert documented[name] == fallback, f"{name}: compose's default is {fallback}"


def test_the_cameras_folder_is_a_setting_mounted_where_the_cameras_file_is() -> None:
    """CAMERAS_DIR (default deploy/cameras) is mounted at the folder of FRAMEWIRE_CAMERAS_FILE."""
    sender = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]["sender"]
    mounts = [v.rsplit(":", 2) for v in sender["volumes"]]
    cameras_file = Path(sender["environment"]["FRAMEWIRE_CAMERAS_FILE"].split(":-")[1][:-1])
    assert [m for m in mounts if m[0] == "${CAMERAS_DIR:-./deploy/cameras}"] == [
        ["${CAMERAS_DIR:-./deploy/cameras}", str(cameras_file.parent), "ro"]
    ]
    assert (ROOT / "deploy" / "cameras" / cameras_file.name).is_file()


def test_license_is_mit_in_the_repository_and_the_package() -> None:
    license_text = (ROOT / "LICENSE").read_text()
    assert license_text.startswith("MIT License")
    assert "Copyright (c) 2026 the framewire authors" in license_text
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == {"text": "MIT"}


NGINX = ROOT / "deploy" / "nginx" / "framewire.conf"  # run by tests/system/test_reverse_proxy.py
NGINX_BLOCK = re.compile(r"^```nginx\n(.*?)^```$", re.M | re.S)


def test_the_nginx_config_in_the_docs_is_the_tested_file() -> None:
    """docs/deployment.md quotes deploy/nginx/framewire.conf whole (FRAMEWIRE_UPDATE_DOCS=1)."""
    page = ROOT / "docs" / "deployment.md"
    text = page.read_text()
    blocks = NGINX_BLOCK.findall(text)
    assert len(blocks) == 1, "docs/deployment.md should quote the nginx config once"
    conf = NGINX.read_text()
    if os.environ.get("FRAMEWIRE_UPDATE_DOCS") == "1" and blocks[0] != conf:
        page.write_text(NGINX_BLOCK.sub(lambda _: f"```nginx\n{conf}```", text))
        return
    stale = "docs/deployment.md's copy of the nginx config is stale: FRAMEWIRE_UPDATE_DOCS=1"
    assert blocks[0] == conf, stale


def reference() -> str:
    """Every command's options as Markdown tables (docs/configuration.md's option reference)."""
    context = click.Context(cli, info_name="framewire")
    out = ["| global option | env | default | what |", "|---|---|---|---|"]
    out += [_row(p) for p in cli.params if isinstance(p, click.Option)]
    for name in cli.list_commands(context):
        command = cli.get_command(context, name)
        assert command is not None
        out += ["", f"`framewire {name}`: {command.get_short_help_str(limit=200)}", ""]
        out += ["| option | env | default | what |", "|---|---|---|---|"]
        options = [p for p in command.get_params(context) if isinstance(p, click.Option)]
        out += [_row(p) for p in options if "--help" not in p.opts]
    return "\n".join(out) + "\n"


def _row(param: click.Option) -> str:
    if isinstance(param.show_default, str):  # a description of the default
        default = param.show_default
    elif param.is_flag or param.default is None or param.default == "":
        default = ""
    else:
        default = f"`{param.default}`"
    env = f"`{param.envvar}`" if isinstance(param.envvar, str) else ""
    what = (param.help or "").replace("|", "\\|")
    return f"| `{param.opts[-1]}` | {env} | {default} | {what} |"
