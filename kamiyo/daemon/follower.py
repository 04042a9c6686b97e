"""Following one chain: catch up from the checkpoint to the confirmed head, block by block, never skipping one.

Each block is committed with what it produced and the checkpoint in one transaction (`commit_blocks`), so a crash
at any moment resumes at checkpoint + 1. Parent-hash continuity is checked on every block; a mismatch walks back
through the stored recent blocks to the common ancestor, rolls storage back to it (`on_rollback` retracts what
the dropped blocks produced) and reprocesses the new branch. A reorg deeper than `max_reorg_depth` stops the
chain with an error: never silently.

The head, checkpoint and lag gauges are set here, wherever the head is asked or the checkpoint moves (a commit, a
roll-back, a resume), so the lag always reads as the two gauges beside it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy import and_, delete
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .. import log, metrics
from ..chains.blocks import BlockRef
from ..chains.source import EvmChainSource
from ..errors import KamiyoError
from ..storage.checkpoints import commit_blocks, load_checkpoint, recent_block
from ..storage.schema import blocks, checkpoints
from ..storage.upsert import upsert

# A stage looks at a block outside any transaction (RPC calls, analysis) and returns what to write inside the
# block's transaction, or None: the database lock is never held while waiting on the network.
Write = Callable[[AsyncConnection], Awaitable[None]]
BlockWork = Callable[[BlockRef], Awaitable[Write | None]]
Rollback = Callable[[AsyncConnection, int, int], Awaitable[None]]  # (conn, chain_id, first dropped block number)
STEP_BLOCKS = 500  # blocks fetched per catch-up step
GROUP_BLOCKS = 50  # blocks per transaction while catching up (at the head, each block is its own)


class ReorgTooDeep(KamiyoError):
    """The node's chain and ours differ deeper than max_reorg_depth: refuse to guess, stop this chain."""


class ChainFollower:
    def __init__(self, source: EvmChainSource, engine: AsyncEngine, work: BlockWork | None = None,
                 on_rollback: Rollback | None = None, after_commit: Callable[[BlockRef], None] | None = None) -> None:
        self.source = source
        self.engine = engine
        self.work = work
        self.on_rollback = on_rollback
        self.after_commit = after_commit  # told once a block is durable: only then is what it produced news
        self.cursor: tuple[int, str] | None = None  # (number, hash) of the last committed block
        self.head: int | None = None  # the newest block it may process, as last asked
        # The last block committed, for the gauges. `cursor` runs ahead of it inside a step (a group not yet
        # committed); the anchor before start_block counts as committed, -1 means processing starts at block 0.
        self.committed = -1
        self.log = log.get("kamiyo.follower").bind(chain=source.settings.name)

    async def start(self) -> None:
        await self.source.verify()
        self.cursor = resumed = await load_checkpoint(self.engine, self.source.chain_id)
        if self.cursor is None:
            start = self.source.settings.start_block
            first = await self.source.head() if start == "latest" else start
            if first > 0:  # begin at `first`: the block before it is the anchor, not processed
                anchor = await self.source.block(first - 1)
                self.cursor = (anchor.number, anchor.hash)
        self.committed = self.cursor[0] if self.cursor else -1
        if resumed is not None:  # shown before the first step; the anchor is no checkpoint and is not shown
            metrics.CHECKPOINT.labels(self.source.settings.name).set(resumed[0])
        self.log.info("follower.started", checkpoint=self.cursor[0] if self.cursor else None)

    async def step(self) -> int:
        """Process what is confirmed beyond the cursor (up to STEP_BLOCKS); returns the number of blocks committed.

        Behind the head, consecutive blocks are committed GROUP_BLOCKS to a transaction (the checkpoint at the
        group's last block, so a crash still resumes right after what is stored); at the head each block is its
        own. A reorg met on the way is rolled back and the new branch processed within the same step."""
        head = self.head = await self.source.head()
        metrics.CHAIN_HEAD.labels(self.source.settings.name).set(head)
        self._show_lag()
        committed = 0
        while (next_number := self.cursor[0] + 1 if self.cursor else 0) <= head and committed < STEP_BLOCKS:
            last = min(head, next_number + STEP_BLOCKS - committed - 1)
            fetched = await self.source.blocks(next_number, last)
            if hasattr(self.work, "ahead"):
                self.work.ahead(fetched)
            group: list[tuple[BlockRef, Write | None]] = []
            for block in fetched:
                if self.cursor is not None and block.parent_hash != self.cursor[1]:
                    committed += await self._commit(group)
                    if not await self._rewind(block):
                        return committed  # the node changed under us mid-read: try again next step
                    break  # fetch again from the common ancestor, on the new branch
                group.append((block, await self.work(block) if self.work is not None else None))
                self.cursor = (block.number, block.hash)
                if len(group) >= GROUP_BLOCKS:
                    committed += await self._commit(group)
                    group = []
            else:
                committed += await self._commit(group)
        return committed

    async def _commit(self, group: list[tuple[BlockRef, Write | None]]) -> int:
        await commit_blocks(self.engine, group, keep=self.source.settings.max_reorg_depth)
        if group:
            self._checkpoint_moved(group[-1][0].number)
            metrics.BLOCKS.labels(self.source.settings.name).inc(len(group))
        if self.after_commit is not None:
            for block, _write in group:
                self.after_commit(block)
        return len(group)

    def _checkpoint_moved(self, number: int) -> None:
        self.committed = number
        metrics.CHECKPOINT.labels(self.source.settings.name).set(number)
        self._show_lag()

    def _show_lag(self) -> None:
        if self.head is None:
            return  # not asked yet: no lag rather than a made-up one
        # A node behind our checkpoint (another endpoint, a shorter branch) leaves nothing to do: 0, not negative;
        # the head and checkpoint gauges still show both numbers.
        metrics.CHECKPOINT_LAG.labels(self.source.settings.name).set(max(0, self.head - self.committed))

    async def close(self) -> None:
        if (close := getattr(self.work, "close", None)) is not None:
            await close()

    async def _rewind(self, first_mismatch: BlockRef) -> int:
        """Roll back to the common ancestor; returns how many of our blocks were dropped."""
        depth_limit = self.source.settings.max_reorg_depth
        number = self.cursor[0]
        while True:
            if self.cursor[0] - number >= depth_limit:
                raise ReorgTooDeep(
                    f"chain {self.source.settings.name!r}: no common ancestor within {depth_limit} blocks of "
                    f"{self.cursor[0]}; stopping this chain",
                    chain=self.source.settings.name, at=self.cursor[0],
                )
            ours = await recent_block(self.engine, self.source.chain_id, number)
            if ours is None:
                raise ReorgTooDeep(f"chain {self.source.settings.name!r}: block {number} is not stored, cannot "
                                   "find the common ancestor", chain=self.source.settings.name, at=number)
            if (await self.source.block(number)).hash == ours.hash:
                break  # `number` is the common ancestor
            number -= 1
        dropped = self.cursor[0] - ours.number
        if dropped:
            await self._roll_back_to(ours)
            self._checkpoint_moved(ours.number)
            metrics.REORGS.labels(self.source.settings.name).inc()
            self.log.warning("reorg.rolled_back", ancestor=ours.number, dropped=dropped, seen_at=first_mismatch.number)
            self.cursor = (ours.number, ours.hash)
        return dropped

    async def _roll_back_to(self, ancestor: BlockRef) -> None:
        chain_id = ancestor.chain_id
        async with self.engine.begin() as conn:
            if self.on_rollback is not None:
                await self.on_rollback(conn, chain_id, ancestor.number + 1)
            await conn.execute(delete(blocks).where(and_(blocks.c.chain_id == chain_id,
                                                         blocks.c.number > ancestor.number)))
            await upsert(conn, checkpoints, {"chain_id": chain_id, "number": ancestor.number, "hash": ancestor.hash},
                         keys=("chain_id",))
