"""`kamiyo run` as a process: several real anvil chains at once, one misconfigured, stopped by SIGTERM."""

from __future__ import annotations

import json
import signal
import urllib.request
import sqlite3
import subprocess
import sys
import time

import pytest

from tests.support.anvil import anvil, free_port, require_anvil


@pytest.fixture(autouse=True)
def _need_anvil():
    require_anvil()


def checkpoints(db) -> dict[int, int]:
    try:
        with sqlite3.connect(db) as con:
            return dict(con.execute("SELECT chain_id, number FROM checkpoints"))
    except sqlite3.OperationalError:
        return {}


def test_chains_are_followed_at_once_a_wrong_chain_id_is_refused_and_sigterm_exits_cleanly(tmp_path):
    db = tmp_path / "state" / "kamiyo.db"
    with anvil(1001) as a, anvil(1002, block_time=1) as b, anvil(1003) as c:
        a.rpc("anvil_mine", [hex(40)])
        config = tmp_path / "kamiyo.toml"
        metrics_port = free_port()
        config.write_text(f"""
[storage]
url = "sqlite:///{db}"

[metrics]
listen = "127.0.0.1:{metrics_port}"

[[chains]]
name = "alpha"
chain_id = 1001
rpc = ["{a.http}"]
start_block = 0
poll_interval = 0.2

[[chains]]
name = "beta"
chain_id = 1002
rpc = ["{b.http}"]
start_block = 0
poll_interval = 0.2

[[chains]]
name = "gamma"
chain_id = 9999
rpc = ["{c.http}"]
start_block = 0
""")
        daemon = subprocess.Popen([sys.executable, "-m", "kamiyo.cli", "run", "--config", str(config)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                seen = checkpoints(db)
                if seen.get(1001) == 40 and seen.get(1002, 0) >= 2:
                    break
                time.sleep(0.1)
            else:
                pytest.fail(f"the chains did not progress: {checkpoints(db)}")
            a.rpc("anvil_mine", ["0x5"])  # new blocks on alpha are followed too
            while checkpoints(db).get(1001) != 45 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert checkpoints(db).get(1001) == 45
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as response:
                exposed = response.read().decode()
            daemon.send_signal(signal.SIGTERM)
            _, err = daemon.communicate(timeout=15)
        finally:
            if daemon.poll() is None:
                daemon.kill()
                daemon.communicate()
    assert daemon.returncode == 0, err[-2000:]
    events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    stopped = [e for e in events if e["event"] == "chain.stopped"]
    assert [e["chain"] for e in stopped] == ["gamma"] and "reports 1003" in stopped[0]["error"]
    assert events[-1]["event"] == "daemon.stopped"
    assert 9999 not in checkpoints(db)
    # what the logs say, the metrics say too: the stopped chain is down, the others up and where they are
    assert 'kamiyo_chain_up{chain="alpha"} 1.0' in exposed and 'kamiyo_chain_up{chain="gamma"} 0.0' in exposed
    assert 'kamiyo_checkpoint_block{chain="alpha"} 45.0' in exposed
    assert 'kamiyo_deployment_source{chain="alpha",method="trace_block"} 1.0' in exposed


def test_a_second_daemon_on_the_same_database_refuses_to_start(tmp_path):
    with anvil(1001) as a:
        config = tmp_path / "kamiyo.toml"
        config.write_text(f'[storage]\nurl = "sqlite:///{tmp_path / "k.db"}"\n\n[[chains]]\nname = "alpha"\n'
                          f'chain_id = 1001\nrpc = ["{a.http}"]\n')
        command = [sys.executable, "-m", "kamiyo.cli", "run", "--config", str(config)]
        first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 30
            while not checkpoints(tmp_path / "k.db") and time.monotonic() < deadline:
                time.sleep(0.05)
            second = subprocess.run(command, capture_output=True, text=True, timeout=30)
        finally:
            first.send_signal(signal.SIGTERM)
            first.communicate(timeout=15)
    assert second.returncode == 2
    assert "another kamiyo daemon is running" in second.stderr and "Traceback" not in second.stderr
    assert first.returncode == 0
