"""`large-outflow`: a contract lost most of a token or native balance, in one transaction or a few blocks, to
someone who had not paid it in.

Losing a large share is ordinary for a vault whose one depositor leaves, for a pool, for WETH; what is not
ordinary is the money going to accounts that never put it there. So the analyzer keeps a ledger, per contract and
counterparty and token, of what each paid in and took out since the daemon started, and grades an outflow by it:
- the takers only take back what they paid in (within `refund_tolerance`): nothing to report;
- they gave something for it in the same transaction (a share burn, another token: a redemption, a swap, a
  loan against collateral): low for a burn, medium otherwise; whether that price was fair is for the flash-loan
  and reserve-manipulation analyzers to judge;
- the takers are contracts of the same deployer: low (a migration); the transaction was sent by the account that
  deployed the contract, or the taker is that account: medium (a team paying out of its treasury, an attacker
  sweeping its own contract; a rug pull looks the same). Deployers are known for contracts created while the
  daemon runs;
- they gave nothing and had not paid in: `exploit`, high when the ledger saw most of the balance arrive from
  others (the money provably was not theirs), medium when the history is too short to tell; critical when who
  controls the contract changed (ownership, upgrade, admin, initializer) in the window before.

Pools that traded in the transaction are left to the reserve analyzers, as are accounts the transaction itself
created. The ledger forgets least recently used pairs beyond `max_ledger_entries`, and a block seen again (a
reorg) first undoes what its earlier version booked. This module must not do I/O.
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict, deque
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from ...findings import Finding, FindingType, Severity, fingerprint
from .base import BALANCES, LOGS, TRACES, TRANSACTIONS, Analyzer, AnalyzerInfo, BlockActivity, NoSettings, label
from .base import TxObserved
from .flows import NATIVE, ZERO, Movement, code_accounts, movements, net_flows, pools, topic

KIND = "large-outflow"
# events a contract emits when who controls it changes (OpenZeppelin's Ownable, ERC-1967, Initializable 4.x/5.x)
CONTROL_EVENTS = {
    topic("OwnershipTransferred(address,address)"): "OwnershipTransferred",
    topic("Upgraded(address)"): "Upgraded",
    topic("AdminChanged(address,address)"): "AdminChanged",
    topic("BeaconUpgraded(address)"): "BeaconUpgraded",
    topic("Initialized(uint8)"): "Initialized",
    topic("Initialized(uint64)"): "Initialized",
}


class OutflowSettings(NoSettings):
    min_share: float = Field(0.5, gt=0, le=1,
        description="of the balance before, lost in one transaction or the window")
    window_blocks: int = Field(10, ge=1, le=10_000)
    min_native: int = Field(10**18, ge=0, description="wei; smaller native losses are not reported")
    min_supply_share: float = Field(1e-4, ge=0, le=1,
        description="token losses below this share of the supply are dust")
    refund_tolerance: float = Field(0.05, ge=0, le=1, description="taking back up to paid-in × (1 + this) is a refund")
    max_ledger_entries: int = Field(200_000, ge=1_000)


@dataclass(slots=True)
class _Episode:
    """Losses of one (contract, token) within the window, graded together."""

    first_block: int
    first_tx: str
    balance_before: int
    lost: int = 0
    reported: Severity | None = None


class LargeOutflow(Analyzer):
    info = AnalyzerInfo(
        id=KIND,
        title="Large outflow to accounts that had not paid in",
        description="A contract lost more than a configured share of a token or native balance within one "
                    "transaction or a few blocks, to accounts that gave nothing for it and had not deposited it.",
        severity=Severity.HIGH,
        # a drain to non-depositors is what most thefts look like; the misses are payouts the ledger cannot
        # see the reason for (rewards, a multisig's own treasury moving)
        confidence=0.7,
        consumes=frozenset({LOGS, TRACES, TRANSACTIONS, BALANCES}),
    )
    Settings = OutflowSettings

    def __init__(self, settings: OutflowSettings | None = None) -> None:
        super().__init__(settings)
        self._ledger: OrderedDict[tuple[str, str, str], list[int]] = OrderedDict()  # (contract, party, token)
        self._received: dict[tuple[str, str], int] = defaultdict(int)  # (contract, token) -> paid in by anyone
        self._booked: dict[int, list[tuple[tuple[str, str, str], int, int]]] = {}  # block -> ledger changes
        self._episodes: dict[tuple[str, str], _Episode] = {}
        self._control: dict[str, deque[tuple[int, str, str]]] = {}  # contract -> (block, event, tx)
        # accounts some transaction proved to be contracts: a plain-value deposit into one proves nothing itself
        self._known: OrderedDict[str, None] = OrderedDict()
        self._deployers: OrderedDict[str, str] = OrderedDict()  # contract -> the account whose transaction made it

    # ---------------------------------------------------------------------------------------------- state

    def _undo_from(self, number: int) -> None:
        """A block at or below one already booked is a new branch: forget what the old one booked."""
        for block in sorted((b for b in self._booked if b >= number), reverse=True):
            for key, paid, taken in self._booked.pop(block):
                entry = self._ledger.get(key)
                if entry is not None:
                    entry[0] -= paid
                    entry[1] -= taken
                self._received[(key[0], key[2])] -= paid
        for key in [k for k, e in self._episodes.items() if e.first_block >= number]:
            del self._episodes[key]
        for contract, events in list(self._control.items()):
            kept = deque(e for e in events if e[0] < number)
            if kept:
                self._control[contract] = kept
            else:
                del self._control[contract]

    def _contracts(self, tx: TxObserved, moves: list[Movement]) -> set[str]:
        """The parties of these movements that are contracts: proven by this transaction (and remembered), or
        by an earlier one."""
        proven = code_accounts(tx)
        for address in proven:
            self._known[address] = None
            self._known.move_to_end(address)
        for created in tx.created:
            self._deployers[created.address] = tx.sender
        for memory in (self._known, self._deployers):
            while len(memory) > self.settings.max_ledger_entries:
                memory.popitem(last=False)
        parties = {m.sender for m in moves} | {m.recipient for m in moves}
        return proven | {a for a in parties if a in self._known}

    def _book(self, block: int, contracts: set[str], moves: list[Movement]) -> None:
        booked = self._booked.setdefault(block, [])
        for m in moves:
            if m.recipient in contracts and m.sender not in (ZERO, m.recipient):
                self._add(booked, (m.recipient, m.sender, m.token), m.amount, 0)
            if m.sender in contracts and m.recipient not in (ZERO, m.sender):
                self._add(booked, (m.sender, m.recipient, m.token), 0, m.amount)
        while len(self._ledger) > self.settings.max_ledger_entries:
            (contract, _, token), (paid, _) = self._ledger.popitem(last=False)
            self._received[(contract, token)] -= paid  # what is forgotten no longer proves whose money it was

    def _add(self, booked: list, key: tuple[str, str, str], paid: int, taken: int) -> None:
        entry = self._ledger.get(key)
        if entry is None:
            entry = self._ledger[key] = [0, 0]
        else:
            self._ledger.move_to_end(key)
        entry[0] += paid
        entry[1] += taken
        if paid:
            self._received[(key[0], key[2])] += paid
        booked.append((key, paid, taken))

    def _expire(self, number: int) -> None:
        horizon = number - self.settings.window_blocks
        for key in [k for k, e in self._episodes.items() if e.first_block <= horizon]:
            del self._episodes[key]
        for contract, events in list(self._control.items()):
            while events and events[0][0] <= horizon:
                events.popleft()
            if not events:
                del self._control[contract]
        for block in [b for b in self._booked if b <= horizon]:
            del self._booked[block]  # beyond reorg reach of the window; the ledger keeps the sums

    # ------------------------------------------------------------------------------------------- analysis

    def analyze(self, activity: BlockActivity) -> list[Finding]:
        number = activity.block.number
        if any(b >= number for b in self._booked):
            self._undo_from(number)
        self._expire(number)
        self._booked.setdefault(number, [])
        earlier: dict[tuple[str, str], int] = defaultdict(int)  # net flows of earlier transactions in the block
        out = []
        for tx in activity.transactions:
            if not tx.success:
                continue
            moves = movements(tx)
            contracts = self._contracts(tx, moves)
            self._note_control(number, tx)
            net = net_flows(moves)
            self._book(number, contracts, moves)
            skip = pools(tx) | {c.address for c in tx.created} | {tx.sender}
            for (holder, token), delta in sorted(net.items()):
                if delta >= 0 or holder not in contracts or holder in skip:
                    continue
                before = activity.balances.get((holder, token))
                if before is not None:
                    before += earlier[(holder, token)]
                finding = self._grade(activity, tx, holder, token, -delta, before, moves)
                if finding is not None:
                    out.append(finding)
            for key, delta in net.items():
                earlier[key] += delta
        return out

    def _note_control(self, number: int, tx: TxObserved) -> None:
        """Control changes of existing contracts (a constructor's first OwnershipTransferred is no change)."""
        created = {c.address for c in tx.created}
        for entry in tx.logs:
            name = CONTROL_EVENTS.get(entry.topics[0]) if entry.topics else None
            if name is not None and entry.address not in created:
                self._control.setdefault(entry.address, deque()).append((number, name, tx.hash))

    def _significant(self, activity: BlockActivity, token: str, lost: int) -> bool:
        if token == NATIVE:
            return lost >= self.settings.min_native
        supply = activity.supplies.get(token)
        return supply is None or lost >= supply * self.settings.min_supply_share

    def _grade(self, activity: BlockActivity, tx: TxObserved, holder: str, token: str, lost: int,
               before: int | None, moves: list[Movement]) -> Finding | None:
        if before is None or not self._significant(activity, token, lost):
            return None  # without the balance before, a share cannot be told
        episode = self._episodes.get((holder, token))
        if episode is None:
            episode = self._episodes[(holder, token)] = _Episode(activity.block.number, tx.hash, max(before, lost))
        episode.lost += lost
        share = episode.lost / max(episode.balance_before, 1)
        if share < self.settings.min_share:
            return None
        takers = sorted({m.recipient for m in moves if m.sender == holder and m.token == token} - {ZERO})
        refunds = [t for t in takers if self._refund(holder, t, token)]
        if len(refunds) == len(takers):
            return None
        severity, kind, reason = self._verdict(tx, holder, token, takers, moves, episode)
        if episode.reported is not None and episode.reported.rank >= severity.rank:
            return None  # this episode was reported at least this loudly already
        episode.reported = severity
        return self._finding(activity, tx, holder, token, episode, share, takers, severity, kind, reason, moves)

    def _refund(self, holder: str, taker: str, token: str) -> bool:
        paid, taken = self._ledger.get((holder, taker, token), (0, 0))
        return paid > 0 and taken <= paid * (1 + self.settings.refund_tolerance)

    def _verdict(self, tx: TxObserved, holder: str, token: str, takers: list[str], moves: list[Movement],
                 episode: _Episode) -> tuple[Severity, FindingType, str]:
        parties = set(takers) | {tx.sender} | ({tx.to} if tx.to and tx.to != holder else set())
        burned = any(m.token == holder and m.recipient == ZERO and m.sender in parties for m in moves)
        # paying in the same token is in the ledger already (a deposit then a larger withdrawal is no price)
        paid_now = any(m.recipient == holder and m.sender in parties and m.token != token for m in moves)
        control = self._control.get(holder)
        if control:
            return Severity.CRITICAL, FindingType.EXPLOIT, f"control changed ({control[-1][1]}) in the window"
        if burned:
            return Severity.LOW, FindingType.INFO, "shares burned for it"
        team = self._deployers.get(holder)
        if team is not None and takers and all(self._deployers.get(t) == team for t in takers):
            return Severity.LOW, FindingType.INFO, "moved to a contract of the same deployer (a migration)"
        if team is not None and (tx.sender == team or all(t == team for t in takers)):
            # a team moving its own funds, an attacker sweeping its own contract; also how a rug pull looks
            return Severity.MEDIUM, FindingType.SUSPICIOUS, "sent by or to the account that deployed it"
        if paid_now:
            return Severity.MEDIUM, FindingType.SUSPICIOUS, "paid for in the same transaction"
        seen_in = self._received.get((holder, token), 0)
        if seen_in * 2 >= episode.balance_before:
            return Severity.HIGH, FindingType.EXPLOIT, "taken by accounts that had not paid it in"
        return Severity.MEDIUM, FindingType.SUSPICIOUS, "taken by accounts not seen paying in (short history)"

    def _finding(self, activity: BlockActivity, tx: TxObserved, holder: str, token: str, episode: _Episode,
                 share: float, takers: list[str], severity: Severity, kind: FindingType, reason: str,
                 moves: list[Movement]) -> Finding:
        chain_id = activity.block.chain_id
        sent = [m for m in moves if m.sender == holder and m.token == token]
        ledger = {t: self._ledger.get((holder, t, token), [0, 0]) for t in takers}
        confidence = self.info.confidence if kind is FindingType.EXPLOIT else 0.4
        evidence: dict[str, Any] = {
            "summary": f"{holder} lost {share:.0%} of its {'native' if token == NATIVE else token} balance "
                       f"within {activity.block.number - episode.first_block + 1} block(s): {reason}",
            "tx_hash": tx.hash,
            "first_tx_hash": episode.first_tx,
            "contract": holder,
            "token": token,
            "balance_before": str(episode.balance_before),
            "lost": str(episode.lost),
            "share": round(share, 4),
            "reason": reason,
            "control_changes": [{"block": b, "event": e, "tx_hash": h} for b, e, h in self._control.get(holder, ())],
            "amounts": [{"token": m.token, "amount": str(m.amount), "from": m.sender, "to": m.recipient,
                         "where": m.where} for m in sent],
            "takers": [{"address": t, "paid_in": str(p), "taken_out": str(o)} for t, (p, o) in ledger.items()],
            "addresses": [{"role": "victim", "address": holder}, *({"role": "taker", "address": t} for t in takers),
                          {"role": "tx_sender", "address": tx.sender}],
            "labels": [label(holder, "victim", confidence),
                       *(label(t, "attacker", confidence) for t in takers if kind is FindingType.EXPLOIT)],
            "confidence": confidence,
        }
        return Finding(KIND, severity, kind, chain_id, holder, activity.block.number, tx.hash,
                       # the severity is part of it: an episode that gets worse is news again
                       fingerprint(KIND, chain_id, holder, token, episode.first_tx, str(severity)), evidence)
