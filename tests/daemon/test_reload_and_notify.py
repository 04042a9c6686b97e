"""`kamiyo run` as systemd sees it: READY, watchdog pings, RELOADING on SIGHUP, STOPPING on SIGTERM, over a
notify socket this test binds itself. SIGHUP adds a chain, survives a broken file, and removes a chain, while
the others keep being followed."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import subprocess
import sys
import time

import pytest

from tests.support.anvil import anvil, require_anvil


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


def checkpoints(db) -> dict[int, int]:
    try:
        with sqlite3.connect(db) as con:
            return dict(con.execute("SELECT chain_id, number FROM checkpoints"))
    except sqlite3.OperationalError:
        return {}


def wait_checkpoint(db, chain_id: int, number: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while checkpoints(db).get(chain_id, -1) < number:
        if time.monotonic() > deadline:
            pytest.fail(f"chain {chain_id} stuck at {checkpoints(db).get(chain_id)}, wanted {number}")
        time.sleep(0.05)


def chain_block(name: str, node) -> str:
    return (f'\n[[chains]]\nname = "{name}"\nchain_id = {node.chain_id}\nrpc = ["{node.http}"]\nstart_block = 0\n'
            f'poll_interval = 0.1\nrequests_per_second = 5000\n')


def test_systemd_notifications_and_sighup_reload(tmp_path):
    require_anvil()
    db, config = tmp_path / "k.db", tmp_path / "k.toml"
    storage = f'[storage]\nurl = "sqlite:///{db}"\n'
    notify = NotifySocket(tmp_path / "notify.sock")
    with notify.sock, anvil(1001) as a, anvil(1002) as b:
        config.write_text(storage + chain_block("alpha", a))
        env = {"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "1000000", "PATH": "/usr/bin:/bin"}
        daemon = subprocess.Popen([sys.executable, "-m", "kamiyo.cli", "run", "--config", str(config)], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            ready = notify.until(lambda m: m.get("READY") == "1")
            assert "alpha" in ready["STATUS"]
            notify.until(lambda m: m.get("WATCHDOG") == "1")  # pinged while the pipelines are alive

            config.write_text(storage + chain_block("alpha", a) + chain_block("beta", b))
            daemon.send_signal(signal.SIGHUP)
            reloading = notify.until(lambda m: m.get("RELOADING") == "1")
            assert int(reloading["MONOTONIC_USEC"]) > 0
            assert "beta" in notify.until(lambda m: m.get("READY") == "1")["STATUS"]
            b.rpc("anvil_mine", ["0x3"])
            wait_checkpoint(db, 1002, 3)  # the added chain is followed without a restart

            config.write_text("[storage\nbroken")
            daemon.send_signal(signal.SIGHUP)
            assert "previous" in notify.until(lambda m: m.get("READY") == "1")["STATUS"]
            a.rpc("anvil_mine", ["0x2"])
            wait_checkpoint(db, 1001, 2)  # a broken file changes nothing

            config.write_text(storage + chain_block("beta", b))
            daemon.send_signal(signal.SIGHUP)
            notify.until(lambda m: m.get("READY") == "1" and "alpha" not in m.get("STATUS", ""))
            stopped_at = checkpoints(db)[1001]
            a.rpc("anvil_mine", ["0x4"])
            b.rpc("anvil_mine", ["0x2"])
            wait_checkpoint(db, 1002, 5)  # the remaining chain goes on ...
            assert checkpoints(db)[1001] == stopped_at  # ... the removed one is no longer followed

            daemon.send_signal(signal.SIGTERM)
            notify.until(lambda m: m.get("STOPPING") == "1")
            _, err = daemon.communicate(timeout=30)
        finally:
            if daemon.poll() is None:
                daemon.kill()
                daemon.communicate()
    assert daemon.returncode == 0, err[-2000:]
    events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    reloads = [e for e in events if e["event"] == "config.reloaded"]
    assert [r["added"] for r in reloads] == [["beta"], []] and [r["removed"] for r in reloads] == [[], ["alpha"]]
    assert any(e["event"] == "config.reload_failed" for e in events)
