"""The sd_notify protocol against real AF_UNIX datagram sockets, and the watchdog's dependence on heartbeats.

The watchdog loop is driven by a fake clock that counts its reads. The loop reads it once per tick and sends
(or withholds) a ping in the same step, so "N reads later" means "N ticks done", with no sleeping or timing.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from kamiyo.daemon.notify import Heartbeats, SystemdNotifier, watchdog_loop


class Receiver:
    """The service manager's end: a bound datagram socket that the test drains without blocking."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.setblocking(False)

    def drain(self) -> list[bytes]:
        got = []
        while True:
            try:
                got.append(self.sock.recv(4096))
            except BlockingIOError:
                return got


@pytest.fixture
def short_dir():
    # AF_UNIX paths are limited to 107 bytes; pytest's tmp_path grows with the test name.
    path = Path(tempfile.mkdtemp(prefix="kn-"))
    yield path
    shutil.rmtree(path)


@pytest.fixture
def make_notifier():
    """SystemdNotifier() after the test has set the environment, closed at teardown even if an assert failed."""
    made: list[SystemdNotifier] = []

    def make() -> SystemdNotifier:
        made.append(SystemdNotifier())
        return made[-1]

    yield make
    for notifier in made:
        notifier.close()


@pytest.fixture
def make_receiver():
    made: list[Receiver] = []

    def make(address: str) -> Receiver:
        made.append(Receiver(address))
        return made[-1]

    yield make
    for receiver in made:
        receiver.sock.close()


@pytest.fixture
def path_socket(short_dir, monkeypatch):
    address = str(short_dir / "notify")
    receiver = Receiver(address)
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    yield receiver
    receiver.sock.close()


@pytest.fixture
def abstract_socket(monkeypatch):
    name = f"kamiyo-test-{uuid.uuid4().hex}"
    receiver = Receiver("\0" + name)
    monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
    yield receiver
    receiver.sock.close()


def test_states_arrive_on_a_path_socket_exactly_as_the_protocol_spells_them(path_socket):
    with SystemdNotifier() as notifier:
        assert notifier.enabled
        assert notifier.ready(status="following 2 chains")
        assert notifier.stopping()
        assert notifier.watchdog()
        assert notifier.status("catching up: ethereum 120 blocks behind")
    assert path_socket.drain() == [
        b"READY=1\nSTATUS=following 2 chains",
        b"STOPPING=1",
        b"WATCHDOG=1",
        b"STATUS=catching up: ethereum 120 blocks behind",
    ]


def test_an_abstract_socket_is_reached_through_a_leading_at_sign(abstract_socket):
    with SystemdNotifier() as notifier:
        assert notifier.ready()
    assert abstract_socket.drain() == [b"READY=1"]


def test_reloading_carries_the_monotonic_time_systemd_253_matches_reloads_by(path_socket):
    with SystemdNotifier() as notifier:
        before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        assert notifier.reloading(status="re-reading /etc/kamiyo/kamiyo.toml")
        after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    [message] = path_socket.drain()
    lines = message.decode().split("\n")
    assert lines[0] == "RELOADING=1"
    key, value = lines[1].split("=")
    assert key == "MONOTONIC_USEC" and before <= int(value) <= after
    assert lines[2:] == ["STATUS=re-reading /etc/kamiyo/kamiyo.toml"]


def test_a_newline_in_status_text_cannot_inject_another_assignment(path_socket):
    with SystemdNotifier() as notifier:
        notifier.status("bad chain name\nREADY=1")
    assert path_socket.drain() == [b"STATUS=bad chain name READY=1"]


def test_without_notify_socket_nothing_is_sent_and_there_is_no_watchdog(monkeypatch, make_notifier):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.setenv("WATCHDOG_USEC", "60000000")
    notifier = make_notifier()
    assert not notifier.enabled
    assert notifier.ready() is False and notifier.watchdog() is False
    assert notifier.watchdog_interval() is None


def test_a_relative_socket_path_is_not_used(monkeypatch, short_dir, make_notifier, make_receiver):
    monkeypatch.chdir(short_dir)
    receiver = make_receiver("notify")  # a relative name that would resolve if we (wrongly) accepted it
    monkeypatch.setenv("NOTIFY_SOCKET", "notify")
    with capture_logs() as logs:
        notifier = make_notifier()
    assert not notifier.enabled and not notifier.ready()
    assert receiver.drain() == []
    assert [e["event"] for e in logs] == ["systemd.notify_socket_unsupported"]


def test_a_failed_send_never_raises_and_is_logged_once_per_outage(short_dir, monkeypatch, make_notifier, make_receiver):
    address = str(short_dir / "notify")
    monkeypatch.setenv("NOTIFY_SOCKET", address)  # nobody listening yet
    notifier = make_notifier()
    with capture_logs() as logs:
        assert notifier.ready() is False
        assert notifier.watchdog() is False
        assert notifier.watchdog() is False
    assert [e["event"] for e in logs] == ["systemd.notify_failed"]

    receiver = make_receiver(address)
    with capture_logs() as logs:
        assert notifier.watchdog() is True
    assert logs == [] and receiver.drain() == [b"WATCHDOG=1"]

    receiver.sock.close()
    os.unlink(address)
    with capture_logs() as logs:
        assert notifier.watchdog() is False
        assert notifier.watchdog() is False
    assert [e["event"] for e in logs] == ["systemd.notify_failed"]  # a new outage is worth a new line


@pytest.mark.parametrize(
    ("usec", "pid", "expected"),
    [
        ("60000000", None, 60.0),
        ("60000000", "self", 60.0),
        ("60000000", "other", None),  # meant for the process that started us
        ("0", None, None),
        ("soon", None, None),
        (None, None, None),
    ],
)
def test_watchdog_interval_follows_watchdog_usec_and_pid(path_socket, make_notifier, monkeypatch, usec, pid, expected):
    if usec is not None:
        monkeypatch.setenv("WATCHDOG_USEC", usec)
    if pid is not None:
        monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() if pid == "self" else os.getpid() + 1))
    assert make_notifier().watchdog_interval() == expected


def test_heartbeats_judge_each_pipeline_by_its_own_last_beat():
    now = [0.0]
    beats = Heartbeats(clock=lambda: now[0])
    assert beats.all_alive(1000.0, max_age=5)  # nothing registered yet
    beats.beat("ethereum")
    now[0] = 3.0
    beats.beat("bsc")
    assert beats.names == {"ethereum", "bsc"}
    assert beats.all_alive(5.0, max_age=5)
    assert beats.stale(6.0, max_age=5) == ["ethereum"] and not beats.all_alive(6.0, max_age=5)
    beats.retire("ethereum")
    assert beats.all_alive(6.0, max_age=5)
    assert beats.stale(9.0, max_age=5) == ["bsc"]
    beats.retire("never-registered")  # harmless
    beats.beat("ethereum")  # a chain added back by a reload is watched again
    assert beats.names == {"ethereum", "bsc"}


class CountingClock:
    """A manual clock that can wake a test once it has been read a given number of times."""

    def __init__(self) -> None:
        self.now = 0.0
        self.reads = 0
        self._target = 0
        self._reached = asyncio.Event()

    def __call__(self) -> float:
        self.reads += 1
        if self.reads >= self._target:
            self._reached.set()
        return self.now

    async def ticks(self, n: int) -> None:
        """Wait until the watchdog loop has read the clock `n` more times (its only reader meanwhile)."""
        self._target = self.reads + n
        self._reached.clear()
        await asyncio.wait_for(self._reached.wait(), 10)


@pytest.fixture
def fast_watchdog(path_socket, monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "2000")  # 2 ms: the loop ticks every millisecond
    return path_socket


async def test_a_stalled_pipeline_withholds_the_pings_until_it_beats_again(fast_watchdog, make_notifier):
    clock = CountingClock()
    beats = Heartbeats(clock)
    beats.beat("ethereum")
    beats.beat("bsc")
    notifier, stop = make_notifier(), asyncio.Event()
    with capture_logs() as logs:
        loop = asyncio.create_task(watchdog_loop(notifier, beats, stop, max_age=10))
        await clock.ticks(3)
        assert fast_watchdog.drain() == [b"WATCHDOG=1"] * 3

        clock.now = 20.0
        beats.beat("ethereum")  # bsc last beat at 0: stalled
        await clock.ticks(4)
        assert fast_watchdog.drain() == []

        beats.beat("bsc")
        await clock.ticks(2)
        assert fast_watchdog.drain() == [b"WATCHDOG=1"] * 2

        stop.set()
        await asyncio.wait_for(loop, 10)
    events = [(e["event"], e.get("stale")) for e in logs]
    assert events == [("watchdog.withheld", ["bsc"]), ("watchdog.resumed", None)]


async def test_a_retired_pipeline_does_not_stop_the_watchdog_for_the_others(fast_watchdog, make_notifier):
    clock = CountingClock()
    beats = Heartbeats(clock)
    beats.beat("ethereum")
    beats.beat("bsc")
    notifier, stop = make_notifier(), asyncio.Event()
    loop = asyncio.create_task(watchdog_loop(notifier, beats, stop, max_age=10))
    await clock.ticks(1)
    clock.now = 20.0
    beats.beat("ethereum")
    beats.retire("bsc")  # stopped by a fatal error: silent from now on
    fast_watchdog.drain()
    await clock.ticks(3)
    assert fast_watchdog.drain() == [b"WATCHDOG=1"] * 3
    stop.set()
    await asyncio.wait_for(loop, 10)


async def test_the_loop_pings_nothing_once_stopped(fast_watchdog, make_notifier):
    clock = CountingClock()
    notifier, stop = make_notifier(), asyncio.Event()
    stop.set()
    await asyncio.wait_for(watchdog_loop(notifier, Heartbeats(clock), stop), 10)
    assert fast_watchdog.drain() == [] and clock.reads == 0


async def test_without_a_watchdog_the_loop_returns_at_once(path_socket, make_notifier):
    stop = asyncio.Event()  # never set: returning proves the loop did not wait for it
    await asyncio.wait_for(watchdog_loop(make_notifier(), Heartbeats(), stop), 10)
    assert path_socket.drain() == []
