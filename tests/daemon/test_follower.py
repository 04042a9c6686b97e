"""Following a real anvil chain: catch-up with a checkpoint per block, resume after restart, reorg roll-back, and
the head, checkpoint and lag gauges as they move (read from the process registry, under a chain name per test)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import BigInteger, Column, MetaData, String, Table, and_, delete, select

from kamiyo import metrics
from kamiyo.chains.rpc import RpcClient
from kamiyo.chains.source import EvmChainSource
from kamiyo.config import ChainSettings, StorageSettings
from kamiyo.daemon.follower import ChainFollower, ReorgTooDeep
from kamiyo.metrics import REGISTRY
from kamiyo.storage.checkpoints import load_checkpoint
from kamiyo.storage.engine import create_engine
from kamiyo.storage.migrations import upgrade
from tests.support.anvil import anvil, require_anvil

# What blocks "produced", as a pipeline stage would write it: one row per processed block, by hash.
produced_meta = MetaData()
produced = Table("produced", produced_meta, Column("chain_id", BigInteger, primary_key=True),
                 Column("number", BigInteger, primary_key=True), Column("hash", String(66), nullable=False))


async def record(block):
    async def write(conn):
        await conn.execute(produced.insert().values(chain_id=block.chain_id, number=block.number, hash=block.hash))

    return write


async def retract(conn, chain_id, first_dropped):
    await conn.execute(delete(produced).where(and_(produced.c.chain_id == chain_id, produced.c.number >= first_dropped)))


@pytest.fixture
def node():
    require_anvil()
    with anvil(31337) as running:
        yield running


@pytest.fixture
async def engine(tmp_path):
    engine = create_engine(StorageSettings(url=f"sqlite:///{tmp_path / 'k.db'}"))
    await upgrade(engine)
    async with engine.begin() as conn:
        await conn.run_sync(produced_meta.create_all)
    yield engine
    await engine.dispose()


def follower(node, engine, client, name="local", work=record, **overrides) -> ChainFollower:
    settings = ChainSettings(name=name, chain_id=31337, rpc=[node.http], start_block=0, **overrides)
    return ChainFollower(EvmChainSource(settings, client), engine, work=work, on_rollback=retract)


def gauges(chain: str) -> tuple[float | None, float | None, float | None]:
    """(head, checkpoint, lag) as /metrics shows them."""
    return tuple(REGISTRY.get_sample_value(name, {"chain": chain}) for name in (
        "kamiyo_chain_head", "kamiyo_checkpoint_block", "kamiyo_checkpoint_lag_blocks"))


def watching(chain: str, seen: dict[int, list[tuple]]):
    """A stage that records the gauges each time it is given a block (before that block is committed)."""

    async def work(block):
        seen.setdefault(block.number, []).append(gauges(chain))
        return await record(block)

    return work


async def run_to_head(f: ChainFollower) -> None:
    while await f.step():
        pass


async def stored(engine) -> dict[int, str]:
    async with engine.connect() as conn:
        return {r.number: r.hash for r in await conn.execute(select(produced.c.number, produced.c.hash))}


def canonical(node, numbers) -> dict[int, str]:
    return {n: node.rpc("eth_getBlockByNumber", [hex(n), False])["hash"] for n in numbers}


async def test_catch_up_restart_and_no_block_twice(node, engine):
    node.rpc("anvil_mine", [hex(700)])
    async with RpcClient([node.http], requests_per_second=10_000) as client:
        first = follower(node, engine, client)
        await first.start()
        await run_to_head(first)
        assert await stored(engine) == canonical(node, range(701))
        node.rpc("anvil_mine", [hex(25)])
        again = follower(node, engine, client)  # a restart: a new follower on the same database
        await again.start()
        assert again.cursor[0] == 700
        await run_to_head(again)
    assert await stored(engine) == canonical(node, range(726))  # every block once (primary key), none skipped
    assert (await load_checkpoint(engine, 31337))[0] == 725


async def test_a_reorg_is_rolled_back_and_the_new_branch_processed(node, engine):
    node.rpc("anvil_mine", [hex(30)])
    chain, seen = f"reorg-{uuid.uuid4().hex[:8]}", {}
    async with RpcClient([node.http], requests_per_second=10_000) as client:
        f = follower(node, engine, client, name=chain, work=watching(chain, seen))
        await f.start()
        await run_to_head(f)
        old = await stored(engine)
        node.rpc("anvil_reorg", [6, []])  # blocks 25..30 replaced
        node.rpc("anvil_mine", ["0x2"])
        await run_to_head(f)
    now = await stored(engine)
    assert now == canonical(node, range(33))
    assert all(now[n] != old[n] for n in range(25, 31)) and all(now[n] == old[n] for n in range(25))
    # the new branch's first block is processed with the checkpoint rolled back to the ancestor, 24
    assert seen[25][-1] == (32, 24, 8) and gauges(chain) == (32, 32, 0)


async def test_the_lag_is_the_head_minus_the_checkpoint_wherever_either_moves(node, engine):
    node.rpc("anvil_mine", [hex(700)])
    chain, seen = f"lag-{uuid.uuid4().hex[:8]}", {}
    async with RpcClient([node.http], requests_per_second=10_000) as client:
        f = follower(node, engine, client, name=chain, work=watching(chain, seen))
        await f.start()
        assert gauges(chain) == (None, None, None)  # nothing committed, the head not asked yet
        assert await f.step() == 500  # STEP_BLOCKS, committed GROUP_BLOCKS (50) at a time
        # before anything is committed all 701 blocks (0..700) are to do; then the lag falls group by group
        assert (seen[0][0], seen[50][0], seen[499][0]) == ((700, None, 701), (700, 49, 651), (700, 449, 251))
        assert gauges(chain) == (700, 499, 201)
        await run_to_head(f)
        assert gauges(chain) == (700, 700, 0)

        node.rpc("anvil_mine", [hex(10)])
        for gauge in (metrics.CHAIN_HEAD, metrics.CHECKPOINT, metrics.CHECKPOINT_LAG):
            gauge.remove(chain)  # a restart: the new process has none of this chain's series
        again = follower(node, engine, client, name=chain, work=watching(chain, seen))
        await again.start()
        assert gauges(chain) == (None, 700, None)  # the stored checkpoint, shown before the head is asked
        await run_to_head(again)
    assert seen[701] == [(710, 700, 10)]  # the head asked, nothing committed yet
    assert gauges(chain) == (710, 710, 0)


async def test_a_reorg_deeper_than_allowed_stops_the_chain(node, engine):
    node.rpc("anvil_mine", [hex(20)])
    async with RpcClient([node.http], requests_per_second=10_000) as client:
        f = follower(node, engine, client, max_reorg_depth=3)
        await f.start()
        await run_to_head(f)
        node.rpc("anvil_reorg", [8, []])
        node.rpc("anvil_mine", ["0x1"])
        with pytest.raises(ReorgTooDeep):
            await run_to_head(f)
    assert (await load_checkpoint(engine, 31337))[0] == 20  # nothing rolled back on a guess
