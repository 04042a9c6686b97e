"""A fork finding through a reorg, on a real anvil chain: origin A deploys Uniswap V2's factory, origin B the
PancakeSwap fork of it a few blocks later, which is a `fork-detected` finding. A reorg that drops B's block
retracts the finding and takes the deployment with it; B deploying again on the new branch makes the same
finding (same fingerprint, one row) active again, at its new block. And once A's code is the one reorged
away, B's copy is no fork: nothing of another origin is left in the family."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from kamiyo.chains.rpc import RpcClient
from kamiyo.config import ChainSettings, StorageSettings
from kamiyo.daemon.follower import ChainFollower
from kamiyo.daemon.linking import FORK_DETECTED, Linker
from kamiyo.daemon.pipeline import build_pipeline
from kamiyo.findings import ACTIVE, RETRACTED
from kamiyo.storage.engine import create_engine
from kamiyo.storage.migrations import upgrade
from kamiyo.storage.schema import code_classes, deployments, findings
from tests.support import npm_artifacts
from tests.support.anvil import anvil_fixture
from tests.support.contracts import creation_code, send, word

pytestmark = pytest.mark.npm

CHAIN_ID = 31337

node = anvil_fixture(CHAIN_ID)


def head(node) -> int:
    return int(node.rpc("eth_blockNumber"), 16)


@pytest.fixture
def factories() -> tuple[str, str]:
    """Creation code of Uniswap V2's factory and of PancakeSwap's fork of it (both take a feeToSetter)."""
    try:
        return creation_code("uniswap-v2-factory"), creation_code("pancake-v2-factory")
    except npm_artifacts.ArtifactUnavailable as exc:
        pytest.skip(str(exc))


@contextlib.asynccontextmanager
async def pipeline(node, tmp_path) -> AsyncIterator[tuple[ChainFollower, AsyncEngine]]:
    """The chain's pipeline in this process, so that each step is one deterministic read of the node."""
    engine = create_engine(StorageSettings(url=f"sqlite:///{tmp_path / 'kamiyo.db'}"))
    try:
        await upgrade(engine)
        async with RpcClient([node.http], requests_per_second=10_000) as client:
            settings = ChainSettings(name="local", chain_id=CHAIN_ID, rpc=[node.http], start_block=0)
            follower = build_pipeline(settings, client, engine, await Linker.load(engine))
            await follower.start()
            try:
                yield follower, engine
            finally:
                await follower.close()
    finally:
        await engine.dispose()


async def settle(follower: ChainFollower) -> None:
    while await follower.step():
        pass


async def stored(engine: AsyncEngine, table, *where) -> list:
    async with engine.connect() as conn:
        return (await conn.execute(select(table).where(*where))).all()


async def test_a_fork_finding_is_retracted_with_its_block_and_reactivated_when_deployed_again(
        node, tmp_path, factories):
    uniswap, pancake = factories
    a, b = (account.lower() for account in node.rpc("eth_accounts")[:2])
    async with pipeline(node, tmp_path) as (follower, engine):
        original = send(node, a, uniswap + word(a))
        node.rpc("anvil_mine", ["0x2"])
        await settle(follower)
        assert await stored(engine, findings) == []  # one origin's code alone is no fork

        # B's copy, one block at the head: each step reads one block, so each commits on its own
        receipt = send(node, b, pancake + word(b))
        copy, copied_at = receipt["contractAddress"].lower(), int(receipt["blockNumber"], 16)
        await settle(follower)
        assert follower.cursor[0] == copied_at == head(node)
        [finding] = await stored(engine, findings)
        assert (finding.kind, finding.status, finding.subject, finding.block_number, finding.tx_hash) == (
            FORK_DETECTED, ACTIVE, copy, copied_at, receipt["transactionHash"])
        assert finding.evidence["origin"] == b and finding.evidence["other_origin"] == a
        assert finding.evidence["original"]["address"] == original["contractAddress"].lower()

        node.rpc("anvil_reorg", [1, []])  # B's block replaced by an empty one
        node.rpc("anvil_mine", ["0x1"])  # the block that shows the follower the new branch
        assert node.rpc("eth_getCode", [copy, "latest"]) == "0x"
        await settle(follower)
        assert follower.cursor[0] == copied_at + 1
        [retracted] = await stored(engine, findings)
        assert (retracted.fingerprint, retracted.status) == (finding.fingerprint, RETRACTED)
        assert await stored(engine, deployments, deployments.c.address == copy) == []
        assert [r.address for r in await stored(engine, deployments)] == [original["contractAddress"].lower()]

        # B again, on the new branch: B's nonce went back with the reorg, so the address is the same
        again = send(node, b, pancake + word(b))
        redeployed_at = int(again["blockNumber"], 16)
        assert again["contractAddress"].lower() == copy and redeployed_at == copied_at + 2
        await settle(follower)
        [active] = await stored(engine, findings)
        assert (active.fingerprint, active.status, active.subject, active.block_number, active.tx_hash) == (
            finding.fingerprint, ACTIVE, copy, redeployed_at, again["transactionHash"])
        [row] = await stored(engine, deployments, deployments.c.address == copy)
        assert (row.block_number, row.origin) == (redeployed_at, b)


def block_time(node, number: int) -> int:
    return int(node.rpc("eth_getBlockByNumber", [hex(number), False])["timestamp"], 16)


# B's block time against the dropped block's: a new branch's blocks may carry earlier times than the blocks it
# replaced (anvil's do: they restart from the common ancestor's time), which is where the copy and the original
# would trade places in the fork rule
@pytest.mark.parametrize("copy_delay", [10, -50], ids=["copy-later", "copy-earlier"])
async def test_code_whose_only_other_origin_was_reorged_away_is_no_fork(node, tmp_path, factories, copy_delay):
    """A's factory is dropped by a reorg before B deploys the fork: nothing of another origin is left in the
    family, so B's deployment is no fork, as a daemon restarted from storage decides."""
    uniswap, pancake = factories
    a, b = (account.lower() for account in node.rpc("eth_accounts")[:2])
    async with pipeline(node, tmp_path) as (follower, engine):
        dropped_time = block_time(node, 0) + 100
        node.rpc("evm_setNextBlockTimestamp", [dropped_time])
        dropped = send(node, a, uniswap + word(a))["contractAddress"].lower()
        await settle(follower)
        node.rpc("anvil_reorg", [1, []])
        node.rpc("anvil_mine", ["0x1"])
        await settle(follower)
        assert await stored(engine, deployments) == []

        assert block_time(node, head(node)) < dropped_time + copy_delay  # a time the node accepts
        node.rpc("evm_setNextBlockTimestamp", [dropped_time + copy_delay])
        copy = send(node, b, pancake + word(b))["contractAddress"].lower()
        await settle(follower)
        [row] = await stored(engine, deployments)
        produced = await stored(engine, findings)
        [original_class] = await stored(engine, code_classes, code_classes.c.first_address == dropped)
        restarted = await Linker.load(engine)  # what a daemon started now would know
        assert (row.address, row.block_timestamp) == (copy, dropped_time + copy_delay)
        # still one family: only the other origin's deployment is gone, not the kinship of the code
        assert restarted.lineage.family(row.skeleton_hash) == restarted.lineage.family(original_class.skeleton_hash)
        assert restarted.lineage.earliest_other(row.skeleton_hash, b) is None
        assert produced == []
