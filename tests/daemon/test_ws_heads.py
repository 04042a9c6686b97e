"""The daemon follows a chain by WebSocket subscription, and a dropped socket loses nothing: while it is down no
head arrives, and after the reconnect the follower catches up over HTTP. The stored blocks equal the node's.

The poll interval is set far beyond the test's length, so only the subscription can wake the follower."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.anvil import anvil, require_anvil
from tests.support.daemon import chain_toml, db_rows, log_events, running_daemon_async, storage_toml
from tests.support.tcp_proxy import TcpProxy


def stored_blocks(db) -> dict[int, str]:
    # the blocks table, not the checkpoint: the gap this test looks for would be a missing row here
    return dict(db_rows(db, "SELECT number, hash FROM blocks WHERE chain_id = 1001"))


async def reach(db, number: int, timeout: float = 20) -> None:
    async def done():
        return max(stored_blocks(db), default=-1) >= number

    deadline = asyncio.get_running_loop().time() + timeout
    while not await done():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"checkpoint stuck at {max(stored_blocks(db), default=None)}, wanted {number}")
        await asyncio.sleep(0.05)


async def test_heads_by_subscription_and_a_dropped_socket_leaves_no_gap(tmp_path):
    require_anvil()
    db = tmp_path / "k.db"
    with anvil(1001) as node:
        async with TcpProxy(node.port) as proxy:
            (tmp_path / "k.toml").write_text(
                storage_toml(db) + chain_toml("alpha", node, ws=[proxy.ws], poll_interval=600, max_reorg_depth=1000))
            async with running_daemon_async(tmp_path / "k.toml") as daemon:
                await reach(db, 0)
                for _ in range(3):  # each mined block is announced and followed at once
                    node.rpc("evm_mine")
                    await reach(db, int(node.rpc("eth_blockNumber"), 16))
                assert proxy.accepted == 1
                proxy.refusing = True
                assert proxy.sever() == 1
                node.rpc("anvil_mine", ["0x5"])  # produced while the socket is down: nobody announces them
                await asyncio.sleep(1.0)
                assert max(stored_blocks(db)) == 3
                proxy.refusing = False  # the reconnect's first report wakes the follower, which fills the gap
                await reach(db, 8)
                node.rpc("evm_mine")
                await reach(db, 9)
                canonical = {n: node.rpc("eth_getBlockByNumber", [hex(n), False])["hash"] for n in range(10)}
    assert daemon.returncode == 0, daemon.stderr_text[-2000:]
    assert stored_blocks(db) == canonical  # no gap, no duplicate, nothing off the canonical chain
    events = [e["event"] for e in log_events(daemon.stderr_text)]
    assert "heads.disconnected" in events and "heads.reconnected" in events
