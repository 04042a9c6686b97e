"""The analysis stage of a chain's pipeline: a block's activity handed to the enabled transaction analyzers.

Two paths, chosen by what the enabled analyzers read:
- all of them read only watched contracts' logs (`watched_only`): one `eth_getLogs` filtered to the watched
  addresses and the transactions that emitted them, so a chain with nothing watched costs no extra call;
- otherwise every transaction with its receipt, the traces the deployment finder fetched for this block anyway,
  and, for analyzers that consume `balances`, the balance before the block of every contract that lost funds in
  it (one batch at the parent block; a pair the node cannot answer for, such as a pruned state, is left out).
"""

from __future__ import annotations

import time

from ..analyzers.tx.base import BALANCES, BlockActivity, TxObserved
from ..analyzers.tx.flows import NATIVE, candidates, selector
from ..analyzers.tx.runner import AnalyzerSet
from ..chains.activity import block_activity, read_log, traces_of
from ..chains.blocks import BlockRef
from ..chains.deployments import RECEIPTS, BlockTraces, NewContract
from ..chains.mappers import MalformedNodeAnswer
from ..chains.rpc import RpcClient
from ..findings import Finding
from ..metrics import ANALYSIS_SECONDS

BALANCE_OF = selector("balanceOf(address)")
TOTAL_SUPPLY = selector("totalSupply()")
MAX_BALANCE_LOOKUPS = 1024  # per block: a block moving funds out of more contracts than this is looked at partly


class AnalysisStage:
    def __init__(self, client: RpcClient, analyzers: AnalyzerSet, watched: dict[str, str | None],
                 chain: str = "") -> None:
        self.client = client
        self.chain = chain
        self.analyzers = analyzers
        self.watched = watched
        self.full = any(not a.info.watched_only for a in analyzers.analyzers)

    @property
    def active(self) -> bool:
        return bool(self.analyzers.ids) and (self.full or bool(self.watched))

    @property
    def needs_traces(self) -> bool:
        return self.analyzers.needs_traces

    async def download(self, block: BlockRef, method: str | None) -> object:
        """The node's answers the block's activity is made of, fetched while the deployment finder fetches its
        traces (`method` is the finder's source: a receipts-only node's receipts are not asked for twice)."""
        if not self.full:
            return await self._watched_logs(block)
        calls = [("eth_getBlockByHash", [block.hash, True])]
        if method != RECEIPTS:
            calls.append(("eth_getBlockReceipts", [block.hash]))
        return await self.client.batch(calls)

    async def assemble(self, block: BlockRef, downloaded: object, traced: BlockTraces | None = None,
                       found: list[NewContract] | None = None) -> BlockActivity | None:
        """The block's activity, or None when there is nothing to analyze. Safe to run ahead, out of order."""
        started = time.perf_counter()
        if self.full:
            answers = downloaded
            receipts = answers[1] if len(answers) > 1 else traced.raw if traced is not None else None
            activity = block_activity(block, answers[0], receipts, traces_of(traced))
            if BALANCES in self.analyzers.consumes and block.number > 0:
                await self._balances(activity)
        else:
            activity = downloaded
        if activity is not None:
            activity.context["watched"] = self.watched
            # contract -> the transaction that created it (what the deployment finder saw, factories included)
            activity.context["created"] = {c.address: c.tx_hash.lower() for c in found or ()}
        ANALYSIS_SECONDS.labels(self.chain, "fetch").observe(time.perf_counter() - started)
        return activity

    def run(self, activity: BlockActivity) -> list[Finding]:
        """The analyzers over one block: called in block order (they keep state across blocks)."""
        started = time.perf_counter()
        try:
            return self.analyzers.run(activity)
        finally:
            ANALYSIS_SECONDS.labels(self.chain, "run").observe(time.perf_counter() - started)

    async def _balances(self, activity: BlockActivity) -> None:
        pairs, tokens = candidates(activity)
        pairs = sorted(pairs)[:MAX_BALANCE_LOOKUPS]
        if not pairs:
            return
        at = hex(activity.block.number - 1)
        calls = [("eth_getBalance", [holder, at]) if token == NATIVE else
                 ("eth_call", [{"to": token, "data": BALANCE_OF + "00" * 12 + holder[2:]}, at])
                 for holder, token in pairs]
        supply_of = sorted(tokens)
        calls += [("eth_call", [{"to": token, "data": TOTAL_SUPPLY}, at]) for token in supply_of]
        answers = await self.client.batch(calls, return_exceptions=True)
        for pair, answer in zip(pairs, answers):
            value = _quantity(answer)
            if value is not None:
                activity.balances[pair] = value
        for token, answer in zip(supply_of, answers[len(pairs):]):
            value = _quantity(answer)
            if value is not None:
                activity.supplies[token] = value

    async def _watched_logs(self, block: BlockRef) -> BlockActivity | None:
        """The transactions that emitted a log of a watched contract, each with all its logs (the receipt): a
        timelock's CallExecuted beside a proxy's Upgraded is what tells a governed change from a takeover."""
        logs = await self.client.call("eth_getLogs", [{"blockHash": block.hash, "address": sorted(self.watched)}])
        if not isinstance(logs, list):
            raise MalformedNodeAnswer(f"eth_getLogs for block {block.number}: expected a list")
        hashes = sorted({entry["transactionHash"].lower() for entry in logs
                         if isinstance(entry, dict) and isinstance(entry.get("transactionHash"), str)})
        if not hashes:
            return None
        receipts = await self.client.batch([("eth_getTransactionReceipt", [h]) for h in hashes])
        observed = tuple(sorted((tx for tx in map(_receipt_tx, receipts) if tx is not None), key=lambda t: t.index))
        return BlockActivity(block, observed, has_traces=False)


def _quantity(answer: object) -> int | None:
    """A balance or supply answer (a quantity or one uint256 word), None for an error or anything else."""
    if not isinstance(answer, str) or not answer.startswith("0x") or len(answer) > 66 or len(answer) < 3:
        return None
    try:
        return int(answer, 16)
    except ValueError:
        return None


def _receipt_tx(receipt: object) -> TxObserved | None:
    """A transaction as its receipt tells it (value, input and nonce are not in a receipt: left zero)."""
    if not isinstance(receipt, dict) or not isinstance(receipt.get("transactionHash"), str):
        return None
    sender, to = receipt.get("from"), receipt.get("to")
    if not isinstance(sender, str):
        return None
    try:
        index = int(receipt.get("transactionIndex") or "0x0", 16)
    except (TypeError, ValueError):
        return None
    success = receipt.get("status") == "0x1"
    logs = sorted((e for e in map(read_log, receipt.get("logs") or []) if e is not None), key=lambda e: e.log_index)
    return TxObserved(receipt["transactionHash"].lower(), index, sender.lower(),
                      to.lower() if isinstance(to, str) else None, 0, "0x", success, tuple(logs) if success else ())
