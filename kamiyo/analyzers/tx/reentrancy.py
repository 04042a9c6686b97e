"""`reentrancy`: a contract called again while an outer call of it is still running, and paying out in both.

The mechanism, read from the call trace alone: account A's code is running (the *outer* frame), it hands value
or tokens to someone (an *outer outflow*: the payment that gives the recipient control), the recipient calls A
again before the outer frame finished (the *re-entry*), and A pays out again inside that nested call (a
*re-entered outflow*), typically because it updates its books only after paying. A re-entry of A is a CALL whose
callee is A while a frame of A's context is an ancestor and the parent frame is someone else's: A calling
itself (a multicall, a DELEGATECALL of its own code, a proxy calling through its implementation) is not one,
nor is a STATICCALL or anything below one (it cannot change state), nor anything that reverted. Outflows are
native value sent from A's context and ERC-20 `transfer` calls made by A or `transferFrom` calls that take
from A (decoded from the trace's calldata, since a log does not say which frame caused it).

Re-entry is how callbacks work (flash loans, flash swaps, `receive()` of a router unwrapping WETH, ERC-777
hooks, unlock-callback designs), so the shape alone is reported only when the transaction's own accounting
says someone lost:
- A did not end the transaction poorer (by `flows.movements`) in a token it paid out in a re-entered frame to
  someone other than a pool that traded: nothing. A callback that is repaid or paid for is the design working
  (and a payment into a trading pool is a swap or a flash swap's repayment); reporting it would bury the rest.
- A is the transaction's own account (`flows.actor`): nothing. An arbitrage or attack contract re-entered by
  the pool it borrows from is doing what its owner wrote, and a loss of its own is not a third party's.
- A lost, but it is a pool that traded in the transaction, or the re-entered payments went elsewhere than to
  the re-entering account or what it called: medium `suspicious` (a re-entered payer losing funds is rare,
  but nothing ties the loss to the re-entering side).
- Otherwise high `exploit`, and critical when A lost at least `critical_share` of what it held in that token
  before the transaction (its balance at the parent block, `activity.balances`, moved by its net flows in the
  block's earlier transactions; unknown balances stay high).

It must not do I/O, guess prices or decode anything but the standard calls and `flows`' movements.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field, field_validator

from ...findings import Finding, FindingType, Severity, fingerprint
from .base import BALANCES, TRACES, Analyzer, AnalyzerInfo, BlockActivity, CallFrame, NoSettings, TxObserved, label
from .flows import DELEGATING, NATIVE, VALUE_KINDS, actor, movements, net_flows, pools, selector, word_address
from .flows import word_int

KIND = "reentrancy"
TRANSFER_CALL = selector("transfer(address,uint256)")
TRANSFER_FROM_CALL = selector("transferFrom(address,address,uint256)")
_FALSE = "0x" + "00" * 32  # a token call that returned false moved nothing
NetOf = Callable[[int], dict[tuple[str, str], int]]  # transaction position in the block -> its net flows


class ReentrancySettings(NoSettings):
    min_reentries: int = Field(1, description="re-entering calls into the paying account, in the transaction")
    critical_share: float = Field(0.5, description="of the account's balance before the transaction, lost in it")

    @field_validator("min_reentries")
    @classmethod
    def _at_least_one(cls, value: int) -> int:
        if value < 1:
            raise ValueError(f"min_reentries must be at least 1 (one re-entering call), not {value}")
        return value

    @field_validator("critical_share")
    @classmethod
    def _share(cls, value: float) -> float:
        if not 0 < value <= 1:
            raise ValueError(f"critical_share is a share of the balance before the transaction, in (0, 1], "
                             f"not {value}")
        return value


@dataclass(frozen=True, slots=True)
class Outflow:
    """A payment by an account, read from a frame of the trace."""

    token: str  # token contract or NATIVE
    recipient: str
    amount: int
    where: str  # "trace:<path>" of the frame that moved it
    root: str  # "trace:<path>" of the account's outermost frame above it
    reentered: bool  # inside a re-entered frame of the account


@dataclass(frozen=True, slots=True)
class Reentry:
    where: str  # "trace:<path>" of the re-entering call
    root: str  # the outer frame it re-entered
    level: int  # 1 for a re-entry of the outer frame, 2 for a re-entry inside that one, …
    by: str  # the re-entering account: the context that made the call


@dataclass(slots=True)
class AccountTrace:
    """What one account's frames did in one transaction's trace."""

    reentries: list[Reentry] = field(default_factory=list)
    outflows: list[Outflow] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class TraceScan:
    accounts: dict[str, AccountTrace]  # accounts that made outflows or were re-entered
    callees: dict[str, set[str]]  # account -> accounts its frames called


def frame_outflows(frame: CallFrame) -> list[tuple[str, str, str, int]]:
    """(payer, token, recipient, amount) this frame moves by itself: the native value it carries, and the
    ERC-20 `transfer` / `transferFrom` its calldata asks for. Calldata that cannot be read is no payment."""
    out = []
    if frame.value > 0 and frame.kind in VALUE_KINDS and frame.to and frame.sender != frame.to:
        out.append((frame.sender, NATIVE, frame.to, frame.value))
    if frame.kind != "CALL" or not frame.to or (frame.output or "").lower() == _FALSE:
        return out
    head, args = frame.input[:10].lower(), frame.input[10:]
    if head == TRANSFER_CALL:
        recipient, amount, payer = word_address(args[:64]), word_int(args, 1), frame.sender
    elif head == TRANSFER_FROM_CALL:
        payer, recipient, amount = word_address(args[:64]), word_address(args[64:128]), word_int(args, 2)
    else:
        return out
    if payer and recipient and amount and payer != recipient:
        out.append((payer, frame.to, recipient, amount))
    return out


def scan(trace: CallFrame) -> TraceScan:
    """One pass over the frames that took effect, keeping counts of the contexts on the current call path.

    Iterative (a trace may be 1,024 frames deep): each frame is pushed once to be entered and once to be left.
    """
    accounts: dict[str, AccountTrace] = defaultdict(AccountTrace)
    callees: dict[str, set[str]] = defaultdict(set)
    on_path: Counter[str] = Counter()  # frames of each context on the current path
    reentered: Counter[str] = Counter()  # re-entering frames of each context on the current path
    roots: dict[str, str] = {}  # context -> its outermost frame on the current path
    if trace.error:
        return TraceScan({}, {})
    # (frame, path, parent context, under a STATICCALL, None to enter / (context, was a re-entry) to leave)
    stack: list[tuple[CallFrame, tuple[int, ...], str | None, bool, tuple[str | None, bool] | None]] = [
        (trace, (), None, False, None)]
    while stack:
        frame, path, parent, static, leaving = stack.pop()
        if leaving is not None:
            context, was_reentry = leaving
            if context is not None:
                on_path[context] -= 1
                if was_reentry:
                    reentered[context] -= 1
                if not on_path[context]:
                    del roots[context]
            continue
        where = "trace:" + ".".join(map(str, path))
        context = frame.sender if frame.kind in DELEGATING else frame.to
        if frame.to:
            callees[frame.sender].add(frame.to)
        for payer, token, recipient, amount in frame_outflows(frame):
            if on_path[payer]:  # a payment by an account whose code is running above it
                accounts[payer].outflows.append(Outflow(token, recipient, amount, where, roots[payer],
                                                        reentered[payer] > 0))
        is_reentry = (not static and frame.kind == "CALL" and context is not None and on_path[context] > 0
                      and parent != context)
        if context is not None:
            if not on_path[context]:
                roots[context] = where
            on_path[context] += 1
            if is_reentry:
                reentered[context] += 1
                accounts[context].reentries.append(Reentry(where, roots[context], reentered[context],
                                                           frame.sender))
        stack.append((frame, path, parent, static, (context, is_reentry)))
        below_static = static or frame.kind == "STATICCALL"
        for i in range(len(frame.calls) - 1, -1, -1):
            child = frame.calls[i]
            if not child.error:
                stack.append((child, (*path, i), context, below_static, None))
    return TraceScan(dict(accounts), dict(callees))


@dataclass(frozen=True, slots=True)
class Episode:
    """An account's re-entries in one transaction whose outer frames paid out both before and inside them."""

    account: str
    reentries: tuple[Reentry, ...]
    reentered_outflows: tuple[Outflow, ...]
    outer_outflows: tuple[Outflow, ...]


def episodes(result: TraceScan) -> list[Episode]:
    """Accounts re-entered while paying: only outer frames that paid out both outside and inside a re-entry."""
    out = []
    for account, seen in result.accounts.items():
        if not seen.reentries:
            continue
        roots = {r.root for r in seen.reentries}
        inner = {r for r in roots if any(o.reentered and o.root == r for o in seen.outflows)}
        outer = {r for r in roots if any(not o.reentered and o.root == r for o in seen.outflows)}
        paying = inner & outer
        if not paying:
            continue
        out.append(Episode(
            account,
            tuple(r for r in seen.reentries if r.root in paying),
            tuple(o for o in seen.outflows if o.root in paying and o.reentered),
            tuple(o for o in seen.outflows if o.root in paying and not o.reentered),
        ))
    return out


class Reentrancy(Analyzer):
    info = AnalyzerInfo(
        id=KIND,
        title="Re-entrancy draining a contract",
        description="A contract was called again by the recipient of its payment while the paying call was still "
                    "running, paid out again inside that call, and ended the transaction poorer.",
        severity=Severity.HIGH,
        # the trace shape plus a net loss paid to the re-entering side is the textbook drain; the rare miss is
        # a contract that legitimately pays one party twice through a callback it invited
        confidence=0.85,
        consumes=frozenset({TRACES, BALANCES}),
        needs_traces=True,
    )
    Settings = ReentrancySettings

    def analyze(self, activity: BlockActivity) -> list[Finding]:
        out = []
        nets: dict[int, dict[tuple[str, str], int]] = {}  # read only for blocks with a candidate

        def net_of(i: int) -> dict[tuple[str, str], int]:
            if i not in nets:
                nets[i] = net_flows(movements(activity.transactions[i]))
            return nets[i]

        for i, tx in enumerate(activity.transactions):
            if not tx.success or tx.trace is None:
                continue
            result = scan(tx.trace)
            for episode in episodes(result):
                if len(episode.reentries) < self.settings.min_reentries:
                    continue
                finding = self._grade(activity, i, tx, episode, result, net_of)
                if finding is not None:
                    out.append(finding)
        return out

    def _grade(self, activity: BlockActivity, i: int, tx: TxObserved, episode: Episode, result: TraceScan,
               net_of: NetOf) -> Finding | None:
        account = episode.account
        net = net_of(i)
        acting = actor(tx)
        if account in acting:
            return None
        traded = pools(tx)
        # what the re-entered frames paid into pools that traded is a trade or a flash swap's repayment
        paid_inside = [o for o in episode.reentered_outflows if o.recipient not in traded]
        lost = {token: -net[(account, token)] for token in sorted({o.token for o in paid_inside})
                if net.get((account, token), 0) < 0}
        if not lost:
            return None
        reenterers = {r.by for r in episode.reentries}
        side = set(reenterers)
        for by in reenterers:
            side |= result.callees.get(by, set())
        side -= traded | {account}
        to_side = [o for o in paid_inside if o.token in lost and o.recipient in side]
        before = {token: self._balance_before(activity, i, account, token, net_of) for token in lost}
        if account in traded or not to_side:
            severity, type_ = Severity.MEDIUM, FindingType.SUSPICIOUS
        elif any(self._most_of(amount, before[token]) for token, amount in lost.items()):
            severity, type_ = Severity.CRITICAL, FindingType.EXPLOIT
        else:
            severity, type_ = Severity.HIGH, FindingType.EXPLOIT
        evidence = _evidence(tx, episode, lost, before, net, reenterers, to_side, severity)
        return Finding(
            kind=KIND, severity=severity, type=type_, chain_id=activity.block.chain_id, subject=account,
            block=activity.block.number, tx_hash=tx.hash,
            fingerprint=fingerprint(KIND, activity.block.chain_id, tx.hash, account), evidence=evidence,
        )

    def _most_of(self, lost: int, before: int | None) -> bool:
        # a balance that is unknown, or not positive (an answer inconsistent with the loss), proves nothing
        return before is not None and before > 0 and lost >= self.settings.critical_share * before

    @staticmethod
    def _balance_before(activity: BlockActivity, i: int, account: str, token: str, net_of: NetOf) -> int | None:
        """The account's balance just before transaction i: at the parent block, moved by the block's earlier
        transactions. None when the node did not give it."""
        at_parent = activity.balances.get((account, token))
        if at_parent is None:
            return None
        return at_parent + sum(net_of(j).get((account, token), 0) for j in range(i))


def _amount(o: Outflow, payer: str) -> dict[str, str]:
    return {"token": o.token, "amount": str(o.amount), "from": payer, "to": o.recipient, "where": o.where}


def _evidence(tx: TxObserved, episode: Episode, lost: dict[str, int], before: dict[str, int | None],
              net: dict[tuple[str, str], int], reenterers: set[str], to_side: list[Outflow],
              severity: Severity) -> dict[str, Any]:
    account = episode.account
    paid: dict[tuple[str, str], int] = defaultdict(int)  # (token, recipient) -> everything the account paid
    for m in movements(tx):
        if m.sender == account and m.recipient != account:
            paid[(m.token, m.recipient)] += m.amount
    totals: dict[str, int] = defaultdict(int)
    for (token, _), amount in paid.items():
        totals[token] += amount
    recipients = sorted({o.recipient for o in episode.reentered_outflows} | {r for _, r in paid})
    exploit = severity in (Severity.HIGH, Severity.CRITICAL)
    confidence = {Severity.CRITICAL: 0.9, Severity.HIGH: 0.8}.get(severity, 0.5)
    addresses = [{"role": "reentered_contract", "address": account}]
    addresses += [{"role": "reentered_by", "address": a} for a in sorted(reenterers)]
    addresses += [{"role": "recipient", "address": a} for a in recipients]
    addresses.append({"role": "tx_sender", "address": tx.sender})
    if tx.to:
        addresses.append({"role": "tx_to", "address": tx.to})
    labels = [label(account, "victim" if exploit else "reentered-contract", confidence)]
    if exploit:
        labels.append(label(tx.sender, "attacker", confidence))
        labels += [label(a, "exploit-contract", confidence) for a in sorted(reenterers) if a != tx.sender]
    losses = []
    for token, amount in lost.items():
        b = before[token]
        losses.append({"token": token, "amount": str(amount), "balance_before": None if b is None else str(b),
                       "share": round(amount / b, 6) if b else None})
    depth = max(r.level for r in episode.reentries)
    summary = (f"{account} was re-entered {len(episode.reentries)} time(s) (depth {depth}) while paying out and "
               f"lost " + ", ".join(f"{a} of {t}" for t, a in lost.items()))
    return {
        "tx_hash": tx.hash,
        "contract": account,
        "reentries": len(episode.reentries),
        "depth": depth,
        "reentry_paths": [r.where for r in episode.reentries],
        "outer_frames": sorted({r.root for r in episode.reentries}),
        "reentered_by": sorted(reenterers),
        "reentered_outflows": [_amount(o, account) for o in episode.reentered_outflows],
        "outer_outflows": [_amount(o, account) for o in episode.outer_outflows],
        "paid_to_reentering_side": bool(to_side),
        "amounts": [{"token": t, "amount": str(a), "from": account, "to": r} for (t, r), a in sorted(paid.items())],
        "outflow_totals": [{"token": t, "amount": str(a)} for t, a in sorted(totals.items())],
        "net": [{"holder": account, "token": t, "delta": str(d)} for (h, t), d in sorted(net.items()) if h == account],
        "losses": losses,
        "addresses": addresses,
        "labels": labels,
        "confidence": confidence,
        "summary": summary,
    }
