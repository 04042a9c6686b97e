"""The analysis stage of a chain's pipeline: a block's activity handed to the enabled transaction analyzers.

This first path serves the analyzers that read logs of watched contracts: one `eth_getLogs` filtered to the
chain's watched addresses, and the transactions that emitted them (for sender and target), so a chain with
nothing watched costs no extra call. Analyzers that need every receipt or trace come with their own fetching.
"""

from __future__ import annotations

from ..analyzers.tx.base import BlockActivity, Log, TxObserved
from ..analyzers.tx.runner import AnalyzerSet
from ..chains.blocks import BlockRef
from ..chains.mappers import MalformedNodeAnswer
from ..chains.rpc import RpcClient
from ..findings import Finding


class AnalysisStage:
    def __init__(self, client: RpcClient, analyzers: AnalyzerSet, watched: dict[str, str | None]) -> None:
        self.client = client
        self.analyzers = analyzers
        self.watched = watched

    @property
    def active(self) -> bool:
        return bool(self.watched) and bool(self.analyzers.ids)

    async def __call__(self, block: BlockRef) -> list[Finding]:
        if not self.active:
            return []
        logs = await self.client.call("eth_getLogs", [{"blockHash": block.hash, "address": sorted(self.watched)}])
        if not isinstance(logs, list):
            raise MalformedNodeAnswer(f"eth_getLogs for block {block.number}: expected a list")
        by_tx: dict[str, list[Log]] = {}
        for entry in logs:
            log = _log(entry)
            if log is not None:
                by_tx.setdefault(entry["transactionHash"].lower(), []).append(log)
        if not by_tx:
            return []
        hashes = sorted(by_tx)
        txs = await self.client.batch([("eth_getTransactionByHash", [h]) for h in hashes])
        observed = tuple(sorted((_tx(raw, by_tx[h]) for h, raw in zip(hashes, txs) if isinstance(raw, dict)),
                                key=lambda t: t.index))
        activity = BlockActivity(block, observed, has_traces=False, context={"watched": self.watched})
        return self.analyzers.run(activity)


def _log(entry: object) -> Log | None:
    """A log as analyzers see it; None for an entry that is not one (the analyzers never see it)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("transactionHash"), str):
        return None
    topics = entry.get("topics")
    if not isinstance(topics, list) or not all(isinstance(t, str) for t in topics):
        return None
    try:
        index = int(entry.get("logIndex", "0x0"), 16)
    except (TypeError, ValueError):
        return None
    return Log(str(entry.get("address", "")).lower(), tuple(t.lower() for t in topics), str(entry.get("data", "0x")),
               index)


def _tx(raw: dict, logs: list[Log]) -> TxObserved:
    def number(key: str) -> int:
        try:
            return int(raw.get(key) or "0x0", 16)
        except (TypeError, ValueError):
            return 0

    to = raw.get("to")
    return TxObserved(str(raw.get("hash", "")).lower(), number("transactionIndex"), str(raw.get("from", "")).lower(),
                      to.lower() if isinstance(to, str) else None, number("value"), str(raw.get("input", "0x")),
                      True, tuple(sorted(logs, key=lambda log: log.log_index)))  # a tx that logged succeeded
