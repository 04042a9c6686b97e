"""`kamiyo backfill`: run a range of past blocks through a chain's deployment stage, without moving its checkpoint.

The range is outside what the follower manages (usually before the checkpoint, or before the daemon ever ran),
so each block is written in its own transaction with nothing else: a backfill interrupted half-way keeps what it
finished and can simply be run again (every write is an upsert on a natural key). Only confirmed blocks are
accepted, because no reorg can retract what a backfill stored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from ..chains.deployments import DeploymentFinder
from ..chains.rpc import RpcClient
from ..chains.source import EvmChainSource
from ..config import ChainSettings
from ..errors import InputError
from .deployments import DeploymentStage
from .linking import Linker

CHUNK = 200  # blocks fetched per batch


@dataclass(slots=True)
class BackfillResult:
    blocks: int = 0
    deployments: int = 0
    findings: int = 0


async def backfill(chain: ChainSettings, engine: AsyncEngine, linker: Linker, first: int, last: int,
                   progress: Callable[[int], None] = lambda n: None) -> BackfillResult:
    if first < 0 or last < first:
        raise InputError(f"--from {first} --to {last}: not a range of block numbers")
    result = BackfillResult()
    async with RpcClient(chain.rpc, requests_per_second=chain.requests_per_second) as client:
        source = EvmChainSource(chain, client)
        await source.verify()
        confirmed = await source.head()
        if last > confirmed:
            raise InputError(f"--to {last} is beyond the confirmed head {confirmed} of chain {chain.name!r}; "
                             "the daemon follows the head itself")
        stage = DeploymentStage(DeploymentFinder(client, chain.chain_id, chain.name, chain.traces), linker, engine)
        for start in range(first, last + 1, CHUNK):
            for block in await source.blocks(start, min(last, start + CHUNK - 1)):
                write = await stage(block)
                if write is not None:
                    async with engine.begin() as conn:
                        await write(conn)
                output = stage.committed(block)
                if output is not None:
                    result.deployments += output.deployments
                    result.findings += len(output.created)
                result.blocks += 1
                progress(1)
    return result
