"""Deployments found on a real anvil chain: top-level ones, a factory's CREATE2 product, and a reorg taking one back."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from kamiyo.analyzers.bytecode.analysis import analyze_code
from kamiyo.chains.deployments import TRACE_BLOCK, DeploymentFinder
from kamiyo.chains.rpc import RpcClient
from kamiyo.chains.source import EvmChainSource
from kamiyo.config import ChainSettings, StorageSettings
from kamiyo.daemon.deployments import DeploymentStage
from kamiyo.daemon.follower import ChainFollower
from kamiyo.storage.engine import create_engine
from kamiyo.storage.migrations import upgrade
from kamiyo.storage.schema import deployments
from tests.support import npm_artifacts
from tests.support.anvil import anvil, require_anvil

pytestmark = pytest.mark.npm
CREATE_PAIR = "c9c65396"  # createPair(address,address)


def creation_code(name: str) -> str:
    import json

    data = json.loads(npm_artifacts.artifact_path(name).read_text())
    code = data.get("bytecode") or data["evm"]["bytecode"]["object"]
    return code["object"] if isinstance(code, dict) else code


@pytest.fixture
def node():
    require_anvil()
    with anvil(31337) as running:
        yield running


def send(node, sender, data, to=None):
    """Send and wait for the receipt (anvil mines at once, but the receipt can lag the send by a moment)."""
    import time

    tx = {"from": sender, "data": data, "gas": hex(8_000_000), **({"to": to} if to else {})}
    tx_hash = node.rpc("eth_sendTransaction", [tx])
    deadline = time.monotonic() + 10
    while (receipt := node.rpc("eth_getTransactionReceipt", [tx_hash])) is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert receipt is not None and receipt["status"] == "0x1"
    return receipt


async def test_top_level_and_factory_made_contracts_are_stored_with_their_classes(node, tmp_path):
    try:
        factory_code, erc20_code = creation_code("uniswap-v2-factory"), creation_code("uniswap-v2-erc20")
        pair_runtime = npm_artifacts.artifact("uniswap-v2-pair")
    except npm_artifacts.ArtifactUnavailable as exc:
        pytest.skip(str(exc))
    account = node.rpc("eth_accounts")[0]
    factory = send(node, account, "0x" + factory_code.removeprefix("0x") + "00" * 12 + account[2:])["contractAddress"]
    send(node, account, "0x" + erc20_code.removeprefix("0x"))
    pair_block = send(node, account, "0x" + CREATE_PAIR + ("00" * 12 + "11" * 20) + ("00" * 12 + "22" * 20), to=factory)

    engine = create_engine(StorageSettings(url=f"sqlite:///{tmp_path / 'k.db'}"))
    await upgrade(engine)
    async with RpcClient([node.http], requests_per_second=10_000) as client:
        finder = DeploymentFinder(client, 31337)
        assert await finder.probe() == TRACE_BLOCK
        stage = DeploymentStage(finder)
        settings = ChainSettings(name="local", chain_id=31337, rpc=[node.http], start_block=0)
        follower = ChainFollower(EvmChainSource(settings, client), engine, work=stage, on_rollback=stage.rollback)
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
