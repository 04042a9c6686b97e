"""The deployment stage of a chain's pipeline: find a block's new contracts, fetch and analyse their code, and
hand the follower the rows to write in the block's transaction. A rolled-back block takes its rows with it."""

from __future__ import annotations

from sqlalchemy import and_, delete
from sqlalchemy.ext.asyncio import AsyncConnection
from eth_hash.auto import keccak

from ..analyzers.bytecode.analysis import analyze_code
from ..chains.blocks import BlockRef
from ..chains.deployments import DeploymentFinder, NewContract
from ..storage.schema import deployments
from ..storage.upsert import upsert
from .follower import Write


def deployment_row(contract: NewContract, code: bytes) -> dict:
    analysis = analyze_code(code)
    return {
        "chain_id": contract.chain_id, "address": contract.address, "block_number": contract.block,
        "tx_hash": contract.tx_hash, "creator": contract.creator, "deployer": contract.deployer,
        "internal": contract.internal, "code_hash": "0x" + keccak(code).hex(), "size": len(code),
        "kind": analysis.kind, "implementation": analysis.implementation, "skeleton_hash": analysis.skeleton_hash,
    }


class DeploymentStage:
    def __init__(self, finder: DeploymentFinder) -> None:
        self.finder = finder

    async def __call__(self, block: BlockRef) -> Write | None:
        found = await self.finder.find(block.number)
        if not found:
            return None
        rows = [deployment_row(c, code) for c, code in zip(found, await self.finder.code(found))]

        async def write(conn: AsyncConnection) -> None:
            for row in rows:  # upserts on (chain, address): replaying a block is harmless
                await conn.execute(upsert(conn, deployments, row, keys=("chain_id", "address")))

        return write

    @staticmethod
    async def rollback(conn: AsyncConnection, chain_id: int, first_dropped: int) -> None:
        await conn.execute(delete(deployments).where(
            and_(deployments.c.chain_id == chain_id, deployments.c.block_number >= first_dropped)
        ))
