"""The chain adapter on real anvil nodes: identity check, confirmed head, batched block ranges; and the mapper
on malformed answers."""

from __future__ import annotations

import pytest

from kamiyo.chains.mappers import MalformedNodeAnswer, block_ref
from kamiyo.chains.rpc import RpcClient
from kamiyo.chains.source import ChainIdMismatch, EvmChainSource
from kamiyo.config import ChainSettings
from tests.support.anvil import anvil, require_anvil

HASH = "0x" + "ab" * 32


@pytest.fixture(scope="module")
def node():
    require_anvil()
    with anvil(777) as running:
        running.rpc("anvil_mine", [hex(260)])
        yield running


def settings(node, chain_id: int = 777, confirmations=0) -> ChainSettings:
    return ChainSettings(name="test", chain_id=chain_id, rpc=[node.http], confirmations=confirmations)


async def test_a_chain_id_mismatch_is_refused(node):
    async with RpcClient([node.http], requests_per_second=1000) as client:
        await EvmChainSource(settings(node), client).verify()
        with pytest.raises(ChainIdMismatch, match="configured with chain_id 1 but its node reports 777"):
            await EvmChainSource(settings(node, chain_id=1), client).verify()


async def test_head_stays_confirmations_behind(node):
    async with RpcClient([node.http], requests_per_second=1000) as client:
        latest = int(node.rpc("eth_blockNumber"), 16)
        assert await EvmChainSource(settings(node), client).head() == latest
        assert await EvmChainSource(settings(node, confirmations=12), client).head() == latest - 12
        assert await EvmChainSource(settings(node, confirmations="finalized"), client).head() <= latest


async def test_a_range_of_blocks_comes_back_complete_ordered_and_chained(node):
    async with RpcClient([node.http], requests_per_second=1000) as client:
        blocks = await EvmChainSource(settings(node), client).blocks(3, 250)
    assert [b.number for b in blocks] == list(range(3, 251))
    assert all(b.parent_hash == a.hash for a, b in zip(blocks, blocks[1:]))
    assert blocks[-1].hash == node.rpc("eth_getBlockByNumber", [hex(250), False])["hash"]


@pytest.mark.parametrize(
    "raw",
    [None, [], {"number": "12", "hash": HASH, "parentHash": HASH, "timestamp": "0x1"},
     {"number": "0x1", "hash": "0x12", "parentHash": HASH, "timestamp": "0x1"},
     {"number": "0x1", "hash": HASH, "timestamp": "0x1"}],
)
def test_malformed_blocks_are_named_errors(raw):
    with pytest.raises(MalformedNodeAnswer):
        block_ref(1, raw)


def test_block_hashes_are_stored_lowercase():
    ref = block_ref(1, {"number": "0x10", "hash": HASH.upper().replace("0X", "0x"), "parentHash": HASH,
                        "timestamp": "0x5"})
    assert (ref.number, ref.hash, ref.timestamp) == (16, HASH, 5)
