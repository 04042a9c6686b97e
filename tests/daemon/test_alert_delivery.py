"""Alerts from the running daemon to a real webhook receiver: every finding reaches it, across kill -9.

An anvil chain carries the four attack scenarios (so there are findings of several kinds and severities). The
daemon follows it with a webhook channel to a receiver on loopback that answers slowly and refuses its first
requests with 500s. The daemon is killed with SIGKILL three times while it delivers, then run to the end. The
receiver must have accepted, with valid signatures, one delivery for every outbox event the channel wants; any
repeat must carry the same X-Kamiyo-Delivery-Id, so that a receiver can drop it.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from collections import Counter

from tests.alerts.receiver import Receiver
from tests.support.anvil import anvil, require_anvil
from tests.support.daemon import (chain_toml, daemon_command, db_rows, running_daemon_async, storage_toml,
                                  wait_checkpoint_async)
from tests.support.scenarios import ATTACKS

CHAIN_ID = 31_337
SECRET = "kill-9-secret"


async def wanted(db) -> set[str]:
    """Delivery ids of every event the channel takes (min_severity low: all but info)."""
    rows = await asyncio.to_thread(db_rows, db, "SELECT fingerprint, event, finding FROM outbox")
    return {f"{fp}:{event}" for fp, event, finding in rows if json.loads(finding)["severity"] != "info"}


async def test_every_finding_is_delivered_across_kill_9_and_repeats_carry_their_delivery_id(tmp_path):
    require_anvil()
    receiver = await Receiver(SECRET, fail_first=3, delay=0.05).start()
    db, config = tmp_path / "k.db", tmp_path / "k.toml"
    try:
        with anvil(CHAIN_ID) as node:
            for play in ATTACKS.values():
                await asyncio.to_thread(play, node)
            head = int(node.rpc("eth_blockNumber"), 16)
            config.write_text(storage_toml(db) + chain_toml("local", node)
                              + '\n[alerts]\nallow_networks = ["127.0.0.0/8"]\nbackoff_seconds = 0.05\n'
                                'max_backoff_seconds = 0.2\n'
                              + f'\n[[channels]]\ntype = "webhook"\nname = "ops"\nurl = "{receiver.url}"\n'
                                f'secret = "{SECRET}"\nrate_per_minute = 6000\n')
            for _ in range(3):  # killed while it delivers (or while it still catches up)
                daemon = subprocess.Popen(daemon_command(config), stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL)
                arrived = len(receiver.received)
                for _ in range(400):
                    await asyncio.sleep(0.025)
                    if len(receiver.received) > arrived:
                        break
                daemon.send_signal(signal.SIGKILL)
                await asyncio.to_thread(daemon.wait)
            async with running_daemon_async(config) as daemon:
                await wait_checkpoint_async(db, CHAIN_ID, head, timeout=60)
                expected = await wanted(db)
                for _ in range(600):
                    if expected <= {r.delivery_id for r in receiver.received}:
                        break
                    await asyncio.sleep(0.05)
        assert daemon.returncode == 0, daemon.stderr_text[-2000:]
    finally:
        await receiver.stop()
    got = Counter(r.delivery_id for r in receiver.received)
    assert len(expected) >= 8  # the attacks' findings, of several analyzers
    assert set(got) == expected  # everything, and nothing the channel does not take
    assert all(r.signed for r in receiver.received)
    assert all(r.delivery_id == f"{r.finding['id']}:{r.event}" for r in receiver.received)  # repeats are droppable
    print(f"\n{len(expected)} deliveries expected; received {sum(got.values())} "
          f"({sum(n - 1 for n in got.values())} repeats, each under its delivery id)")
