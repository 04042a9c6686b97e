"""`kamiyo run` as systemd sees it: READY, watchdog pings, RELOADING on SIGHUP, STOPPING on SIGTERM, over a
notify socket this test binds itself. SIGHUP adds a chain, survives a broken file, and removes a chain, while
the others keep being followed."""

from __future__ import annotations

import signal
import socket
import time

import pytest

from tests.support.anvil import anvil, require_anvil
from tests.support.daemon import checkpoints, chain_toml, log_events, running_daemon, storage_toml, wait_checkpoint


class NotifySocket:
    def __init__(self, path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.seen: list[dict[str, str]] = []

    def until(self, predicate, timeout: float = 20) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = self.sock.recv(4096).decode()
            except TimeoutError:
                continue
            message = dict(line.split("=", 1) for line in data.splitlines() if "=" in line)
            self.seen.append(message)
            if predicate(message):
                return message
        pytest.fail(f"no such notification; saw {self.seen[-5:]}")


def test_systemd_notifications_and_sighup_reload(tmp_path):
    require_anvil()
    db, config = tmp_path / "k.db", tmp_path / "k.toml"
    storage = storage_toml(db)
    notify = NotifySocket(tmp_path / "notify.sock")
    with notify.sock, anvil(1001) as a, anvil(1002) as b:
        config.write_text(storage + chain_toml("alpha", a))
        env = {"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "1000000", "PATH": "/usr/bin:/bin"}
        with running_daemon(config, env=env) as daemon:
            ready = notify.until(lambda m: m.get("READY") == "1")
            assert "alpha" in ready["STATUS"]
            notify.until(lambda m: m.get("WATCHDOG") == "1")  # pinged while the pipelines are alive

            config.write_text(storage + chain_toml("alpha", a) + chain_toml("beta", b))
            daemon.send_signal(signal.SIGHUP)
            reloading = notify.until(lambda m: m.get("RELOADING") == "1")
            assert int(reloading["MONOTONIC_USEC"]) > 0
            assert "beta" in notify.until(lambda m: m.get("READY") == "1")["STATUS"]
            b.rpc("anvil_mine", ["0x3"])
            wait_checkpoint(db, 1002, 3, timeout=20)  # the added chain is followed without a restart

            config.write_text("[storage\nbroken")
            daemon.send_signal(signal.SIGHUP)
            assert "previous" in notify.until(lambda m: m.get("READY") == "1")["STATUS"]
            a.rpc("anvil_mine", ["0x2"])
            wait_checkpoint(db, 1001, 2, timeout=20)  # a broken file changes nothing

            config.write_text(storage + chain_toml("beta", b))
            daemon.send_signal(signal.SIGHUP)
            notify.until(lambda m: m.get("READY") == "1" and "alpha" not in m.get("STATUS", ""))
            stopped_at = checkpoints(db)[1001]
            a.rpc("anvil_mine", ["0x4"])
            b.rpc("anvil_mine", ["0x2"])
            wait_checkpoint(db, 1002, 5, timeout=20)  # the remaining chain goes on ...
            assert checkpoints(db)[1001] == stopped_at  # ... the removed one is no longer followed

            daemon.send_signal(signal.SIGTERM)
            notify.until(lambda m: m.get("STOPPING") == "1")  # leaving the `with` waits for the exit
    assert daemon.returncode == 0, daemon.stderr_text[-2000:]
    events = log_events(daemon.stderr_text)
    reloads = [e for e in events if e["event"] == "config.reloaded"]
    assert [r["added"] for r in reloads] == [["beta"], []] and [r["removed"] for r in reloads] == [[], ["alpha"]]
    assert any(e["event"] == "config.reload_failed" for e in events)
