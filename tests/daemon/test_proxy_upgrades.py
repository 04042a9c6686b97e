"""Proxies on a real anvil chain: OpenZeppelin's TransparentUpgradeableProxy, whose code does not name its
implementation, so the pipeline reads it from the EIP-1967 slot; `upgradeTo` moves it, a reorg moves it back,
and `kamiyo forks` counts the proxy in the family of whatever it runs at the moment. `Upgraded` events from
anything that is not a proxy we know are not upgrades."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from kamiyo import cli
from kamiyo.analyzers.bytecode.analysis import identify
from kamiyo.analyzers.bytecode.classify import PROXY_SLOTS
from kamiyo.chains.proxies import UPGRADED
from kamiyo.chains.rpc import RpcClient
from kamiyo.config import ChainSettings, StorageSettings
from kamiyo.daemon.follower import ChainFollower
from kamiyo.daemon.linking import Linker
from kamiyo.daemon.pipeline import build_pipeline
from kamiyo.storage.engine import create_engine
from kamiyo.storage.migrations import upgrade
from kamiyo.storage.schema import deployments, proxy_upgrades
from tests.support import npm_artifacts
from tests.support.anvil import AnvilNode, anvil_fixture
from tests.support.contracts import creation_code, deploy, runtime_deployer, send, word

pytestmark = pytest.mark.npm

CHAIN, CHAIN_ID = "local", 31337
UPGRADE_TO = "3659cfe6"  # upgradeTo(address)
OZ = "@openzeppelin/contracts"

node = anvil_fixture(CHAIN_ID)


@pytest.fixture
def codes() -> dict[str, str]:
    """Creation code: two implementations from different families (a V2 pair and a V2 factory, whose families the
    cross-chain test tells apart), an ERC-20 as a third, and OpenZeppelin 3.4.2's transparent proxy."""
    try:
        oz = npm_artifacts.npm_pack(f"{OZ}@{npm_artifacts.PINNED[OZ]}")
        proxy = json.loads((oz / "build" / "contracts" / "TransparentUpgradeableProxy.json").read_text())
        return {"pair": creation_code("uniswap-v2-pair"), "factory": creation_code("uniswap-v2-factory"),
                "erc20": creation_code("uniswap-v2-erc20"), "proxy": proxy["bytecode"].removeprefix("0x")}
    except npm_artifacts.ArtifactUnavailable as exc:
        pytest.skip(str(exc))


def proxy_args(logic: str, admin: str) -> str:
    """ABI encoding of (address _logic, address admin_, bytes _data) with empty data: two address words, the
    offset of the bytes tail (3 words in), and its zero length."""
    return word(logic) + word(admin) + f"{0x60:064x}" + "00" * 32


def upgrade_to(node: AnvilNode, admin: str, proxy: str, implementation: str) -> int:
    """The admin upgrades the proxy; returns the block the `Upgraded` event is in."""
    receipt = send(node, admin, UPGRADE_TO + word(implementation), to=proxy)
    assert [log["topics"][0] for log in receipt["logs"]] == [UPGRADED]
    return int(receipt["blockNumber"], 16)


def slot_implementation(node: AnvilNode, proxy: str) -> str:
    """What the node itself holds in the proxy's EIP-1967 slot, to check a reorg really undid an upgrade."""
    stored = node.rpc("eth_getStorageAt", [proxy, "0x" + PROXY_SLOTS["eip1967"].hex(), "latest"])
    return "0x" + stored[-40:]


def emitter_runtime(target: str) -> str:
    """Code that is no proxy (no DELEGATECALL) and emits `Upgraded(target)` on any call: PUSH32 target,
    PUSH32 topic, PUSH1 0, PUSH1 0, LOG2, STOP."""
    return "7f" + word(target) + "7f" + UPGRADED.removeprefix("0x") + "6000" "6000" "a2" "00"


def reorg_last_block(node: AnvilNode) -> None:
    """Replace the head block with an empty one, then mine on: the follower sees the new branch when a block
    beyond its cursor arrives."""
    node.rpc("anvil_reorg", [1, []])
    node.rpc("anvil_mine", ["0x1"])


@dataclass
class Running:
    follower: ChainFollower
    engine: AsyncEngine
    config: Path

    async def settle(self) -> None:
        while await self.follower.step():
            pass

    async def deployment(self, address: str):
        async with self.engine.connect() as conn:
            return (await conn.execute(select(deployments).where(deployments.c.address == address))).first()

    async def upgrades(self) -> list[tuple]:
        async with self.engine.connect() as conn:
            return [tuple(r) for r in await conn.execute(
                select(proxy_upgrades.c.address, proxy_upgrades.c.block_number, proxy_upgrades.c.implementation,
                       proxy_upgrades.c.previous)
                .order_by(proxy_upgrades.c.block_number, proxy_upgrades.c.log_index))]


@contextlib.asynccontextmanager
async def pipeline(node: AnvilNode, folder: Path, start_block: int = 0) -> AsyncIterator[Running]:
    db = folder / "kamiyo.db"
    config = folder / "kamiyo.toml"
    config.write_text(f'[storage]\nurl = "sqlite:///{db}"\n\n[[chains]]\nname = "{CHAIN}"\nchain_id = {CHAIN_ID}\n'
                      f'rpc = ["{node.http}"]\nstart_block = {start_block}\n')
    engine = create_engine(StorageSettings(url=f"sqlite:///{db}"))
    try:
        await upgrade(engine)
        async with RpcClient([node.http], requests_per_second=10_000) as client:
            settings = ChainSettings(name=CHAIN, chain_id=CHAIN_ID, rpc=[node.http], start_block=start_block)
            follower = build_pipeline(settings, client, engine, await Linker.load(engine))
            await follower.start()
            try:
                yield Running(follower, engine, config)
            finally:
                await follower.close()
    finally:
        await engine.dispose()


async def forks(capsys, running: Running, address: str) -> dict:
    """`kamiyo forks local:ADDRESS --config …` as a user runs it. `cli.main` runs its own event loop, so it is
    called from a worker thread; the pipeline is idle meanwhile."""
    capsys.readouterr()  # drop what the pipeline logged so far
    rc = await asyncio.to_thread(cli.main, ["forks", f"{CHAIN}:{address}", "--config", str(running.config)])
    out, err = capsys.readouterr()
    assert rc == 0, err
    return json.loads(out)


async def test_proxy_runs_its_slot_implementation_through_an_upgrade_and_its_reorg(node, codes, tmp_path, capsys):
    deployer, admin = (a.lower() for a in node.rpc("eth_accounts")[:2])
    impl1 = deploy(node, deployer, codes["pair"])
    impl2 = deploy(node, deployer, codes["factory"], word(deployer))
    proxy = deploy(node, deployer, codes["proxy"], proxy_args(impl1, admin))
    runtime = bytes.fromhex(node.rpc("eth_getCode", [proxy, "latest"])[2:])
    classification = identify(runtime).classification
    # the premise: the code names no implementation, so only the EIP-1967 slot can tell it
    assert (classification.kind, classification.implementation, classification.standard) == ("proxy", None, "eip1967")

    async with pipeline(node, tmp_path) as running:
        await running.settle()
        row = await running.deployment(proxy)
        assert (row.kind, row.implementation) == ("proxy", impl1)
        assert await running.upgrades() == []  # OZ 3.4's constructor sets the slot without an Upgraded event

        family1 = (await forks(capsys, running, impl1))["subject"]["family"]
        family2 = (await forks(capsys, running, impl2))["subject"]["family"]
        assert family1 != family2  # otherwise following the upgrade below would prove nothing
        before = await forks(capsys, running, proxy)
        assert before["subject"]["kind"] == "proxy" and before["subject"]["family"] == family1
        assert {r["address"]: r["relation"] for r in before["related"]} == {impl1: "identical"}
        from_impl1 = await forks(capsys, running, impl1)
        assert {r["address"]: r["relation"] for r in from_impl1["related"]} == {proxy: "proxy"}

        upgraded_at = upgrade_to(node, admin, proxy, impl2)
        await running.settle()
        assert (await running.deployment(proxy)).implementation == impl2
        assert await running.upgrades() == [(proxy, upgraded_at, impl2, impl1)]
        after = await forks(capsys, running, proxy)
        assert after["subject"]["family"] == family2
        assert {r["address"]: r["relation"] for r in after["related"]} == {impl2: "identical"}
        assert (await forks(capsys, running, impl1))["related"] == []  # the proxy no longer runs impl1

        reorg_last_block(node)
        assert slot_implementation(node, proxy) == impl1  # the node's new branch has no upgrade
        await running.settle()
        row = await running.deployment(proxy)
        assert (row.kind, row.implementation, row.block_number) == ("proxy", impl1, upgraded_at - 1)
        assert await running.upgrades() == []
        assert running.follower.cursor[0] == upgraded_at + 1
        assert (await forks(capsys, running, proxy))["subject"]["family"] == family1


async def test_consecutive_upgrades_in_one_group_chain_their_previous_implementations(node, codes, tmp_path):
    """Two upgrades committed in one transaction (blocks read in one step): the second replaced the first's
    implementation, so a reorg of the second alone must leave the first in place."""
    deployer, admin = (a.lower() for a in node.rpc("eth_accounts")[:2])
    impl1 = deploy(node, deployer, codes["pair"])
    impl2 = deploy(node, deployer, codes["factory"], word(deployer))
    impl3 = deploy(node, deployer, codes["erc20"])
    proxy = deploy(node, deployer, codes["proxy"], proxy_args(impl1, admin))
    async with pipeline(node, tmp_path) as running:
        await running.settle()
        first = upgrade_to(node, admin, proxy, impl2)
        second = upgrade_to(node, admin, proxy, impl3)
        assert await running.follower.step() == 2  # both blocks in one step, hence one group
        assert (await running.deployment(proxy)).implementation == impl3
        stored = await running.upgrades()
        assert stored[0] == (proxy, first, impl2, impl1)
        assert stored[1] == (proxy, second, impl3, impl2)
        reorg_last_block(node)
        await running.settle()
        assert (await running.deployment(proxy)).implementation == impl2
        assert await running.upgrades() == [(proxy, first, impl2, impl1)]


async def test_upgrades_of_proxies_stored_from_before_start_are_ignored_known_ones_recorded(node, codes, tmp_path):
    """A proxy deployed before start_block is no deployment of ours: its Upgraded event is not recorded, while
    the same event from a proxy deployed after start is."""
    deployer, admin = (a.lower() for a in node.rpc("eth_accounts")[:2])
    impl1 = deploy(node, deployer, codes["pair"])
    impl2 = deploy(node, deployer, codes["factory"], word(deployer))
    older = deploy(node, deployer, codes["proxy"], proxy_args(impl1, admin))
    start = int(node.rpc("eth_blockNumber"), 16) + 1
    async with pipeline(node, tmp_path, start_block=start) as running:
        newer = deploy(node, deployer, codes["proxy"], proxy_args(impl1, admin))
        await running.settle()
        ignored_at = upgrade_to(node, admin, older, impl2)
        recorded_at = upgrade_to(node, admin, newer, impl2)
        await running.settle()
        assert running.follower.cursor[0] == recorded_at and ignored_at < recorded_at
        assert await running.deployment(older) is None
        assert await running.upgrades() == [(newer, recorded_at, impl2, impl1)]


async def test_upgraded_event_of_a_stored_contract_that_is_no_proxy_is_ignored(node, codes, tmp_path):
    deployer = node.rpc("eth_accounts")[0].lower()
    impl = deploy(node, deployer, codes["pair"])
    emitter = deploy(node, deployer, runtime_deployer(emitter_runtime(impl)))
    async with pipeline(node, tmp_path) as running:
        await running.settle()
        assert (await running.deployment(emitter)).kind == "contract"
        receipt = send(node, deployer, "0x", to=emitter)
        emitted = [(log["address"], log["topics"]) for log in receipt["logs"]]
        assert emitted == [(emitter, [UPGRADED, "0x" + word(impl)])]  # the event, exactly as a proxy emits it
        await running.settle()
        assert running.follower.cursor[0] == int(receipt["blockNumber"], 16)
        assert await running.upgrades() == []
        assert (await running.deployment(emitter)).implementation is None


async def test_upgraded_event_from_the_constructor_of_a_contract_that_is_no_proxy_is_ignored(node, codes, tmp_path):
    """The same event emitted while the contract is created, so it meets the deployment in the same block."""
    deployer = node.rpc("eth_accounts")[0].lower()
    impl = deploy(node, deployer, codes["pair"])
    runtime = emitter_runtime(impl)
    announce = runtime[:-2]  # the constructor emits the event, without the STOP
    prefix = len(announce) // 2 + 12  # the CODECOPY prelude below is 12 bytes
    creation = announce + f"61{len(runtime) // 2:04x}8060{prefix:02x}6000396000f3" + runtime
    async with pipeline(node, tmp_path) as running:
        receipt = send(node, deployer, creation)
        emitter = receipt["contractAddress"].lower()
        assert [log["topics"][0] for log in receipt["logs"]] == [UPGRADED]
        assert node.rpc("eth_getCode", [emitter, "latest"]) == "0x" + runtime
        await running.settle()
        row = await running.deployment(emitter)
        assert row.kind == "contract"
        assert row.implementation is None
