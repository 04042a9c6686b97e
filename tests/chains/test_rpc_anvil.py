"""The RPC client against real anvil nodes: single calls, batches, and rotation away from a dead endpoint."""

from __future__ import annotations

import pytest

from kamiyo.chains.rpc import RpcClient, RpcResponseError
from tests.support.anvil import anvil, free_port, require_anvil


@pytest.fixture(scope="module")
def node():
    require_anvil()
    with anvil(4242) as running:
        running.rpc("anvil_mine", ["0x5"])
        yield running


async def test_calls_and_a_batch_of_blocks(node):
    async with RpcClient([node.http], requests_per_second=1000) as client:
        assert int(await client.call("eth_chainId", []), 16) == 4242
        blocks = await client.batch([("eth_getBlockByNumber", [hex(n), False]) for n in range(6)])
        assert [int(b["number"], 16) for b in blocks] == list(range(6))
        assert all(blocks[n]["parentHash"] == blocks[n - 1]["hash"] for n in range(1, 6))


async def test_a_dead_first_endpoint_is_rotated_away_from(node):
    dead = f"http://127.0.0.1:{free_port()}"
    async with RpcClient([dead, node.http], requests_per_second=1000, backoff_base=0.01) as client:
        for _ in range(3):
            assert int(await client.call("eth_blockNumber", []), 16) >= 5
        first, second = client.endpoints
        assert first.errors and second.requests >= 3


async def test_a_request_error_from_the_node_is_not_retried(node):
    async with RpcClient([node.http], requests_per_second=1000) as client:
        with pytest.raises(RpcResponseError):
            await client.call("eth_noSuchMethod", [])
        assert client.endpoints[0].requests == 1
