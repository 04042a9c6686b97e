"""A block's activity for the transaction analyzers, mapped from the node's answers in one place.

Inputs are the block with full transactions, its receipts (status, logs, created address) and, where the node
traces, the traces the deployment finder fetched anyway. A transaction the receipts do not cover is dropped
(logged): an analyzer must never see a transaction with a guessed outcome. This module must not call the node.
"""

from __future__ import annotations

from ..analyzers.tx.base import BlockActivity, CallFrame, Created, Log, TxObserved
from ..analyzers.tx.flows import walk
from ..chains.blocks import BlockRef
from .. import log
from .deployments import DEBUG_TRACE, TRACE_BLOCK, BlockTraces
from .mappers import MalformedNodeAnswer
from .traces import call_tracer_block, parity_block

_log = log.get("kamiyo.activity")


def _int(value: object, default: int = 0) -> int:
    try:
        return int(value, 16) if isinstance(value, str) else default
    except ValueError:
        return default


def _lower(value: object) -> str | None:
    return value.lower() if isinstance(value, str) else None


def read_log(entry: object) -> Log | None:
    """A log as analyzers see it; None for an entry that is not one (the analyzers never see it)."""
    if not isinstance(entry, dict):
        return None
    topics = entry.get("topics")
    if not isinstance(topics, list) or not all(isinstance(t, str) for t in topics):
        return None
    index = _int(entry.get("logIndex", "0x0"), -1)
    if index < 0:
        return None
    return Log(str(entry.get("address", "")).lower(), tuple(t.lower() for t in topics), str(entry.get("data", "0x")),
               index)


def traces_of(answer: BlockTraces | None) -> dict[str, CallFrame | None] | None:
    """tx hash -> call tree, or None when the answer holds no traces (a receipts-only node)."""
    if answer is None or answer.method not in (TRACE_BLOCK, DEBUG_TRACE):
        return None
    if not isinstance(answer.raw, list):
        raise MalformedNodeAnswer(f"{answer.method}: expected a list")
    return parity_block(answer.raw) if answer.method == TRACE_BLOCK else call_tracer_block(answer.raw)


def _created(trace: CallFrame | None, receipt: dict, sender: str) -> tuple[Created, ...]:
    if trace is not None:
        return tuple(Created(s.frame.to, s.frame.sender, s.frame.output) for s in walk(trace)
                     if s.frame.kind.startswith("CREATE") and s.frame.to)
    address = _lower(receipt.get("contractAddress"))
    return (Created(address, sender),) if address else ()


def block_activity(block: BlockRef, raw_block: object, receipts: object,
                   traces: dict[str, CallFrame | None] | None) -> BlockActivity:
    if not isinstance(raw_block, dict) or not isinstance(raw_block.get("transactions"), list):
        raise MalformedNodeAnswer(f"eth_getBlockByNumber {block.number}: expected a block with transactions")
    if not isinstance(receipts, list):
        raise MalformedNodeAnswer(f"eth_getBlockReceipts {block.number}: expected a list")
    by_hash = {r["transactionHash"].lower(): r for r in receipts
               if isinstance(r, dict) and isinstance(r.get("transactionHash"), str)}
    observed, missing = [], 0
    for raw in raw_block["transactions"]:
        if not isinstance(raw, dict) or not isinstance(raw.get("hash"), str):
            missing += 1
            continue
        tx_hash = raw["hash"].lower()
        receipt = by_hash.get(tx_hash)
        sender = _lower(raw.get("from"))
        if receipt is None or sender is None:
            missing += 1
            continue
        success = receipt.get("status") == "0x1"
        trace = traces.get(tx_hash) if traces is not None else None
        logs = tuple(sorted((entry for entry in map(read_log, receipt.get("logs") or []) if entry is not None),
                            key=lambda entry: entry.log_index))
        observed.append(TxObserved(
            hash=tx_hash, index=_int(raw.get("transactionIndex")), sender=sender, to=_lower(raw.get("to")),
            value=_int(raw.get("value")), input=str(raw.get("input") or "0x"), success=success,
            logs=logs if success else (), trace=trace, nonce=_int(raw.get("nonce")),
            created=_created(trace, receipt, sender) if success else (),
        ))
    if missing:
        _log.warning("activity.transactions_dropped", chain_id=block.chain_id, block=block.number, dropped=missing,
                     reason="no receipt or malformed transaction")
    observed.sort(key=lambda t: t.index)
    return BlockActivity(block, tuple(observed), has_traces=traces is not None)
