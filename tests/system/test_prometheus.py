"""Prometheus config, alert rules and the Grafana dashboard, checked for real.

`promtool` validates the config and the rules and runs the rule unit tests;
then a real Prometheus scrapes the real sender and receivers, and every
PromQL expression of the dashboard must return data. Grafana itself cannot
be installed here, so its dashboard is validated through its queries.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
import yaml

from conftest import RedisServer, Services, free_port, wait_until
from framewire.metrics import ReceiverMetrics, SenderMetrics
from helpers import Viewer, make_jpeg, post_frame

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERTS_TEST = PROMETHEUS_DIR / "alerts_test.yml"
GRAFANA_DIR = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA_DIR / "dashboards" / "framewire.json"

# Scrape jobs of prometheus.yml: each finds its targets by the DNS A records of
# the compose service of the same name (one per container) on this port.
JOBS = {"sender": 9100, "http-receiver": 8001, "redis-receiver": 8002}
# Dashboard variables and what Grafana sends for them when "All" is selected
# (the camera variable's allValue).
VARIABLES = {"$camera": ".*"}
# The cameras of the live test: cam0 and cam.2 deliver frames (the dot checks
# Grafana's regex escaping), cam1's sends all fail.
DELIVERING_CAMERAS = ("cam0", "cam.2")
FAILING_CAMERA = "cam1"
OTHER_PRODUCER = "ext"  # a camera no framewire sender captures: frames POSTed by the test
# Metrics without a camera label (a refused frame may have no valid camera):
# the only queries that cannot be filtered by camera.
NO_CAMERA_LABEL = {
    "framewire_frames_rejected_total",
    "framewire_receive_errors_total",
    "framewire_replica_members",
}
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
# Data can take a few scrapes (1 s apart here) to show up; rate() needs two.
QUERY_TIMEOUT = 90.0
SMALL_SLOW = ("--fps", "5", "--width", "160", "--height", "120")  # the extra cameras


# --- helpers -------------------------------------------------------------------------------


def binary(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/bin")
    if path is None:
        pytest.fail(
            f"`{name}` is not installed: run `make test`, which installs Debian's `prometheus` "
            "package (scripts/system-deps.sh), or `apt-get install prometheus`"
        )
    return path


def promtool(*args: str) -> str:
    """Run promtool; fail the test with its output unless it succeeds."""
    result = subprocess.run(
        [binary("promtool"), *args], capture_output=True, text=True, timeout=120, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"promtool {' '.join(args)} failed:\n{output}"
    return output


def alert_names() -> list[str]:
    return re.findall(r"^\s*- alert:\s*(\S+)\s*$", ALERTS.read_text(), re.MULTILINE)


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def all_panels(panels: list[dict]) -> Iterator[dict]:
    """Every panel, including those inside (collapsed) rows."""
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels", []))


def rows(panels: list[dict]) -> list[tuple[dict | None, list[dict]]]:
    """(row, its panels) as Grafana groups them: a collapsed row holds its panels,
    an open row owns the panels after it up to the next row. Panels above the
    first row come with None."""
    grouped: list[tuple[dict | None, list[dict]]] = [(None, [])]
    for panel in panels:
        if panel["type"] == "row":
            grouped.append((panel, list(panel.get("panels", []))))
        else:
            grouped[-1][1].append(panel)
    return [(row, members) for row, members in grouped if row is not None or members]


def dashboard_queries() -> list[tuple[str, str, str | None]]:
    """(panel title, PromQL expression, the variable its row repeats on or None)
    of every query in the dashboard."""
    return [
        (panel["title"], target["expr"], row and row.get("repeat"))
        for row, panels in rows(dashboard()["panels"])
        for panel in panels
        for target in panel.get("targets", [])
    ]


def camera_variable() -> dict:
    (camera,) = [v for v in dashboard()["templating"]["list"] if v["name"] == "camera"]
    return camera


def grafana_regex(value: str) -> str:
    """A variable's value as Grafana's Prometheus datasource puts it in a PromQL
    string for `=~` (multi-value or include-All variables): regex metacharacters
    escaped, the backslashes doubled for the string literal."""
    value = value.replace("\\", "\\\\\\\\")
    return re.sub(r"[$^*{}\[\]'+?.()|]", lambda m: "\\\\" + m.group(), value)


def grafana_multi(values: list[str]) -> str:
    """What Grafana sends for several selected values of a multi-value variable."""
    escaped = [grafana_regex(v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def substitute(expr: str, variables: dict[str, str] = VARIABLES) -> str:
    """The expression as Grafana sends it: by default with every camera selected."""
    for variable, value in variables.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"unknown dashboard variable in {expr!r}"
    return expr


def known_series() -> set[str]:
    """Names of every series the services export, from framewire.metrics itself."""
    suffixes = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}
    names: set[str] = set()
    for metrics in (SenderMetrics(), ReceiverMetrics()):
        for family in metrics.registry.collect():
            names.update(family.name + suffix for suffix in suffixes[family.type])
    return names


def selectors(expr: str) -> list[tuple[str, str, str]]:
    """(metric, label matchers, what follows) for each framewire series an expression selects."""
    return re.findall(r"\b(framewire_\w+)(?:\{([^}]*)\})?(\[?)", expr)


def host_port(url: str) -> str:
    return url.removeprefix("http://")


# --- static checks with promtool -----------------------------------------------------------


def test_prometheus_config_is_valid() -> None:
    output = promtool("check", "config", str(PROMETHEUS_CONFIG))
    assert "1 rule files found" in output, output
    text = PROMETHEUS_CONFIG.read_text()
    config = yaml.safe_load(text)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == set(JOBS)
    for name, port in JOBS.items():
        # The job names as the compose smoke test reads them.
        assert re.search(rf"^\s*- job_name: {re.escape(name)}$", text, re.MULTILINE), name
        # Every container of the service, found by DNS: no fixed targets to edit.
        job = jobs[name]
        assert "static_configs" not in job, name
        (sd,) = job["dns_sd_configs"]
        assert sd["names"] == [name], name
        assert sd["type"] == "A", name
        assert sd["port"] == port, name
    assert re.search(r"^\s+scrape_interval: 5s$", text, re.MULTILINE)
    assert re.search(r"^rule_files: \[alerts\.yml\]", text, re.MULTILINE)


def test_alert_rules_are_valid_and_pass_their_unit_tests() -> None:
    output = promtool("check", "rules", str(ALERTS))
    names = alert_names()
    assert f"SUCCESS: {len(names)} rules found" in output, output
    assert set(names) == {
        "FramewireLowFps",
        "FramewireHighLatency",
        "FramewireHighDropRatio",
        "FramewireSourceDown",
        "FramewireTargetDown",
        "FramewireTargetVanished",
    }
    promtool("test", "rules", str(ALERTS_TEST))
    # Each alert is tested both firing and not firing.
    tests = ALERTS_TEST.read_text()
    for name in names:
        cases = re.findall(
            rf"alertname: {name}\n\s+exp_alerts:(\s*\[\]|\n\s+- exp_labels)", tests, re.MULTILINE
        )
        assert {case.strip() for case in cases} == {"[]", "- exp_labels"}, name


# --- static checks of the Grafana files ----------------------------------------------------


def test_grafana_provisioning_files() -> None:
    datasource = (GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml").read_text()
    for line in (
        "name: Prometheus",
        "uid: prometheus",
        "type: prometheus",
        "url: http://prometheus:9090",
        "isDefault: true",
    ):
        assert re.search(rf"^\s+(- )?{re.escape(line)}$", datasource, re.MULTILINE), line
    provider = (GRAFANA_DIR / "provisioning" / "dashboards" / "framewire.yml").read_text()
    assert re.search(r"^\s+type: file$", provider, re.MULTILINE)
    path = re.search(r"^\s+path: (\S+)$", provider, re.MULTILINE)
    assert path, "the dashboard provider names no path"
    # The comment tells where to mount the dashboards directory.
    assert f"deploy/grafana/dashboards at {path.group(1)}" in provider


def test_dashboard_structure() -> None:
    board = dashboard()
    assert board["uid"] == "framewire"
    # The camera selector: every camera a receiver sees (whoever sends it) or a sender
    # captures (also one that never arrives), several at once or All.
    camera = camera_variable()
    assert camera["type"] == "query"
    assert camera["query"] == (
        'label_values({__name__=~"framewire_frames_(received|captured)_total"}, camera)'
    )
    assert camera["definition"] == camera["query"]
    assert camera["multi"] is True
    assert camera["includeAll"] is True
    assert camera["allValue"] == VARIABLES["$camera"]
    assert camera["refresh"] == 2, "refresh the cameras on time range change: new ones show up"
    assert camera["datasource"] == DATASOURCE
    # One row per selected camera: that camera's HTTP vs Redis fps and latency.
    repeated = [(row, members) for row, members in rows(board["panels"]) if row and "repeat" in row]
    assert len(repeated) == 1, "one row repeated per camera"
    ((row, members),) = repeated
    assert row["repeat"] == "camera"
    assert "$camera" in row["title"]
    assert members, "the per-camera row has no panels"
    per_camera: set[str] = set()
    for panel in members:
        assert "repeat" not in panel, f"{panel['title']}: the row repeats, not its panels"
        assert panel["gridPos"]["y"] > row["gridPos"]["y"], panel["title"]
        for target in panel["targets"]:
            for metric, matchers, _ in selectors(target["expr"]):
                assert 'camera=~"$camera"' in matchers, f"{panel['title']}: {target['expr']}"
                if "by (transport)" in target["expr"] or "by (le, transport)" in target["expr"]:
                    per_camera.add(metric)
    assert {"framewire_frames_received_total", "framewire_frame_latency_seconds_bucket"} <= (
        per_camera
    ), "the per-camera row shows fps and latency by transport"
    # The HTTP vs Redis overview stays, outside the repeated row.
    overview = {p["title"] for r, ps in rows(board["panels"]) if r is not row for p in ps}
    assert {"HTTP delivered fps", "Redis delivered fps", "Delivered fps by transport"} <= overview
    panels = [p for p in all_panels(board["panels"]) if p["type"] != "row"]
    ids = [p["id"] for p in all_panels(board["panels"])]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    known = known_series()
    for panel in panels:
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], f"{panel['title']}: no queries"
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
            expr = target["expr"]
            where = f"{panel['title']}: {expr}"
            assert "$__" not in expr, f"{where}: use a literal range, the test runs it as is"
            found = selectors(expr)
            assert found, where
            for metric, matchers, range_follows in found:
                assert metric in known, f"{where}: {metric} is not exported by framewire"
                if metric not in NO_CAMERA_LABEL:
                    assert 'camera=~"$camera"' in matchers, f"{where}: not filtered by camera"
                if metric.endswith(("_total", "_bucket", "_sum", "_count")):
                    assert range_follows, f"{where}: use rate() over the counter {metric}"
                if metric.endswith("_bucket"):
                    assert expr.startswith("histogram_quantile("), where
    # Alert rules use only exported metrics too.
    for metric in set(re.findall(r"\bframewire_\w+", ALERTS.read_text())):
        assert metric in known, f"alerts.yml: {metric} is not exported by framewire"


# --- a real Prometheus scraping the real services -------------------------------------------


def scrape_config_for(targets: dict[str, list[str]]) -> str:
    """prometheus.yml with the real loopback targets (same job names) and 1 s intervals.

    The services here all listen on 127.0.0.1 on ports of their own, which DNS
    service discovery cannot express: each job's `dns_sd_configs` becomes a
    `static_configs` with that job's targets; everything else is kept.
    """
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    for job in config["scrape_configs"]:
        assert job.pop("dns_sd_configs"), job["job_name"]
        job["static_configs"] = [{"targets": targets[job["job_name"]]}]
    for setting in ("scrape_interval", "evaluation_interval"):
        assert config["global"][setting] == "5s", setting
        config["global"][setting] = "1s"
    return yaml.safe_dump(config, sort_keys=False)


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[[dict[str, list[str]]], str]]:
    """Starts a real Prometheus scraping the given targets per job; stops it by PID."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(targets: dict[str, list[str]]) -> str:
        config_dir = tmp_path / "prometheus"
        config_dir.mkdir()
        config = config_dir / "prometheus.yml"
        config.write_text(scrape_config_for(targets))
        shutil.copy(ALERTS, config_dir / "alerts.yml")
        promtool("check", "config", str(config))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log_path = tmp_path / "prometheus.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [
                    binary("prometheus"),
                    f"--config.file={config}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        procs.append(proc)

        def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"prometheus exited:\n{log_path.read_text()}")
            return requests.get(f"{url}/-/ready", timeout=2).ok

        wait_until(ready, timeout=30, what="prometheus /-/ready")
        return url

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def viewers() -> Iterator[Callable[[str], Viewer]]:
    opened: list[Viewer] = []

    def open_viewer(url: str) -> Viewer:
        """An MJPEG viewer of a stream URL."""
        opened.append(Viewer(url))
        opened[-1].start()
        return opened[-1]

    yield open_viewer
    for viewer in opened:
        viewer.close()


def api(prom: str, path: str, **params: str) -> object:
    """The `data` of a Prometheus API answer; fails at once on a query error."""
    body = requests.get(f"{prom}/api/v1/{path}", params=params, timeout=10).json()
    if body.get("status") != "success":
        raise AssertionError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
    return body["data"]


def query(prom: str, expr: str) -> list[dict]:
    data = api(prom, "query", query=expr)
    assert data["resultType"] == "vector", f"{expr}: {data['resultType']}"
    return data["result"]


def finite_values(prom: str, expr: str) -> list[float]:
    values = (float(sample["value"][1]) for sample in query(prom, expr))
    return [v for v in values if math.isfinite(v)]


def total(prom: str, expr: str) -> float:
    return sum(finite_values(prom, expr))


def test_dashboard_queries_return_data_from_real_services(
    services: Services, redis_server: RedisServer, prometheus, viewers
) -> None:
    http = services.receiver("http")
    red = services.receiver("redis", "--redis-url", redis_server.url)
    sender = services.sender(
        "--http-url",
        f"{http.url}/frames",
        "--redis-url",
        redis_server.url,
        "--width",
        "320",
        "--height",
        "240",
    )
    # Another camera that delivers (a dot in its id: Grafana escapes it in the regex).
    other = services.sender(
        "--camera",
        DELIVERING_CAMERAS[1],
        *SMALL_SLOW,
        "--http-url",
        f"{http.url}/frames",
        "--redis-url",
        redis_server.url,
    )
    # A camera whose sends all fail, so the send-errors panel has data:
    # the HTTP receiver answers 404 on an unknown route, nothing listens on the Redis port.
    failing = services.sender(
        "--camera",
        FAILING_CAMERA,
        *SMALL_SLOW,
        "--http-url",
        f"{http.url}/no-such-route",
        "--redis-url",
        f"redis://127.0.0.1:{free_port()}/0",
    )
    for receiver in (http, red):
        for camera in DELIVERING_CAMERAS:
            where = f"{receiver.name} {camera}"
            wait_until(
                lambda r=receiver, c=camera: (
                    requests.get(f"{r.url}/snapshot/{c}.jpg", timeout=5).status_code == 200
                ),
                what=f"{where} first frame",
            )
            # An open MJPEG stream: `served` latency and the viewer gauge get data.
            viewer = viewers(f"{receiver.url}/stream/{camera}.mjpg")
            wait_until(lambda v=viewer: v.bytes > 0, what=f"{where} MJPEG bytes")
    # A bad frame, so the rejects panel has data.
    refused = requests.post(
        f"{http.url}/frames",
        data=b"garbage",
        headers={
            "Content-Type": "image/jpeg",
            "X-Framewire-Camera": "cam0",
            "X-Framewire-Seq": "1",
            "X-Framewire-Captured-Ns": "1",
        },
        timeout=5,
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"] == "not_jpeg"
    # Frames from another producer: the camera variable must list it too.
    for seq in (1, 2):
        assert post_frame(http.url, OTHER_PRODUCER, make_jpeg(160, 120), seq).status_code == 204

    targets = {
        "sender": [host_port(sender.url), host_port(other.url), host_port(failing.url)],
        "http-receiver": [host_port(http.url)],
        "redis-receiver": [host_port(red.url)],
    }
    prom = prometheus(targets)

    # Every target of every job is scraped successfully.
    expected = {(job, t) for job, ts in targets.items() for t in ts}

    def all_up() -> bool:
        active = api(prom, "targets", state="active")["activeTargets"]
        found = {(t["scrapePool"], t["labels"]["instance"]): t["health"] for t in active}
        assert set(found) <= expected, f"unexpected targets: {found}"
        return set(found) == expected and all(h == "up" for h in found.values())

    wait_until(all_up, timeout=QUERY_TIMEOUT, interval=0.5, what="all targets up")

    # The alert rules are loaded, labelled and annotated, and evaluate without error.
    def rules() -> list[dict]:
        groups = api(prom, "rules", type="alert")["groups"]
        return [rule for group in groups for rule in group["rules"]]

    assert sorted(rule["name"] for rule in rules()) == sorted(alert_names())
    for rule in rules():
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["name"]
        assert rule["annotations"].keys() >= {"summary", "description"}, rule["name"]
    wait_until(
        lambda: all(rule["health"] == "ok" for rule in rules()),
        timeout=QUERY_TIMEOUT,
        interval=0.5,
        what="every alert rule evaluated without error",
    )

    # The camera variable's own query, as Grafana runs it: label_values(metric, label)
    # is the label values API matching that metric.
    variable = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", camera_variable()["query"])
    assert variable, camera_variable()["query"]
    metric, label = variable.groups()
    cameras: list[str] = []

    def variable_values() -> bool:
        cameras[:] = api(prom, f"label/{label}/values", **{"match[]": metric})
        return {*DELIVERING_CAMERAS, FAILING_CAMERA, OTHER_PRODUCER} <= set(cameras)

    wait_until(variable_values, timeout=QUERY_TIMEOUT, what="the camera variable's values")
    assert set(cameras) == {*DELIVERING_CAMERAS, FAILING_CAMERA, OTHER_PRODUCER}, cameras

    # Every dashboard query returns at least one finite number: the overview with
    # All selected and with every camera picked by hand; each panel of the
    # per-camera row in the repetition of each camera that delivers frames
    # (cam1 delivers none, so its row is empty but for its capture rate).
    picked = grafana_multi(cameras)
    for title, expr, repeat in dashboard_queries():
        if repeat is None:
            choices = {"All": VARIABLES, "every camera picked": {"$camera": picked}}
        else:
            assert repeat == "camera", repeat
            choices = {c: {"$camera": grafana_regex(c)} for c in DELIVERING_CAMERAS}
        for choice, variables in choices.items():
            sent = substitute(expr, variables)
            wait_until(
                lambda e=sent: finite_values(prom, e),
                timeout=QUERY_TIMEOUT,
                interval=0.5,
                what=f"data for panel {title!r} ({choice}): {sent}",
            )
    # And a repetition shows only its own camera.
    for title, expr, repeat in dashboard_queries():
        if repeat and "by (transport)" in expr and "histogram_quantile" not in expr:
            for camera in DELIVERING_CAMERAS:
                by_camera = expr.replace("sum by (transport)", "sum by (camera, transport)")
                found = query(prom, substitute(by_camera, {"$camera": grafana_regex(camera)}))
                assert {s["metric"]["camera"] for s in found} == {camera}, (title, found)

    # Every alert expression, without its threshold, selects real series: the
    # label names and values the rules rely on exist. A threshold is a number, or
    # another expression (`< on (camera) group_left () 0.67 * ...`): each side then.
    for rule in rules():
        base = re.sub(r"\s*(<|>|==)\s*[0-9.]+\s*$", "", rule["query"])
        sides = re.split(r"\s+[<>]\s+on \(\w+\) group_left \(\)\s+(?:[0-9.]+ \*\s+)?", base)
        assert base != rule["query"] or len(sides) == 2, rule["query"]
        for side in sides:
            wait_until(
                lambda e=side: query(prom, e),
                timeout=QUERY_TIMEOUT,
                interval=0.5,
                what=f"series for alert {rule['name']}: {side}",
            )

    # Counters move while frames flow, on both transports.
    for transport in ("http", "redis"):
        expr = f'sum(framewire_frames_received_total{{transport="{transport}"}})'
        before = total(prom, expr)
        wait_until(
            lambda e=expr, b=before: total(prom, e) > b,
            timeout=QUERY_TIMEOUT,
            interval=0.5,
            what=f"{transport} frames received to increase in Prometheus",
        )

    # The refused frame is counted with its reason.
    assert total(
        prom, 'framewire_frames_rejected_total{transport="http", reason="not_jpeg"}'
    ) == pytest.approx(1)
    # And the failing camera's sends are counted as errors on both transports.
    failed = query(prom, 'sum by (transport, reason) (framewire_send_errors_total{camera="cam1"})')
    assert {s["metric"]["transport"] for s in failed} == {"http", "redis"}, failed
