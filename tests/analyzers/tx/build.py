"""Building blocks of synthetic activity for analyzer unit tests: addresses, ERC-20 logs, frames, transactions."""

from __future__ import annotations

import itertools

from kamiyo.analyzers.tx.base import BlockActivity, CallFrame, Created, Log, TxObserved
from kamiyo.analyzers.tx.flows import TRANSFER, topic
from kamiyo.chains.blocks import BlockRef

_hashes = itertools.count(1)


def addr(n: int) -> str:
    return "0x" + f"{n:040x}"


def word(value: int | str) -> str:
    if isinstance(value, str):
        return "0x" + value.removeprefix("0x").rjust(64, "0")
    return "0x" + f"{value:064x}"


def transfer(token: str, sender: str, recipient: str, amount: int, index: int = 0) -> Log:
    return Log(token, (TRANSFER, word(sender), word(recipient)), word(amount), index)


def event(address: str, signature: str, *indexed: str, data: str = "0x", index: int = 0) -> Log:
    return Log(address, (topic(signature), *(word(i) for i in indexed)), data, index)


def call(sender: str, to: str, value: int = 0, input: str = "0x12345678", kind: str = "CALL",
         calls: tuple[CallFrame, ...] = (), error: str | None = None) -> CallFrame:
    return CallFrame(kind, sender, to, value, input, "0x", error, tuple(calls))


def tx(sender: str, to: str | None, *, logs: tuple[Log, ...] = (), trace: CallFrame | None = None,
       value: int = 0, success: bool = True, nonce: int = 100, created: tuple[Created, ...] = (),
       index: int = 0) -> TxObserved:
    logs = tuple(Log(e.address, e.topics, e.data, i) for i, e in enumerate(logs))  # number them in order
    return TxObserved(f"0x{next(_hashes):064x}", index, sender, to, value, "0x", success, logs, trace, nonce, created)


def block(number: int, *txs: TxObserved, balances: dict | None = None, supplies: dict | None = None,
          chain_id: int = 1) -> BlockActivity:
    ref = BlockRef(chain_id=chain_id, number=number, hash=f"0x{number:064x}", parent_hash=f"0x{number - 1:064x}")
    ordered = tuple(TxObserved(t.hash, i, t.sender, t.to, t.value, t.input, t.success, t.logs, t.trace, t.nonce,
                               t.created) for i, t in enumerate(txs))
    return BlockActivity(ref, ordered, has_traces=any(t.trace is not None for t in txs),
                         balances=dict(balances or {}), supplies=dict(supplies or {}))
