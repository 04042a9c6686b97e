"""Deployments found on a real anvil chain: top-level ones, a factory's CREATE2 product, and a reorg taking one back."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from kamiyo.analyzers.bytecode.analysis import analyze_code
from kamiyo.chains.deployments import TRACE_BLOCK, DeploymentFinder
from kamiyo.chains.rpc import RpcClient
from kamiyo.config import ChainSettings, StorageSettings
from kamiyo.daemon.linking import Linker
from kamiyo.daemon.pipeline import build_pipeline
from kamiyo.storage.engine import create_engine
from kamiyo.storage.migrations import upgrade
from kamiyo.storage.schema import deployments
from tests.support import npm_artifacts
from tests.support.anvil import anvil, require_anvil
from tests.support.contracts import CREATE_PAIR, creation_code, send

pytestmark = pytest.mark.npm


@pytest.fixture
def node():
    require_anvil()
    with anvil(31337) as running:
        yield running


async def test_top_level_and_factory_made_contracts_are_stored_with_their_classes(node, tmp_path):
    try:
        factory_code, erc20_code = creation_code("uniswap-v2-factory"), creation_code("uniswap-v2-erc20")
        pair_runtime = npm_artifacts.artifact("uniswap-v2-pair")
    except npm_artifacts.ArtifactUnavailable as exc:
        pytest.skip(str(exc))
    account = node.rpc("eth_accounts")[0]
    factory = send(node, account, factory_code + "00" * 12 + account[2:])["contractAddress"]
    send(node, account, erc20_code)
    pair_block = send(node, account, "0x" + CREATE_PAIR + ("00" * 12 + "11" * 20) + ("00" * 12 + "22" * 20), to=factory)

    engine = create_engine(StorageSettings(url=f"sqlite:///{tmp_path / 'k.db'}"))
    await upgrade(engine)
    async with RpcClient([node.http], requests_per_second=10_000) as client:
        finder = DeploymentFinder(client, 31337)
        assert await finder.probe() == TRACE_BLOCK
        settings = ChainSettings(name="local", chain_id=31337, rpc=[node.http], start_block=0)
        follower = build_pipeline(settings, client, engine, await Linker.load(engine))
        await follower.start()
        while await follower.step():
            pass
        async with engine.connect() as conn:
            rows = {r.address: r for r in await conn.execute(select(deployments))}
        assert len(rows) == 3
        pair = next(r for r in rows.values() if r.internal)
        assert pair.creator == factory.lower() and pair.deployer == account.lower()
        assert pair.skeleton_hash == analyze_code(pair_runtime).skeleton_hash and pair.kind == "contract"
        assert rows[factory.lower()].creator == account.lower() and not rows[factory.lower()].internal

        # the block that made the pair is reorged away (replaced by an empty one): its deployment goes with it
        node.rpc("anvil_reorg", [1, []])
        node.rpc("anvil_mine", ["0x1"])
        while await follower.step():
            pass
        async with engine.connect() as conn:
            remaining = {r.address for r in await conn.execute(select(deployments))}
    await engine.dispose()
    assert int(pair_block["blockNumber"], 16) == 3
    assert pair.address not in remaining and factory.lower() in remaining
