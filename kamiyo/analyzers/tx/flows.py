"""Who paid whom in a transaction: token and native movements, read once for every analyzer.

Tokens move by ERC-20 `Transfer` logs (and WETH-style `Deposit` / `Withdrawal`, which mint and burn the wrapped
token without a `Transfer`); native value moves in the call trace (a call, creation or self-destruct carrying
value, in a frame that did not revert). Without a trace only the transaction's own value is known, and analyzers
are told so by `TxObserved.trace` being None.

A frame's *context* is the account whose storage and balance it acts on: the callee of a CALL, the caller of a
DELEGATECALL (the code runs on the caller's behalf, which is how a proxy's implementation spends the proxy's
funds). Movements are pure functions of the activity; this module must not do I/O.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

from eth_hash.auto import keccak

from .base import BlockActivity, CallFrame, Log, TxObserved

NATIVE = "native"  # the token key of the chain's own coin
ZERO = "0x" + "00" * 20


def topic(signature: str) -> str:
    """topic0 of an event: keccak-256 of its canonical signature, as logs carry it."""
    return "0x" + keccak(signature.encode()).hex()


def selector(signature: str) -> str:
    """The 4-byte function selector as 0x hex, as calldata starts with it."""
    return "0x" + keccak(signature.encode()).hex()[:8]


TRANSFER = topic("Transfer(address,address,uint256)")
# pools announce trades: Uniswap V2 (and its forks) `Sync` after every reserve change and `Swap`; V3 `Swap`
V2_SYNC = topic("Sync(uint112,uint112)")
V2_SWAP = topic("Swap(address,uint256,uint256,uint256,uint256,address)")
V3_SWAP = topic("Swap(address,address,int256,int256,uint160,uint128,int24)")
POOL_EVENTS = frozenset({V2_SYNC, V2_SWAP, V3_SWAP})
WETH_DEPOSIT = topic("Deposit(address,uint256)")
WETH_WITHDRAWAL = topic("Withdrawal(address,uint256)")
DELEGATING = frozenset({"DELEGATECALL", "CALLCODE"})
VALUE_KINDS = frozenset({"CALL", "CREATE", "CREATE2", "SELFDESTRUCT"})


@dataclass(frozen=True, slots=True)
class Movement:
    token: str  # the token contract, or NATIVE
    sender: str  # ZERO for a mint
    recipient: str  # ZERO for a burn
    amount: int
    where: str  # "log:<index>" or "trace:<path>", so evidence can point at it


def word_address(word: str) -> str | None:
    """A 32-byte topic or data word holding an address, or None when its high bytes are not clean."""
    digits = word[2:] if word[:2] in ("0x", "0X") else word
    if len(digits) != 64 or digits[:24].strip("0"):
        return None
    try:
        int(digits, 16)
    except ValueError:
        return None
    return "0x" + digits[24:].lower()


def word_int(data: str, index: int = 0) -> int | None:
    """The unsigned integer in data word `index`, or None when data is too short or not hex."""
    digits = data[2:] if data[:2] in ("0x", "0X") else data
    chunk = digits[64 * index : 64 * (index + 1)]
    if len(chunk) != 64:
        return None
    try:
        return int(chunk, 16)
    except ValueError:
        return None


def signed(value: int) -> int:
    """A uint256 word read as int256."""
    return value - (1 << 256) if value >> 255 else value


def log_movement(entry: Log) -> Movement | None:
    """The token movement a log states, or None. ERC-721 `Transfer` (the id indexed, four topics) is not one."""
    if not entry.topics:
        return None
    head, where = entry.topics[0], f"log:{entry.log_index}"
    if head == TRANSFER and len(entry.topics) == 3 and len(entry.data) == 66:
        sender, recipient, amount = word_address(entry.topics[1]), word_address(entry.topics[2]), word_int(entry.data)
        if sender and recipient and amount is not None:
            return Movement(entry.address, sender, recipient, amount, where)
    elif head in (WETH_DEPOSIT, WETH_WITHDRAWAL) and len(entry.topics) == 2 and len(entry.data) == 66:
        account, amount = word_address(entry.topics[1]), word_int(entry.data)
        if account and amount is not None:
            if head == WETH_DEPOSIT:
                return Movement(entry.address, ZERO, account, amount, where)
            return Movement(entry.address, account, ZERO, amount, where)
    return None


@dataclass(frozen=True, slots=True)
class Step:
    """One frame of a trace walk: its path from the top (child indices), its context and its depth."""

    frame: CallFrame
    path: tuple[int, ...]
    context: str | None  # None for a frame whose callee is unknown (a failed creation)


def walk(trace: CallFrame | None) -> Iterator[Step]:
    """Every frame that took effect, depth first in execution order. A frame that reverted is left out with all
    it called: nothing it did happened."""
    if trace is None or trace.error:
        return
    stack: list[tuple[CallFrame, tuple[int, ...]]] = [(trace, ())]
    while stack:
        frame, path = stack.pop()
        context = frame.sender if frame.kind in DELEGATING else frame.to
        yield Step(frame, path, context)
        for i in range(len(frame.calls) - 1, -1, -1):
            child = frame.calls[i]
            if not child.error:
                stack.append((child, (*path, i)))


def native_movements(tx: TxObserved) -> list[Movement]:
    """Native value moved by the transaction: from its trace, else its own value (when it succeeded)."""
    if tx.trace is None:
        if tx.success and tx.value and tx.to:
            return [Movement(NATIVE, tx.sender, tx.to, tx.value, "trace:")]
        return []
    out = []
    for step in walk(tx.trace):
        frame = step.frame
        if frame.value and frame.kind in VALUE_KINDS and frame.to:
            out.append(Movement(NATIVE, frame.sender, frame.to, frame.value, "trace:" + ".".join(map(str, step.path))))
    return out


def movements(tx: TxObserved) -> list[Movement]:
    """Every token and native movement of a successful transaction, logs first in log order."""
    if not tx.success:
        return []
    out = [m for m in map(log_movement, tx.logs) if m is not None]
    return out + native_movements(tx)


def net_flows(moves: list[Movement]) -> dict[tuple[str, str], int]:
    """(holder, token) -> what the holder gained (negative: lost) over these movements. Mints and burns leave
    ZERO out, so its balance is never reported."""
    net: dict[tuple[str, str], int] = defaultdict(int)
    for m in moves:
        if m.sender == m.recipient:
            continue
        if m.sender != ZERO:
            net[(m.sender, m.token)] -= m.amount
        if m.recipient != ZERO:
            net[(m.recipient, m.token)] += m.amount
    return {key: value for key, value in net.items() if value}


def code_accounts(tx: TxObserved) -> set[str]:
    """Accounts the transaction proved to be contracts: callees that ran code, contexts, creations, log emitters."""
    out = {entry.address for entry in tx.logs} | {c.address for c in tx.created}
    for step in walk(tx.trace):
        frame = step.frame
        if step.context and (frame.kind in DELEGATING or len(frame.input) > 2 or frame.kind.startswith("CREATE")):
            out.add(step.context)
    return out


def candidates(activity: BlockActivity) -> tuple[set[tuple[str, str]], set[str]]:
    """The (holder, token) pairs whose balance before the block the pipeline should fetch, and the tokens whose
    supply it should: contracts that lost some token or native value in one of the block's transactions, and
    tokens minted in one (a supply that jumps is a signal of its own)."""
    pairs: set[tuple[str, str]] = set()
    minted: set[str] = set()
    for tx in activity.transactions:
        contracts = code_accounts(tx)
        moves = movements(tx)
        for (holder, token), delta in net_flows(moves).items():
            if delta < 0 and holder in contracts:
                pairs.add((holder, token))
        minted |= {m.token for m in moves if m.sender == ZERO and m.token != NATIVE}
    return pairs, {token for _, token in pairs if token != NATIVE} | minted


def actor(tx: TxObserved) -> set[str]:
    """The accounts acting in the transaction: its sender, the contract it called, and what it created (an
    attacker's contract is one of these; so is an arbitrageur's)."""
    out = {tx.sender} | {c.address for c in tx.created}
    if tx.to:
        out.add(tx.to)
    return out


def pools(tx: TxObserved) -> set[str]:
    """Contracts that announced a trade in the transaction: their token changes are the price of a swap."""
    return {entry.address for entry in tx.logs if entry.topics and entry.topics[0] in POOL_EVENTS}
