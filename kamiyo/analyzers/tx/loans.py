"""Flash loans in a transaction: who lent what to whom and how it came back, read from the providers' events
(Aave v2 and v3 `FlashLoan`, Balancer's vault `FlashLoan`, Uniswap V3 `Flash`) and from the trace by mechanism,
so that lenders never seen before are caught: a Uniswap V2 `swap` with callback data (a flash swap), an ERC-3156
`onFlashLoan` callback, and the generic shape every flash loan has (dYdX's `callFunction` included): inside a
frame of lender L, tokens go to B, L calls B, and B pays at least as much back to L (or to whoever sent the
tokens) before L's frame ends.

Recognition only: whether a loan was part of an attack is the flash-loan analyzer's judgement. The selector
tables are shared with exploit-contract, which looks for them in bytecode. This module must not do I/O;
malformed logs and calldata are skipped, never raised on.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from ... import log
from .base import Log, TxObserved
from .flows import (DELEGATING, NATIVE, VALUE_KINDS, ZERO, Movement, Step, selector, topic, walk, word_address,
                    word_int)

_log = log.get("kamiyo.analyzers.loans")
AAVE_V2_FLASH_LOAN = topic("FlashLoan(address,address,address,uint256,uint256,uint16)")
AAVE_V3_FLASH_LOAN = topic("FlashLoan(address,address,address,uint256,uint8,uint256,uint16)")
BALANCER_FLASH_LOAN = topic("FlashLoan(address,address,uint256,uint256)")
V3_FLASH = topic("Flash(address,address,uint256,uint256,uint256,uint256)")
V2_MINT = topic("Mint(address,uint256,uint256)")
V2_BURN = topic("Burn(address,uint256,uint256,address)")
V2_SWAP_CALL = selector("swap(uint256,uint256,address,bytes)")
TRANSFER_CALL = selector("transfer(address,uint256)")
TRANSFER_FROM_CALL = selector("transferFrom(address,address,uint256)")
ON_FLASH_LOAN = selector("onFlashLoan(address,address,uint256,uint256,bytes)")

# What a lender calls back on its borrower, with the provider kind it names (exploit-contract looks for
# implementations of these in bytecode)
BORROWER_CALLBACKS = {selector(s): (s, kind) for s, kind in (
    ("uniswapV2Call(address,uint256,uint256,bytes)", "uniswap-v2-flash-swap"),
    ("pancakeCall(address,uint256,uint256,bytes)", "uniswap-v2-flash-swap"),
    ("executeOperation(address[],uint256[],uint256[],address,bytes)", "aave-v2"),
    ("executeOperation(address,uint256,uint256,address,bytes)", "aave-v3"),
    ("receiveFlashLoan(address[],uint256[],uint256[],bytes)", "balancer"),
    ("uniswapV3FlashCallback(uint256,uint256,bytes)", "uniswap-v3"),
    ("callFunction(address,(address,uint256),bytes)", "dydx"),
    ("onFlashLoan(address,address,uint256,uint256,bytes)", "erc-3156"),
)}
_FALSE = "0x" + "0" * 64  # a transfer that returned false moved nothing




@dataclass(frozen=True, slots=True)
class Loan:
    provider: str  # aave-v2, aave-v3, balancer, uniswap-v3, uniswap-v2-flash-swap, dydx, erc-3156, callback
    lender: str
    borrower: str
    token: str | None  # None when neither trace nor logs say which token (a V3 `Flash` without transfers)
    amount: int
    fee: int | None
    where: str
    holder: str | None = None  # who sent the funds when not the lender (an Aave aToken)

    @property
    def key(self) -> tuple:
        return self.lender, self.borrower, self.token, self.amount

    def evidence(self) -> dict[str, Any]:
        return {"provider": self.provider, "lender": self.lender, "holder": self.holder, "borrower": self.borrower,
                "token": self.token, "amount": str(self.amount), "fee": None if self.fee is None else str(self.fee),
                "where": self.where}


# --- loans from logs -------------------------------------------------------------------------------------------

def log_shape(entry: Log, indexed: int, words: int) -> tuple[tuple[str, ...], list[int]] | None:
    """The topics after topic0 and the data words, when the log has exactly this layout."""
    if len(entry.topics) != indexed + 1 or len(entry.data) != 2 + 64 * words:
        return None
    values = [word_int(entry.data, i) for i in range(words)]
    if any(v is None for v in values):
        return None
    return entry.topics[1:], values  # type: ignore[return-value]


def _small(word: str, bits: int) -> bool:
    value = word_int(word)
    return value is not None and value >> bits == 0


def _log_loan(provider: str, entry: Log, borrower: str, token: str | None, amount: int, fee: int,
              moves: list[Movement]) -> Loan:
    paid = next((m for m in moves if m.token == token and m.recipient == borrower and m.amount == amount
                 and m.sender not in (borrower, ZERO)), None)
    holder = paid.sender if paid is not None and paid.sender != entry.address else None
    return Loan(provider, entry.address, borrower, token, amount, fee, f"log:{entry.log_index}", holder)


def _aave_v2(entry: Log, moves: list[Movement]) -> list[Loan] | None:
    shape = log_shape(entry, 3, 3)  # target, initiator, asset indexed; amount, premium, referralCode
    if shape is None:
        return None
    (target, initiator, asset), (amount, premium, referral) = shape
    target, asset = word_address(target), word_address(asset)
    if not target or not asset or word_address(initiator) is None or referral >> 16:
        return None
    return [_log_loan("aave-v2", entry, target, asset, amount, premium, moves)]


def _aave_v3(entry: Log, moves: list[Movement]) -> list[Loan] | None:
    shape = log_shape(entry, 3, 4)  # target, asset, referralCode indexed; initiator, amount, interestRateMode, premium
    if shape is None:
        return None
    (target, asset, referral), (initiator, amount, mode, premium) = shape
    target, asset = word_address(target), word_address(asset)
    if not target or not asset or initiator >> 160 or mode >> 8 or not _small(referral, 16):
        return None
    return [_log_loan("aave-v3", entry, target, asset, amount, premium, moves)]


def _balancer(entry: Log, moves: list[Movement]) -> list[Loan] | None:
    shape = log_shape(entry, 2, 2)  # recipient, token indexed; amount, feeAmount
    if shape is None:
        return None
    (recipient, token), (amount, fee) = shape
    recipient, token = word_address(recipient), word_address(token)
    if not recipient or not token:
        return None
    return [_log_loan("balancer", entry, recipient, token, amount, fee, moves)]


def _uniswap_v3(entry: Log, moves: list[Movement]) -> list[Loan] | None:
    shape = log_shape(entry, 2, 4)  # sender, recipient indexed; amount0, amount1, paid0, paid1
    if shape is None:
        return None
    (sender, recipient), (amount0, amount1, paid0, paid1) = shape
    recipient = word_address(recipient)
    if not recipient or word_address(sender) is None:
        return None
    out, used = [], set()
    for amount, paid in ((amount0, paid0), (amount1, paid1)):
        if amount:  # the log does not name the pool's tokens: the transfer of that amount to the recipient does
            sent = next((m for m in moves if m.sender == entry.address and m.recipient == recipient
                         and m.amount == amount and m.where not in used), None)
            if sent is not None:
                used.add(sent.where)
            out.append(Loan("uniswap-v3", entry.address, recipient, sent.token if sent else None, amount, paid,
                            f"log:{entry.log_index}"))
    return out


LOG_DECODERS = {AAVE_V2_FLASH_LOAN: _aave_v2, AAVE_V3_FLASH_LOAN: _aave_v3, BALANCER_FLASH_LOAN: _balancer,
                 V3_FLASH: _uniswap_v3}


def log_loans(tx: TxObserved, moves: list[Movement]) -> list[Loan]:
    out: list[Loan] = []
    for entry in tx.logs:
        decoder = LOG_DECODERS.get(entry.topics[0]) if entry.topics else None
        if decoder is None:
            continue
        loans = decoder(entry, moves)
        if loans is None:
            _log.debug("flash_loan.log_skipped", tx_hash=tx.hash, log_index=entry.log_index, emitter=entry.address,
                       topics=len(entry.topics), data_chars=len(entry.data))
        else:
            out.extend(loans)
    return out


# --- loans from the trace --------------------------------------------------------------------------------------

@dataclass(slots=True)
class _Node:
    seq: int  # its index in walk order
    step: Step
    end: int = 0  # index after the last node of its subtree (walk order is preorder: a subtree is contiguous)
    children: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Move:
    seq: int  # the node that made it
    token: str
    sender: str
    recipient: str
    amount: int


_SEQ = attrgetter("seq")


class _Moves:
    """The trace's token moves in execution order, and by (token, recipient) for finding repayments."""

    def __init__(self, moves: list[_Move]) -> None:
        self.all, self.seqs = moves, [m.seq for m in moves]
        self.to: dict[tuple[str, str], list[_Move]] = defaultdict(list)
        for m in moves:
            self.to[(m.token, m.recipient)].append(m)

    def between(self, first: int, stop: int) -> list[_Move]:
        """Moves made by nodes first..stop-1."""
        return self.all[bisect_left(self.seqs, first) : bisect_left(self.seqs, stop)]

    def paid(self, token: str, recipient: str, first: int, stop: int) -> list[_Move]:
        """Moves of `token` to `recipient` made by nodes first..stop-1."""
        found = self.to.get((token, recipient), [])
        return found[bisect_left(found, first, key=_SEQ) : bisect_left(found, stop, key=_SEQ)]


def _tree(tx: TxObserved) -> list[_Node]:
    nodes: list[_Node] = []
    open_: list[int] = []
    for i, step in enumerate(walk(tx.trace)):
        while open_ and not _below(step.path, nodes[open_[-1]].step.path):
            nodes[open_.pop()].end = i
        if open_:
            nodes[open_[-1]].children.append(i)
        nodes.append(_Node(i, step))
        open_.append(i)
    for i in open_:
        nodes[i].end = len(nodes)
    return nodes


def _below(path: tuple[int, ...], parent: tuple[int, ...]) -> bool:
    return len(path) > len(parent) and path[: len(parent)] == parent


def _trace_moves(nodes: list[_Node]) -> list[_Move]:
    """Token transfers the trace's calls made (`transfer`, `transferFrom`) and native value, in execution order."""
    out = []
    for i, node in enumerate(nodes):
        frame = node.step.frame
        if not frame.to:
            continue
        if frame.value and frame.kind in VALUE_KINDS:
            out.append(_Move(i, NATIVE, frame.sender, frame.to, frame.value))
        if frame.kind != "CALL" or frame.output == _FALSE:
            continue
        head, args = frame.input[:10].lower(), frame.input[10:]
        if head == TRANSFER_CALL:
            sender, recipient, amount = frame.sender, word_address(args[:64]), word_int(args, 1)
        elif head == TRANSFER_FROM_CALL:
            sender, recipient, amount = word_address(args[:64]), word_address(args[64:128]), word_int(args, 2)
        else:
            continue
        if sender and recipient and amount:
            out.append(_Move(i, frame.to, sender, recipient, amount))
    return out


def _own_children(nodes: list[_Node], i: int) -> list[int]:
    """The calls a frame's account made itself: its children, looking through delegate calls in its context."""
    context, out = nodes[i].step.context, []
    todo = list(reversed(nodes[i].children))
    while todo:
        child = nodes[todo.pop()]
        if child.step.frame.kind in DELEGATING and child.step.context == context:
            todo.extend(reversed(child.children))
        else:
            out.append(child.seq)
    return out


def _where(node: _Node) -> str:
    return "trace:" + ".".join(map(str, node.step.path))


def _callback_loans(nodes: list[_Node], moves: _Moves, i: int, kids: list[int]) -> list[Loan]:
    """Loans of lender frame `i` to the accounts its own calls `kids` call back. What reached each account inside
    the frame is summed in one pass in execution order (a callback's own value included), so a frame with many
    calls is not rescanned per call."""
    lender, out = nodes[i].step.context, []
    received: dict[str, dict[tuple[str, str], int]] = defaultdict(lambda: defaultdict(int))
    inside = iter(moves.between(i, nodes[i].end))
    pending = next(inside, None)
    for c in kids:
        while pending is not None and pending.seq <= c:
            received[pending.recipient][(pending.token, pending.sender)] += pending.amount
            pending = next(inside, None)
        call = nodes[c].step.frame
        borrower = call.to
        if call.kind != "CALL" or not borrower or borrower == lender or len(call.input) < 10 or not lender:
            continue
        head = call.input[:10].lower()
        provider = BORROWER_CALLBACKS.get(head, ("", "callback"))[1]
        if head == ON_FLASH_LOAN:  # ERC-3156 says what it lent: (initiator, token, amount, fee, data)
            args = call.input[10:]
            token, amount, fee = word_address(args[64:128]), word_int(args, 2), word_int(args, 3)
            if token and amount:
                out.append(Loan(provider, lender, borrower, token, amount, fee, _where(nodes[c])))
            continue
        for (token, holder), amount in received.get(borrower, {}).items():
            if borrower in (token, holder):
                continue
            # repaid to the lender or the holder, by the borrower, or by anyone inside the callback
            back = sum(m.amount for to in {holder, lender} for m in moves.paid(token, to, c + 1, nodes[i].end)
                       if m.sender == borrower or (m.seq < nodes[c].end and m.sender not in (holder, lender)))
            if back >= amount:
                out.append(Loan(provider, lender, borrower, token, amount, back - amount, _where(nodes[c]),
                                holder if holder != lender else None))
    return out


def _bytes_length(args: str, slot: int) -> int | None:
    """The length of a dynamic `bytes` argument whose offset is in word `slot`, or None when it cannot be read."""
    offset = word_int(args, slot)
    if offset is None or offset % 32 or offset // 32 > len(args) // 64:
        return None
    return word_int(args, offset // 32)


def _flash_swap(nodes: list[_Node], moves: _Moves, log_moves: list[Movement], i: int, kids: list[int]) -> list[Loan]:
    """A Uniswap V2 swap that called back its recipient (non-empty `data`): the outputs were lent before payment."""
    pair, args = nodes[i].step.context, nodes[i].step.frame.input[10:]
    amounts, to = (word_int(args, 0), word_int(args, 1)), word_address(args[128:192])
    if not pair or not to or None in amounts:
        return []
    callback = next((c for c in kids if nodes[c].step.frame.kind == "CALL" and nodes[c].step.frame.to == to
                     and len(nodes[c].step.frame.input) >= 10), None)
    if not _bytes_length(args, 3) and callback is None:
        return []
    cut = callback if callback is not None else nodes[i].end
    sent = [m for m in moves.between(i, cut) if m.sender == pair and m.recipient == to]
    out, used = [], set()
    for amount in amounts:
        if not amount:
            continue
        match = next((m.token for m in sent if m.amount == amount and m.token not in used), None)
        if match is None:  # no transfer call in the trace: the pair's Transfer log says which token
            match = next((m.token for m in log_moves if m.sender == pair and m.recipient == to
                          and m.amount == amount and m.token not in used), None)
        used.add(match)
        out.append(Loan("uniswap-v2-flash-swap", pair, to, match, amount, None, _where(nodes[i])))
    return out


def trace_loans(tx: TxObserved, log_moves: list[Movement]) -> list[Loan]:
    nodes = _tree(tx)
    moves = _Moves(_trace_moves(nodes))
    out: list[Loan] = []
    for node in nodes:
        # a delegate call's own children are its caller's: they are looked at from the frame that made the call
        if node.step.frame.kind in DELEGATING or node.step.frame.kind == "STATICCALL" or not node.step.context:
            continue
        kids = _own_children(nodes, node.seq)
        if node.step.frame.input[:10].lower() == V2_SWAP_CALL:
            out += _flash_swap(nodes, moves, log_moves, node.seq, kids)
        out += _callback_loans(nodes, moves, node.seq, kids)
    return out


def merge(loans: list[Loan]) -> list[Loan]:
    """One loan per (lender, borrower, token, amount): the first seen (events before the trace), with the fee and
    the provider kind filled in from a later one when it lacked them."""
    by_key: dict[tuple, Loan] = {}
    for loan in loans:
        seen = by_key.get(loan.key)
        if seen is None:
            by_key[loan.key] = loan
            continue
        fee = seen.fee if seen.fee is not None else loan.fee
        provider = seen.provider if seen.provider != "callback" else loan.provider
        by_key[loan.key] = Loan(provider, seen.lender, seen.borrower, seen.token, seen.amount, fee, seen.where,
                                seen.holder or loan.holder)
    return list(by_key.values())
