"""An EVM chain as the pipeline sees it: its verified identity, its head, and its blocks fetched in batches.

The chain id is checked against `eth_chainId` before anything else: a misconfigured endpoint (another chain's
node behind the URL) would otherwise store another chain's blocks under this one's name.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from ..config import ChainSettings
from ..errors import KamiyoError
from .blocks import BlockRef
from .mappers import MalformedNodeAnswer, block_ref, quantity
from .rpc import RpcClient

BATCH_SIZE = 50  # blocks per JSON-RPC batch request
IN_FLIGHT = 4  # batches at once per chain, within the endpoints' own budgets


class ChainIdMismatch(KamiyoError):
    """The node behind a configured chain reports another chain id: the chain is refused, loudly."""


class EvmChainSource:
    def __init__(self, settings: ChainSettings, client: RpcClient) -> None:
        self.settings = settings
        self.client = client

    @property
    def chain_id(self) -> int:
        return self.settings.chain_id

    async def verify(self) -> None:
        reported = quantity(await self.client.call("eth_chainId", []), "eth_chainId")
        if reported != self.chain_id:
            raise ChainIdMismatch(
                f"chain {self.settings.name!r} is configured with chain_id {self.chain_id} but its node reports "
                f"{reported}; refusing to follow it",
                chain=self.settings.name, configured=self.chain_id, reported=reported,
            )

    async def head(self) -> int:
        """The number of the newest block to process, `confirmations` behind, or the node's safe/finalized tag."""
        confirmations = self.settings.confirmations
        if isinstance(confirmations, str):
            raw = await self.client.call("eth_getBlockByNumber", [confirmations, False])
            return block_ref(self.chain_id, raw).number
        latest = quantity(await self.client.call("eth_blockNumber", []), "eth_blockNumber")
        return max(0, latest - confirmations)

    async def block(self, number: int) -> BlockRef:
        raw = await self.client.call("eth_getBlockByNumber", [hex(number), False])
        if raw is None:
            raise MalformedNodeAnswer(f"block {number} is not known to the node")
        return block_ref(self.chain_id, raw)

    async def blocks(self, first: int, last: int) -> list[BlockRef]:
        """Blocks first..last inclusive, in order, fetched in batches with a bounded number in flight."""
        if last < first:
            return []
        numbers = list(range(first, last + 1))
        chunks = [numbers[i : i + BATCH_SIZE] for i in range(0, len(numbers), BATCH_SIZE)]
        gate = asyncio.Semaphore(IN_FLIGHT)

        async def fetch(chunk: Sequence[int]) -> list[BlockRef]:
            async with gate:
                answers = await self.client.batch([("eth_getBlockByNumber", [hex(n), False]) for n in chunk])
            refs = []
            for n, raw in zip(chunk, answers):
                if raw is None:
                    raise MalformedNodeAnswer(f"block {n} is not known to the node")
                ref = block_ref(self.chain_id, raw)
                if ref.number != n:
                    raise MalformedNodeAnswer(f"asked for block {n}, the node answered block {ref.number}")
                refs.append(ref)
            return refs

        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(fetch(chunk)) for chunk in chunks]
        return [ref for task in tasks for ref in task.result()]
