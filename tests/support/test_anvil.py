"""The anvil fixture itself: real nodes, distinct chain ids, HTTP and WebSocket, stopped afterwards."""

from __future__ import annotations

import aiohttp
import pytest

from tests.support.anvil import anvil, require_anvil


@pytest.fixture(scope="module", autouse=True)
def _need_anvil():
    require_anvil()


async def test_two_nodes_with_their_own_chain_ids_answer_over_http_and_websocket():
    with anvil(31337) as a, anvil(56, block_time=1) as b:
        assert a.port != b.port
        assert int(a.rpc("eth_chainId"), 16) == 31337 and int(b.rpc("eth_chainId"), 16) == 56
        a.rpc("evm_mine")
        assert int(a.rpc("eth_blockNumber"), 16) == 1
        async with aiohttp.ClientSession() as session, session.ws_connect(b.ws) as ws:
            await ws.send_json({"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["newHeads"]})
            subscribed = await ws.receive_json(timeout=5)
            head = await ws.receive_json(timeout=5)  # --block-time 1: a block within about a second
            assert subscribed["result"] == head["params"]["subscription"]
            assert int(head["params"]["result"]["number"], 16) >= 1
        process = a.process
    assert process.poll() is not None  # stopped on leaving the context
