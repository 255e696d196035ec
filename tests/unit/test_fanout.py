"""The sender's fan-out in process: replica URLs, a failed resolve, each camera's owner among
the live replicas (the receivers' hashing), the live set, a camera with no live replica."""

from __future__ import annotations

import logging
import threading

import pytest

from conftest import free_port, wait_until
from framewire.config import SenderConfig
from framewire.dns import Resolver, replica_url
from framewire.fanout import CameraReplicas, Replicas, View, not_answering
from framewire.frame import Frame
from framewire.metrics import SenderMetrics
from framewire.owners import Member, Owners
from framewire.sender import CameraSender, publishers
from framewire.sources import open_source
from framewire.transports import PublishError, Refused, Unreachable

URL = "http://receivers.example:8001/frames"
ADDRESSES = ("10.0.0.1", "10.0.0.2", "10.0.0.3")
CAMERAS = [f"cam{i}" for i in range(60)]


def sample(sender: CameraSender, name: str, **labels: str) -> float:
    return sender.metrics.registry.get_sample_value(name, labels) or 0.0


def test_replica_urls_keep_everything_but_the_host() -> None:
    url = "http://user:pw@receivers.example:8001/frames?x=1"
    assert replica_url(url, "10.1.2.3") == "http://user:pw@10.1.2.3:8001/frames?x=1"
    assert replica_url("http://h/frames", "fd00::7") == "http://[fd00::7]/frames"
    assert replica_url("http://h:9/f", "fe80::1%eth0") == "http://[fe80::1%25eth0]:9/f"


def test_a_failed_resolve_keeps_the_replicas_known(caplog: pytest.LogCaptureFixture) -> None:
    """localhost resolves; then the name fails: the set stays, one line per change of state."""
    resolver = Resolver("http://localhost:8001/frames", 1.0)
    seen: list[tuple[str, ...]] = []
    resolver.subscribe(seen.append)
    resolver.refresh()
    assert seen and "127.0.0.1" in seen[0]
    resolver.host = "nothing.invalid"
    for _ in range(3):
        resolver.refresh()
    assert resolver.addresses == seen[0] and len(seen) == 1
    downs = [r for r in caplog.records if "resolving down" in r.getMessage()]
    assert len(downs) == 1, caplog.text


class Probes:
    """A probe answering for the addresses in `answering`, recording every address asked."""

    def __init__(self, answering: set[str]) -> None:
        self.answering = answering
        self.asked: list[str] = []

    def __call__(self, address: str) -> str:
        self.asked.append(address)
        return "" if address in self.answering else "connect: refused"


def live_set(answering: set[str]) -> tuple[Replicas, Probes, list[View]]:
    """A `Replicas` of URL driven by hand (its threads never started) and the views it tells."""
    probes = Probes(answering)
    replicas = Replicas(URL, Resolver(URL, 60.0), probes)
    views: list[View] = []
    replicas.subscribe(views.append)
    return replicas, probes, views


def owners(view: View) -> dict[str, str | None]:
    return {camera: view.owner(camera) for camera in CAMERAS}


def test_the_sender_hashes_as_the_receivers_do() -> None:
    """Each camera's owner is the replica the receivers' own Owners (their --advertise-url:
    the address and the --http-url port) name, and the cameras are spread over them."""
    replicas, _, _ = live_set(set(ADDRESSES))
    replicas.resolved(ADDRESSES)
    view = replicas.apply(probe=True)
    assert view is not None and view.live == ADDRESSES
    for address in ADDRESSES:
        me = Member.at(f"http://{address}:8001")
        receiver = Owners(me)
        receiver.update(Member.at(f"http://{a}:8001") for a in ADDRESSES)
        for camera in CAMERAS:
            assert (view.owner(camera) == address) == receiver.mine(camera), camera
    assert set(owners(view).values()) == set(ADDRESSES)
    v6 = View(("fd00::1", "fd00::2"), ("fd00::1", "fd00::2"), (("[fd00::1]:8001", "fd00::1"),))
    assert v6.owner("cam0") == "fd00::1" and View().owner("cam0") is None


def test_a_replica_joins_once_it_answers_and_leaves_when_a_send_fails(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "framewire.fanout")
    replicas, probes, views = live_set({"10.0.0.1", "10.0.0.2"})
    assert replicas.apply(probe=True) is None and views == []  # nothing resolved yet
    replicas.resolved(ADDRESSES)
    first = replicas.apply(probe=True)
    assert first is not None and first.live == ("10.0.0.1", "10.0.0.2")
    assert first.resolved == ADDRESSES and sorted(probes.asked) == list(ADDRESSES)
    assert None not in owners(first).values()
    # .3 answers: it joins at the next probe; only the cameras it now wins move, all to it.
    probes.answering.add("10.0.0.3")
    assert replicas.apply() == first  # no probe, no change
    everyone = replicas.apply(probe=True)
    assert everyone is not None and everyone.live == ADDRESSES
    moved = {c for c in CAMERAS if owners(first)[c] != owners(everyone)[c]}
    assert moved and {owners(everyone)[c] for c in moved} == {"10.0.0.3"}
    # A send to .2 finds no answer: out at once, its cameras (only) move to the survivors.
    probes.answering.discard("10.0.0.2")
    replicas.failed("10.0.0.2", "connect")
    replicas.failed("10.0.0.2", "connect")  # reported by several cameras: one change
    asked = len(probes.asked)
    survivors = replicas.apply()
    assert survivors is not None and survivors.live == ("10.0.0.1", "10.0.0.3")
    assert len(probes.asked) == asked  # taking a replica out waits for no probe
    for camera in CAMERAS:
        if owners(everyone)[camera] == "10.0.0.2":
            assert owners(survivors)[camera] in ("10.0.0.1", "10.0.0.3")
        else:
            assert owners(survivors)[camera] == owners(everyone)[camera]
    assert replicas.apply(probe=True) == survivors  # still not answering: still out
    probes.answering.add("10.0.0.2")
    back = replicas.apply(probe=True)
    assert back == everyone  # back: its cameras return to it
    # DNS drops .1: gone at once, not probed.
    replicas.resolved(("10.0.0.2", "10.0.0.3"))
    last = replicas.apply(probe=True)
    assert last is not None and last.resolved == last.live == ("10.0.0.2", "10.0.0.3")
    assert views == [first, everyone, survivors, everyone, last]
    lines = [r.getMessage() for r in caplog.records if "live replica(s)" in r.getMessage()]
    assert len(lines) == len(views), lines  # one line per change of the set, never per frame
    assert "not answering: 10.0.0.2 (connect)" in lines[2], lines[2]


def test_each_camera_sends_to_its_owner_only_and_counts_owner_changes() -> None:
    metrics = SenderMetrics()
    replicas, probes, _ = live_set(set(ADDRESSES))
    workers: dict[str, Worker] = {}

    def make(url: str, address: str) -> Worker:
        assert url == replica_url(URL, address)
        workers[address] = Worker()
        return workers[address]

    replicas.resolved(ADDRESSES)
    everyone = replicas.apply(probe=True)
    assert everyone is not None
    camera = "cam7"
    owner = everyone.owner(camera)
    assert owner is not None
    sending = CameraReplicas(URL, camera, replicas, make, metrics)
    sending.start()  # told the current view at once
    assert set(workers) == set(ADDRESSES) and all(w.started for w in workers.values())
    assert sending.owner == owner and sending.has_room
    sending.put(Frame(camera, 1, 1, b"jpeg"))
    assert [len(workers[a].frames) for a in ADDRESSES] == [a == owner for a in ADDRESSES]

    def gauge(name: str, address: str) -> float | None:
        labels = {"camera": camera, "replica": address}
        return metrics.registry.get_sample_value(f"framewire_replica_{name}", labels)

    assert [gauge("owner", a) for a in ADDRESSES] == [float(a == owner) for a in ADDRESSES]
    assert [gauge("up", a) for a in ADDRESSES] == [1.0, 1.0, 1.0]
    replicas.failed(owner, "connect")
    replicas.apply()
    assert sending.owner not in (owner, None) and gauge("up", owner) == 0
    changes = {"camera": camera}
    assert metrics.registry.get_sample_value("framewire_owner_changes_total", changes) == 1
    assert metrics.registry.get_sample_value("framewire_http_replicas", changes) == 2
    sending.put(Frame(camera, 2, 2, b"jpeg"))
    assert len(workers[sending.owner].frames) == 1
    assert workers[sending.owner].retried == 1  # a new owner sends at once
    # The owner leaves DNS: its worker stops and its series go.
    gone = sending.owner
    replicas.resolved(tuple(a for a in ADDRESSES if a != gone))
    replicas.apply()
    assert workers[gone].stopped and gauge("owner", gone) is None and gauge("up", gone) is None
    assert metrics.registry.get_sample_value("framewire_owner_changes_total", changes) == 2
    # No live replica: no owner, no room (nothing is encoded for HTTP).
    for address in ADDRESSES:
        replicas.failed(address, "connect")
    probes.answering.clear()
    replicas.apply()
    assert sending.owner is None and not sending.has_room
    sending.stop()
    assert all(w.stopped for w in workers.values())


class Worker:
    """A transport worker standing in for sender.TransportWorker: it keeps what it is given."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self.started = self.stopped = False
        self.retried = 0

    @property
    def has_room(self) -> bool:
        return True

    def put(self, frame: Frame) -> None:
        self.frames.append(frame)

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.stopped = True

    def retry_now(self) -> None:
        self.retried += 1


def test_only_a_replica_that_does_not_answer_loses_its_cameras() -> None:
    assert not_answering(Unreachable("connect", "refused"))
    assert not_answering(Unreachable("timeout", "no answer"))
    assert not_answering(PublishError("tls", "refused"))
    assert not_answering(Refused("stopping", "going away", 503))
    assert not not_answering(Refused("camera_limit", "full", 429))
    assert not not_answering(Refused("not_jpeg", "bad", 422))


def test_fanout_camera_with_no_live_replica_encodes_nothing_for_http() -> None:
    """Encode on demand: with no live replica, HTTP has no room (Redis absent: nothing); a
    replica that answered its probe but refuses the frames' connections is taken out again."""
    config = SenderConfig(
        width=160,
        height=120,
        http_url=f"http://127.0.0.1:{free_port()}/frames",
        http_fanout="dns",
        redis_url="",
        metrics_bind="",
    )
    source = open_source(config.source, config.width, config.height, config.fps, 1.0, 1.0)
    probes = Probes(set())
    replicas = Replicas(config.http_url, Resolver(config.http_url, 60.0), probes, 60.0)
    sender = CameraSender(config, source, publishers(config), replicas=replicas)
    assert publishers(config) == [] and [w.name for w in sender.workers] == ["http"]
    runner = threading.Thread(target=sender.run)
    runner.start()
    replicas.start()  # its thread applies what is reported; probes every 60 s (and at joins)
    capture_drops = {"camera": "cam0", "transport": "none", "stage": "capture"}
    wait_until(
        lambda: sample(sender, "framewire_frames_dropped_total", **capture_drops) >= 5,
        what="frames grabbed and left unencoded",
    )
    replicas.resolver.refresh()  # 127.0.0.1: probed at once, not answering: not live
    wait_until(lambda: probes.asked, what="the new address probed")
    assert sample(sender, "framewire_encode_seconds_count", camera="cam0") == 0
    assert sample(sender, "framewire_http_replicas", camera="cam0") == 0
    # It answers its probe, but nobody listens: the first send fails and takes it out.
    probes.answering.add("127.0.0.1")
    replicas.apply(probe=True)
    replica = {"camera": "cam0", "replica": "127.0.0.1"}
    wait_until(
        lambda: sample(sender, "framewire_replica_frames_dropped_total", **replica) >= 1,
        what="the replica's failed send",
    )
    probes.answering.clear()
    wait_until(
        lambda: sample(sender, "framewire_http_replicas", camera="cam0") == 0,
        what="the replica taken out",
    )
    assert sample(sender, "framewire_replica_up", **replica) == 0
    assert sample(sender, "framewire_owner_changes_total", camera="cam0") == 1  # to none
    sender.stop()
    runner.join(timeout=10)
    replicas.stop()
    assert not runner.is_alive()
    assert sender.metrics.registry.get_sample_value("framewire_replica_up", replica) is None
    left = [t.name for t in threading.enumerate() if t.name.startswith("framewire-")]
    assert left == []
