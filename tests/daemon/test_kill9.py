"""The daemon killed with -9 at random moments (20 times during a 6,000-block catch-up), again and again: after each restart it resumes at
checkpoint + 1, so in the end every deployment is stored exactly once and nothing is skipped."""

from __future__ import annotations

import random
import signal
import subprocess
import time

import pytest

from tests.support.anvil import anvil, require_anvil
from tests.support.daemon import (checkpoints, chain_toml, daemon_command, db_rows, running_daemon, storage_toml,
                                  wait_checkpoint)

# Creation code that deploys a 1-byte runtime (STOP): CODECOPY(0, 12, 1), RETURN(0, 1), then the runtime byte.
TINY = "0x6001600c60003960016000f300"
KILLS = 20


@pytest.fixture(autouse=True)
def _need_anvil():
    require_anvil()


def test_kill_9_at_random_moments_loses_and_duplicates_nothing(tmp_path):
    rng = random.Random(20261201)
    db = tmp_path / "kamiyo.db"
    with anvil(4444) as node:
        account = node.rpc("eth_accounts")[0]
        expected = set()
        for _ in range(300):  # 6,000 blocks, a deployment in every twentieth
            expected.add(node.rpc("eth_sendTransaction", [{"from": account, "data": TINY, "gas": hex(100_000)}]))
            node.rpc("anvil_mine", ["0x13"])
        head = int(node.rpc("eth_blockNumber"), 16)
        # each send mines its own block, unless anvil folds it into the next anvil_mine under load: about 6,000
        assert 5_700 <= head <= 6_000 and len(expected) == 300

        config = tmp_path / "kamiyo.toml"
        config.write_text(storage_toml(db) + chain_toml("local", node))
        progress = []

        def checkpoint() -> int:
            return checkpoints(db).get(4444, -1)

        for _ in range(KILLS):  # SIGKILLed, never stopped: a bare process, not running_daemon
            before = checkpoint()
            daemon = subprocess.Popen(daemon_command(config), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 30
            while checkpoint() == before and time.monotonic() < deadline:  # wait until it is committing blocks
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.05))  # then kill it at a random moment, often inside a commit
            daemon.send_signal(signal.SIGKILL)
            daemon.wait()
            progress.append(checkpoint())
        assert progress[-1] < head, "the kills should land during catch-up; slow them down if this fails"

        with running_daemon(config, stdout=subprocess.DEVNULL, stop_timeout=15):
            wait_checkpoint(db, 4444, head, timeout=60)
    stored = db_rows(db, "SELECT tx_hash FROM deployments")
    assert sorted(progress) == progress  # the checkpoint never went backwards across kills
    assert len(set(progress)) >= KILLS // 2, progress  # and most kills landed while it was making progress
    print("checkpoints after each kill:", progress)
    assert len(stored) == len(set(stored)) == 300
    assert {h for (h,) in stored} == expected
    assert db_rows(db, "SELECT number FROM checkpoints") == [(head,)]
