"""The systemd notification protocol (sd_notify(3)) without libsystemd, and a watchdog tied to pipeline progress.

`SystemdNotifier` sends state changes as datagrams to $NOTIFY_SOCKET. Outside systemd it does nothing. It never
raises on a failed send: losing a status line must not bring the daemon down, and if the lost line was a
watchdog ping, systemd's restart is the right outcome anyway. `Heartbeats` and `watchdog_loop` ping only while
every live pipeline is making progress. A pipeline stuck on a hung call then gets the process restarted, where a
bare timer would only prove that the event loop still runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Callable, Mapping

from .. import log

_log = log.get("kamiyo.daemon.notify")

# Generous on purpose. A chain whose RPC is down backs off for up to a minute, and one request may take its
# timeout several times over while retrying. That is slow, not hung, and a restart would not cure it.
DEFAULT_MAX_AGE = 300.0


def monotonic_usec() -> int:
    """CLOCK_MONOTONIC in microseconds: the clock systemd compares MONOTONIC_USEC against."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def _socket_address(value: str) -> str | None:
    if value.startswith("@"):
        return "\0" + value[1:]  # Linux abstract namespace: no file on disk, the name starts with a NUL byte
    if value.startswith("/"):
        return value
    return None  # e.g. systemd 254's vsock: addresses, which this daemon has no use for


def _watchdog_seconds(environ: Mapping[str, str], pid: int) -> float | None:
    raw = environ.get("WATCHDOG_USEC")
    if not raw:
        return None
    try:
        usec = int(raw)
        target = int(environ["WATCHDOG_PID"]) if environ.get("WATCHDOG_PID") else pid
    except ValueError:
        _log.warning("systemd.watchdog_env_invalid", watchdog_usec=raw, watchdog_pid=environ.get("WATCHDOG_PID"))
        return None
    if usec <= 0 or target != pid:  # the variables were meant for another process (a parent that exec'd us)
        return None
    return usec / 1_000_000


class SystemdNotifier:
    """Reads the environment once, at construction. Every method returns whether the line was sent."""

    def __init__(self, environ: Mapping[str, str] | None = None, pid: int | None = None) -> None:
        environ = os.environ if environ is None else environ
        raw = environ.get("NOTIFY_SOCKET", "")
        self._address = _socket_address(raw) if raw else None
        if raw and self._address is None:
            _log.warning("systemd.notify_socket_unsupported", notify_socket=raw)
        self._watchdog = _watchdog_seconds(environ, os.getpid() if pid is None else pid)
        self._sock: socket.socket | None = None
        self._failing = False

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def watchdog_interval(self) -> float | None:
        """Seconds within which systemd wants a WATCHDOG=1, or None when it wants none. Ping at half of it."""
        return self._watchdog if self.enabled else None

    def notify(self, **fields: str | int) -> bool:
        """Send `KEY=value` assignments as one datagram, in the order given."""
        if self._address is None:
            return False
        # A newline inside a value would start a new assignment: STATUS text must not be able to say READY=1.
        payload = "\n".join(f"{key}={str(value).replace(chr(10), ' ')}" for key, value in fields.items())
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._sock.setblocking(False)  # a full queue on systemd's side must not stall the event loop
            self._sock.sendto(payload.encode(), self._address)
        except OSError as exc:
            if not self._failing:  # once per run of failures, not once per watchdog ping
                _log.warning("systemd.notify_failed", error=str(exc), fields=sorted(fields))
            self._failing = True
            return False
        self._failing = False
        return True

    def ready(self, status: str | None = None) -> bool:
        """Start-up (or a reload) is complete: Type=notify units count as started only now."""
        return self.notify(READY=1, **_status(status))

    def reloading(self, status: str | None = None) -> bool:
        """A reload begins; send ready() when it is done. systemd >= 253 matches reloads by MONOTONIC_USEC."""
        return self.notify(RELOADING=1, MONOTONIC_USEC=monotonic_usec(), **_status(status))

    def stopping(self, status: str | None = None) -> bool:
        return self.notify(STOPPING=1, **_status(status))

    def watchdog(self) -> bool:
        return self.notify(WATCHDOG=1)

    def status(self, text: str) -> bool:
        """Free text shown by `systemctl status`."""
        return self.notify(STATUS=text)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> SystemdNotifier:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _status(text: str | None) -> dict[str, str]:
    return {} if text is None else {"STATUS": text}


class Heartbeats:
    """When each pipeline last made progress. A pipeline's first beat registers it; `retire` forgets it."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._last: dict[str, float] = {}

    def beat(self, name: str) -> None:
        self._last[name] = self.clock()

    def retire(self, name: str) -> None:
        """The pipeline stopped for good (e.g. a fatal chain error). Its silence must not stop the watchdog."""
        self._last.pop(name, None)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self._last)

    def stale(self, now: float, max_age: float) -> list[str]:
        return sorted(name for name, last in self._last.items() if now - last > max_age)

    def all_alive(self, now: float, max_age: float) -> bool:
        """True when every registered pipeline beat within `max_age`; vacuously true when none is registered."""
        return not self.stale(now, max_age)


async def watchdog_loop(
    notifier: SystemdNotifier, heartbeats: Heartbeats, stop: asyncio.Event, *, max_age: float = DEFAULT_MAX_AGE
) -> None:
    """Ping WATCHDOG=1 at half the interval while every pipeline is alive, until `stop` is set.

    Returns at once when systemd asked for no watchdog. A stalled pipeline withholds the pings, so systemd
    restarts the daemon one WatchdogSec later. A pipeline that beats again before that resumes them.
    """
    if max_age <= 0:
        raise ValueError("max_age must be positive")
    interval = notifier.watchdog_interval()
    if interval is None:
        return
    withheld = False
    while not stop.is_set():
        stale = heartbeats.stale(heartbeats.clock(), max_age)
        if stale and not withheld:
            _log.error("watchdog.withheld", stale=stale, max_age=max_age)
        elif not stale:
            if withheld:
                _log.info("watchdog.resumed")
            notifier.watchdog()
        withheld = bool(stale)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval / 2)
