"""The replicas mode's replay producer in process: its option, its paced loop and its frames
(its report: test_bench_replicas.py; tests/system/test_bench.py runs it for real)."""

from __future__ import annotations

import random
import threading
import time

import pytest
from click.testing import CliRunner

from framewire.frame import Frame
from framewire.splice import parse_header, restart_interval
from framewire.transports import FrameSender
from framewire_bench import command, replay


def test_the_producer_option_takes_sender_or_replay() -> None:
    result = CliRunner().invoke(command.bench, ["--replicas", "1", "--replicas-producer", "x"])
    assert result.exit_code == 2
    assert "--replicas-producer" in result.output and "'sender', 'replay'" in result.output
    assert "--replicas-producer [sender|replay]" in CliRunner().invoke(command.bench, ["-h"]).output


def test_the_loop_is_encoded_with_the_senders_parameters() -> None:
    loop = replay.encode_loop(64, 48, 3, 80)
    assert len(loop) == 3 and len(set(loop)) == 3  # the pattern moves from frame to frame
    header = parse_header(loop[0])
    assert (header.width, header.height) == (64, 48)
    assert header.restart == restart_interval(64)  # a restart marker every MCU row


def test_ticks_start_within_a_period_and_never_bank_time() -> None:
    ticks = replay.first_ticks(["cam0", "cam1", "cam2"], 30.0, 100.0, random.Random(1))
    assert sorted(i for _, i in ticks) == [0, 1, 2]
    assert all(100.0 <= t <= 100.0 + 1 / 30 for t, _ in ticks)
    assert len({t for t, _ in ticks}) == 3  # spread phases
    assert replay.next_tick(10.0, 0.1, 10.05) == pytest.approx((10.1, 0))
    following, missed = replay.next_tick(10.0, 0.1, 10.35)  # a stall of 3.5 periods
    assert missed == 3 and following == pytest.approx(10.4)


def test_bad_producer_arguments_are_refused() -> None:
    assert replay.parse_args(["--redis-url", "redis://x", "--cameras", "3"]).frames == 30
    with pytest.raises(SystemExit):
        replay.parse_args(["--redis-url", "redis://x", "--cameras", "0"])


class Recorder(FrameSender):
    """A FrameSender that keeps what it is given (the wire contract's checks still apply)."""

    name, target = "redis", "memory"

    def __init__(self) -> None:
        super().__init__("cam0")
        self.frames: list[Frame] = []

    def deliver(self, frame: Frame) -> None:
        self.frames.append(frame)


def test_replay_sends_each_cameras_loop_at_its_rate_with_the_time_of_the_send() -> None:
    loop = replay.encode_loop(32, 16, 4, 80)
    recorder = Recorder()
    player = replay.Replay(recorder, ["cam0", "cam1"], loop, fps=50.0, seed=3)
    runner = threading.Thread(target=player.run)
    started = time.time_ns()
    runner.start()
    time.sleep(0.5)
    player.stop()
    runner.join(2)
    assert not runner.is_alive()
    for camera in ("cam0", "cam1"):
        mine = [f for f in recorder.frames if f.camera == camera]
        assert 15 <= len(mine) <= 30, len(mine)  # 50 fps for half a second
        assert [f.seq for f in mine] == list(range(1, len(mine) + 1))
        assert all(f.jpeg in loop for f in mine) and all(f.captured_ns >= started for f in mine)
    first = [f.jpeg for f in recorder.frames if f.camera == "cam1"][:2]
    assert first == [loop[3], loop[0]]  # cam1 starts at its own frame of the loop, then wraps
    samples = player.metrics.frames_sent.labels("cam0", "redis")._value.get()
    assert samples == len([f for f in recorder.frames if f.camera == "cam0"])
