"""`flash-loan`: a transaction borrowed and repaid within itself, and somebody other than its lenders and pools
ended it poorer while its actor ended it richer.

Loans are read from the providers' events where they emit one (Aave v2 and v3 `FlashLoan`, Balancer's vault
`FlashLoan`, Uniswap V3 `Flash`), so logs alone suffice for them, and from the trace by mechanism, so lenders
never seen before are caught: a Uniswap V2 `swap` with callback data (a flash swap), an ERC-3156 `onFlashLoan`
callback, and the generic shape every flash loan has (dYdX's `callFunction` included): inside a frame of lender
L, tokens go to B, L calls B, and B pays at least as much back to L (or to whoever sent the tokens) before L's
frame ends.

A loan alone is never a finding: flash loans fund arbitrage, liquidations and collateral swaps all day. What is
reported is a loan together with
- profit: the actor (flows.actor and the borrowers) ends with a net gain in some token that was not minted to it
  (debt tokens and deposit receipts are minted, so leverage is not profit);
- imbalance: a third-party contract (not the actor, a lender or a pool that traded) ends with a net loss it was
  not paid for, or a pool was drained (its V2 invariant fell without a liquidity burn) or pumped and dumped.
Benign look-alikes left out on purpose: a contract redeeming its own token (WETH unwrapping, a vault or aToken
paying a withdrawal against burned shares) is not a loser; a contract that lost one token but gained another is a
trading counterparty (a Curve or lending pool) unless it lost at least `critical_share` of its balance; a loser
that lost less than `min_victim_share` of a known balance is an ordinary borrow. A price moved and left there is
what every arbitrage does, so on its own it is at most medium.

Severity: profit with a victim or a pumped-and-dumped pool is a high `exploit`, critical when a victim lost at
least `critical_share` of its balance before the transaction (the parent block's, moved by the block's earlier
transactions; unknown stays high); a victim or manipulation without profit to the actor, or profit with a large
one-way move, is medium `suspicious`; profit alone (an arbitrage, a liquidation) is low `info`, or nothing when
`report_profit_only` is false. The borrowers count as the actor's: a receiver tricked into paying for someone
else's loan is missed rather than an arbitrage's helper contract being called a victim.

This module must not do I/O; malformed logs and calldata are skipped, never raised on.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from math import log as ln
from typing import Any

from pydantic import Field, field_validator

from ... import log
from ...findings import Finding, FindingType, Severity, fingerprint
from .base import BALANCES, LOGS, TRACES, Analyzer, AnalyzerInfo, BlockActivity, Log, NoSettings, TxObserved, label
from .flows import (V2_SWAP, V2_SYNC, V3_SWAP, ZERO, Movement, actor, code_accounts, movements, net_flows, pools,
                    signed)
from .loans import LOG_DECODERS, V2_BURN, V2_MINT, Loan, log_loans, log_shape, merge, trace_loans

KIND = "flash-loan"
MAX_AMOUNTS = 200  # per-holder deltas listed in the evidence
_log = log.get("kamiyo.analyzers.flashloan")

class FlashLoanSettings(NoSettings):
    critical_share: float = Field(0.5,
        description="a victim's loss, as a share of its balance before the transaction, that is critical")
    min_victim_share: float = Field(0.1,
        description="below this share of a known balance a loss is an ordinary borrow, not a victim")
    price_factor: float = Field(2.0, gt=1, description="a pool price pushed this far (×, either way) is a large move")
    # a profitable loan with no loser (an arbitrage, a liquidation) is reported low/info: it keeps a trail of an
    # exploit whose victim this analyzer could not see, at a severity alerting at medium and above never pages on
    report_profit_only: bool = True

    @field_validator("critical_share", "min_victim_share")
    @classmethod
    def _share(cls, value: float) -> float:
        if not 0 < value <= 1:
            raise ValueError(f"must be a share in (0, 1], got {value}")
        return value


# --- pools -----------------------------------------------------------------------------------------------------

@dataclass(slots=True)
class _Pool:
    prices: list[float] = field(default_factory=list)
    directions: set[int] = field(default_factory=set)  # +1 token0 in, -1 token1 in
    reserves: tuple[int, int] | None = None
    fell: str | None = None  # the Sync at which the V2 invariant fell
    first_known: bool = False  # whether prices[0] is the price before the transaction


def _v2_step(logs: tuple[Log, ...], k: int, r0: int, r1: int) -> tuple[str, tuple[int, int] | None, int]:
    """What the Sync at `k` closed (the pair logs its Swap, Mint or Burn right after it): the kind, the reserves
    before it when they follow from the amounts, and the swap direction."""
    nxt = logs[k + 1] if k + 1 < len(logs) and logs[k + 1].address == logs[k].address else None
    head = nxt.topics[0] if nxt is not None and nxt.topics else None
    if head == V2_SWAP and nxt is not None and (shape := log_shape(nxt, 2, 4)) is not None:
        in0, in1, out0, out1 = shape[1]
        direction = 1 if in0 and out1 else -1 if in1 and out0 else 0
        return "swap", (r0 - in0 + out0, r1 - in1 + out1), direction
    if head == V2_MINT and nxt is not None and (shape := log_shape(nxt, 1, 2)) is not None:
        return "mint", (r0 - shape[1][0], r1 - shape[1][1]), 0
    if head == V2_BURN and nxt is not None and (shape := log_shape(nxt, 2, 2)) is not None:
        return "burn", (r0 + shape[1][0], r1 + shape[1][1]), 0
    return "sync", None, 0


def pool_signals(tx: TxObserved, factor: float) -> dict[str, dict[str, Any]]:
    """Pools the transaction drained (V2 invariant fell without a burn), pumped and dumped (traded both ways over
    a price range of at least `factor`) or moved by at least `factor` and left there."""
    seen: dict[str, _Pool] = {}
    for k, entry in enumerate(tx.logs):
        head = entry.topics[0] if entry.topics else None
        if head == V2_SYNC and (shape := log_shape(entry, 0, 2)) is not None:
            r0, r1 = shape[1]
            kind, before, direction = _v2_step(tx.logs, k, r0, r1)
            pool = seen.setdefault(entry.address, _Pool())
            if pool.reserves is None and before is not None and min(before) > 0:
                pool.reserves, pool.first_known = before, True
                pool.prices.append(before[1] / before[0])
            if pool.reserves is not None and kind != "burn" and r0 * r1 < pool.reserves[0] * pool.reserves[1]:
                pool.fell = pool.fell or f"log:{entry.log_index}"
            pool.reserves = (r0, r1)
            if r0 and r1:
                pool.prices.append(r1 / r0)
            pool.directions.add(direction)
        elif head == V3_SWAP and (shape := log_shape(entry, 2, 5)) is not None:
            amount0, sqrt_price = signed(shape[1][0]), shape[1][2]
            pool = seen.setdefault(entry.address, _Pool())
            if sqrt_price:
                pool.prices.append(float(sqrt_price) ** 2)
            pool.directions.add(1 if amount0 > 0 else -1)
    out = {}
    for address, pool in seen.items():
        prices = pool.prices
        span = max(prices) / min(prices) if len(prices) > 1 else 1.0
        if pool.fell:
            out[address] = {"pool": address, "signal": "drained", "where": pool.fell}
        elif {1, -1} <= pool.directions and span >= factor:
            out[address] = {"pool": address, "signal": "pumped-and-dumped", "price_span": round(span, 4)}
        elif pool.first_known and len(prices) > 1 and abs(ln(prices[-1] / prices[0])) >= ln(factor):
            out[address] = {"pool": address, "signal": "moved", "price_ratio": round(prices[-1] / prices[0], 4)}
    return out


# --- who gained, who lost --------------------------------------------------------------------------------------

def _gains(moves: list[Movement], side: set[str]) -> dict[str, int]:
    """What `side` gained per token from outside itself, leaving out what was minted to it (a token issued by
    ZERO or by the token contract itself: debt tokens, deposit receipts), which is a claim, not money."""
    out: dict[str, int] = defaultdict(int)
    for m in moves:
        if m.recipient in side and m.sender not in side and m.sender not in (ZERO, m.token):
            out[m.token] += m.amount
        elif m.sender in side and m.recipient not in side:
            out[m.token] -= m.amount
    return out


def _redeemers(moves: list[Movement]) -> set[str]:
    """Token contracts that took back (burned, or received) more of their own token than they issued: paying out
    a withdrawal against it (WETH unwrapping, a vault or aToken redeeming shares) is not a loss."""
    own: dict[str, int] = defaultdict(int)
    for m in moves:
        if m.recipient in (ZERO, m.token) and m.sender != m.token:
            own[m.token] += m.amount
        elif m.sender in (ZERO, m.token) and m.recipient not in (ZERO, m.token):
            own[m.token] -= m.amount
    return {token for token, value in own.items() if value > 0}


@dataclass(frozen=True, slots=True)
class _Loss:
    holder: str
    token: str
    amount: int
    before: int | None  # balance before the transaction, when known
    reason: str  # unpaid-loss, large-share, pool-drained; for counterparties: traded, small-share

    @property
    def share(self) -> float | None:
        return self.amount / self.before if self.before and self.before > 0 else None

    def evidence(self) -> dict[str, Any]:
        share = self.share
        return {"address": self.holder, "token": self.token, "loss": str(self.amount),
                "balance_before": None if self.before is None else str(self.before),
                "share": None if share is None else round(share, 4), "reason": self.reason}


_Earlier = Callable[[int, tuple[str, str]], int]  # (position in the block, (holder, token)) -> delta before it


class FlashLoan(Analyzer):
    info = AnalyzerInfo(
        id=KIND,
        title="Flash-loan exploit",
        description="A transaction took a flash loan and repaid it, its actor ended richer and a third-party "
                    "contract (or a pool it drained or pumped and dumped) ended poorer.",
        severity=Severity.HIGH,
        # a loan, a profit and an unpaid loss together are an exploit's shape; the misses are protocols whose loss
        # is paid for in a way flows cannot see (an off-chain debt, a loan recorded without a token)
        confidence=0.7,
        consumes=frozenset({LOGS, TRACES, BALANCES}),
    )
    Settings = FlashLoanSettings

    def analyze(self, activity: BlockActivity) -> list[Finding]:
        flows: dict[int, dict[tuple[str, str], int]] = {}

        def earlier(pos: int, key: tuple[str, str]) -> int:
            total = 0
            for j in range(pos):
                if j not in flows:
                    flows[j] = net_flows(movements(activity.transactions[j]))
                total += flows[j].get(key, 0)
            return total

        out = []
        for pos, tx in enumerate(activity.transactions):
            if not tx.success or (tx.trace is None and not any(e.topics and e.topics[0] in LOG_DECODERS
                                                                 for e in tx.logs)):
                continue
            moves = movements(tx)
            loans = merge(log_loans(tx, moves) + (trace_loans(tx, moves) if tx.trace is not None else []))
            if loans:
                finding = self._assess(activity, pos, tx, moves, loans, earlier)
                if finding is not None:
                    out.append(finding)
        return out

    def _assess(self, activity: BlockActivity, pos: int, tx: TxObserved, moves: list[Movement], loans: list[Loan],
                earlier: _Earlier) -> Finding | None:
        s = self.settings
        lenders = {x.lender for x in loans} | {x.holder for x in loans if x.holder}
        signals = pool_signals(tx, s.price_factor)
        traded = pools(tx) | set(signals)
        side = (actor(tx) | {x.borrower for x in loans}) - lenders - traded - {ZERO}
        gains = _gains(moves, side)
        profit = {token: v for token, v in gains.items() if v > 0}
        drained = {p for p, sig in signals.items() if sig["signal"] == "drained"}
        victims, others = self._losses(activity, pos, tx, moves, side | lenders | traded, drained, earlier)
        manipulated = [sig for sig in signals.values() if sig["signal"] == "pumped-and-dumped"]
        moved = [sig for sig in signals.values() if sig["signal"] == "moved"]
        critical = any(v.share is not None and v.share >= s.critical_share for v in victims)
        if profit and (victims or manipulated):
            severity, type_ = (Severity.CRITICAL if critical else Severity.HIGH), FindingType.EXPLOIT
            confidence = 0.85 if critical else 0.75 if victims else 0.6
        elif victims or manipulated or (profit and moved):
            severity, type_, confidence = Severity.MEDIUM, FindingType.SUSPICIOUS, 0.4
        elif profit and s.report_profit_only:
            severity, type_, confidence = Severity.LOW, FindingType.INFO, 0.9
        else:
            return None
        exploit = type_ == FindingType.EXPLOIT
        subject = (max(victims, key=lambda v: v.share or 0).holder if victims
                   else (manipulated or moved or [{"pool": loans[0].borrower}])[0]["pool"])
        evidence = {
            "tx_hash": tx.hash,
            "loans": [x.evidence() for x in loans],
            "profit": [{"token": t, "amount": str(v)} for t, v in sorted(profit.items())],
            "spent": [{"token": t, "amount": str(-v)} for t, v in sorted(gains.items()) if v < 0],
            "victims": [v.evidence() for v in victims],
            "counterparties": [v.evidence() for v in others],
            "pools": sorted(signals.values(), key=lambda sig: sig["pool"]),
            # every holder's delta: where the money went when it did not reach the actor (a medium finding)
            "amounts": [{"holder": h, "token": t, "amount": str(d)}
                        for (h, t), d in sorted(net_flows(moves).items())][:MAX_AMOUNTS],
            "addresses": _addresses(tx, loans, side, victims),
            "labels": _labels(tx, loans, side, victims, exploit, confidence),
            "confidence": confidence,
            "summary": _summary(loans, profit, victims, manipulated + moved, severity),
        }
        return Finding(kind=KIND, severity=severity, type=type_, chain_id=activity.block.chain_id, subject=subject,
                       block=activity.block.number, tx_hash=tx.hash,
                       fingerprint=fingerprint(KIND, activity.block.chain_id, tx.hash), evidence=evidence)

    def _losses(self, activity: BlockActivity, pos: int, tx: TxObserved, moves: list[Movement], insiders: set[str],
                drained: set[str], earlier: _Earlier) -> tuple[list[_Loss], list[_Loss]]:
        """Third parties' losses: victims, and counterparties whose loss was paid for or too small to judge."""
        s, net = self.settings, net_flows(moves)
        contracts, redeemed = code_accounts(tx), _redeemers(moves)
        gainers = {holder for (holder, _), delta in net.items() if delta > 0}
        victims, others = [], []
        for (holder, token), delta in sorted(net.items()):
            if delta >= 0:
                continue
            drained_pool = holder in drained
            if not drained_pool and (holder not in contracts or holder in insiders or holder in redeemed):
                continue
            base = activity.balances.get((holder, token))
            before = None if base is None else base + earlier(pos, (holder, token))
            loss = _Loss(holder, token, -delta, before, "pool-drained" if drained_pool else
                         "traded" if holder in gainers else "unpaid-loss")
            share = loss.share
            if loss.reason == "traded":
                if share is not None and share >= s.critical_share:
                    victims.append(_Loss(holder, token, -delta, before, "large-share"))
                else:
                    others.append(loss)
            elif loss.reason == "unpaid-loss" and share is not None and share < s.min_victim_share:
                others.append(_Loss(holder, token, -delta, before, "small-share"))
            else:
                victims.append(loss)
        return victims, others


def _addresses(tx: TxObserved, loans: list[Loan], side: set[str], victims: list[_Loss]) -> list[dict[str, str]]:
    out = [{"role": "tx_sender", "address": tx.sender}]
    if tx.to:
        out.append({"role": "tx_to", "address": tx.to})
    rows = [("borrower", x.borrower) for x in loans] + [("lender", x.lender) for x in loans]
    rows += [("actor", a) for a in sorted(side)] + [("victim", v.holder) for v in victims]
    seen = {(row["role"], row["address"]) for row in out}
    for role, address in rows:
        if (role, address) not in seen:
            seen.add((role, address))
            out.append({"role": role, "address": address})
    return out


def _labels(tx: TxObserved, loans: list[Loan], side: set[str], victims: list[_Loss], exploit: bool,
            confidence: float) -> list[dict[str, Any]]:
    out = [label(lender, "flash-lender", 0.9) for lender in sorted({x.lender for x in loans})]
    if exploit:
        out += [label(a, "attacker", confidence) for a in sorted(side)]
        out += [label(v, "victim", confidence) for v in sorted({v.holder for v in victims})]
    else:  # an arbitrageur or a liquidator is not called an attacker
        out += [label(b, "flash-loan-borrower", 0.9) for b in sorted({x.borrower for x in loans})]
    return out


def _summary(loans: list[Loan], profit: dict[str, int], victims: list[_Loss], pools_: list[dict], severity) -> str:
    first = loans[0]
    text = (f"{len(loans)} flash loan(s), first {first.amount} of {first.token or 'an unknown token'} from "
            f"{first.lender} ({first.provider}) to {first.borrower}")
    if victims:
        worst = max(victims, key=lambda v: v.share or 0)
        share = f" ({worst.share:.0%} of its balance)" if worst.share is not None else ""
        text += (f"; {len(victims)} third-party loss(es), the worst {worst.amount} of {worst.token} by "
                 f"{worst.holder}{share}")
    if pools_:
        text += "; pool(s) " + ", ".join(f"{p['pool']} {p['signal']}" for p in pools_)
    text += f"; actor gained {len(profit)} token(s)" if profit else "; actor gained nothing"
    return text + f" [{severity}]"
