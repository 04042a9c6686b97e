"""The cursor of each chain: where processing resumes, and the recent blocks a reorg walks back through.

`commit_block` is the one way a pipeline finishes a block: what the block produced, its row in `blocks` and the
checkpoint are written in one transaction, so after a crash (kill -9 included) the chain resumes at checkpoint + 1
with nothing lost and nothing twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy import and_, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..chains.blocks import BlockRef
from .schema import blocks, checkpoints
from .upsert import upsert

Work = Callable[[AsyncConnection], Awaitable[None]]


async def load_checkpoint(engine: AsyncEngine, chain_id: int) -> tuple[int, str] | None:
    async with engine.connect() as conn:
        row = (await conn.execute(
            select(checkpoints.c.number, checkpoints.c.hash).where(checkpoints.c.chain_id == chain_id)
        )).first()
    return (row.number, row.hash) if row else None


async def recent_block(engine: AsyncEngine, chain_id: int, number: int) -> BlockRef | None:
    async with engine.connect() as conn:
        row = (await conn.execute(
            select(blocks).where(and_(blocks.c.chain_id == chain_id, blocks.c.number == number))
        )).first()
    return BlockRef(chain_id, row.number, row.hash, row.parent_hash, row.timestamp) if row else None


async def commit_block(engine: AsyncEngine, block: BlockRef, work: Work | None = None, keep: int = 64) -> None:
    """Run `work` (what the block produced) and advance the checkpoint to `block`, atomically."""
    await commit_blocks(engine, [(block, work)], keep)


async def commit_blocks(engine: AsyncEngine, items: list[tuple[BlockRef, Work | None]], keep: int = 64) -> None:
    """Several consecutive blocks of one chain, their work and the checkpoint at the last, in one transaction:
    catch-up commits a group at a time, and a crash still leaves the checkpoint where the stored work ends."""
    if not items:
        return
    last = items[-1][0]
    async with engine.begin() as conn:
        for _block, work in items:
            if work is not None:
                await work(conn)
        await upsert(conn, blocks, [
            {"chain_id": b.chain_id, "number": b.number, "hash": b.hash, "parent_hash": b.parent_hash,
             "timestamp": b.timestamp} for b, _work in items
        ], keys=("chain_id", "number"))
        await conn.execute(delete(blocks).where(and_(blocks.c.chain_id == last.chain_id,
                                                     blocks.c.number <= last.number - keep)))
        await upsert(conn, checkpoints, {"chain_id": last.chain_id, "number": last.number, "hash": last.hash},
                     keys=("chain_id",))
