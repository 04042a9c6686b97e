"""`kamiyo run` as a process: several real anvil chains at once, one misconfigured, stopped by SIGTERM."""

from __future__ import annotations

import subprocess
import time
import urllib.request

import pytest

from tests.support.anvil import anvil, free_port, require_anvil
from tests.support.daemon import checkpoints, chain_toml, daemon_command, log_events, running_daemon, storage_toml


@pytest.fixture(autouse=True)
def _need_anvil():
    require_anvil()


def test_chains_are_followed_at_once_a_wrong_chain_id_is_refused_and_sigterm_exits_cleanly(tmp_path):
    db = tmp_path / "state" / "kamiyo.db"
    with anvil(1001) as a, anvil(1002, block_time=1) as b, anvil(1003) as c:
        a.rpc("anvil_mine", [hex(40)])
        config = tmp_path / "kamiyo.toml"
        metrics_port = free_port()
        config.write_text(storage_toml(db) + f'\n[metrics]\nlisten = "127.0.0.1:{metrics_port}"\n'
                          + chain_toml("alpha", a, poll_interval=0.2, requests_per_second=None)
                          + chain_toml("beta", b, poll_interval=0.2, requests_per_second=None)
                          + chain_toml("gamma", c, chain_id=9999, poll_interval=None, requests_per_second=None))
        with running_daemon(config, stop_timeout=15) as daemon:
            # one budget for both waits: alpha exactly at its head with beta moving, then alpha's next blocks
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
    assert daemon.returncode == 0, daemon.stderr_text[-2000:]
    events = log_events(daemon.stderr_text)
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
        config.write_text(storage_toml(tmp_path / "k.db")  # the daemon's own defaults for all but the chain
                          + chain_toml("alpha", a, start_block=None, poll_interval=None, requests_per_second=None))
        with running_daemon(config, stop_timeout=15) as first:
            deadline = time.monotonic() + 30
            while not checkpoints(tmp_path / "k.db") and time.monotonic() < deadline:
                time.sleep(0.05)
            second = subprocess.run(daemon_command(config), capture_output=True, text=True, timeout=30)
    assert second.returncode == 2
    assert "another kamiyo daemon is running" in second.stderr and "Traceback" not in second.stderr
    assert first.returncode == 0
