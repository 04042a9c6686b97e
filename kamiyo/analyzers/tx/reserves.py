"""`reserve-manipulation`: a pool's price pushed far and brought back within one transaction by its own actor.

Read from the pools' standard events:
- Uniswap V2 and its forks: `Sync(reserve0, reserve1)` after every reserve change, adjacent to the `Swap`
  (`amount0In, amount1In, amount0Out, amount1Out`) of a trade. Each Sync is a point of the price path
  (reserve1 / reserve0); the reserves before the pool's first trade are its Sync's minus what came in plus what
  went out, so the path starts where the pool stood before the transaction touched it.
- Uniswap V3: `Swap(amount0, amount1, sqrtPriceX96, liquidity, tick)` states the price after each trade,
  (sqrtPriceX96 / 2^96)^2. The price before the first trade is left out rather than estimated from the final
  liquidity (a trade crossing ticks would make the estimate wrong by any amount): the path is the prices after
  each trade, and a round trip shows its excursion anyway when it comes back.

Per pool and transaction: the excursion (highest price over lowest on the path, minus one) and the directions
traded (token0 into the pool, or out of it). A finding needs an excursion of at least `min_price_move` and both
directions traded by the transaction's actor. Everything in one transaction is its actor's program (`flows.actor`
and the routers and contracts it drives, which the Swap logs name as sender and recipient), except a trade made
by or for a third party that lost funds in it: that is the victim trading at the pushed price, so its direction
does not count for the actor's round trip. One-way trades, however large, are not manipulation (a whale's market
order, an arbitrage that moves each pool one way toward the others), nor are round trips that barely move the
price. Traces are used when present, for native value and for which accounts are contracts.

Pushing a price and bringing it back costs fees and slippage twice, so it pays only if something in between
paid the actor; severity says whether the transaction shows that payer:
- medium `suspicious` by default;
- high `exploit` when a third-party contract (a contract the transaction shows, not its actor, not a pool that
  traded) ended the transaction poorer in a token that is not its own and paid some of it to the actor or into
  the manipulated pool (the lending market that lent against the inflated price, the vault that minted shares
  at the deflated one, the strategy that swapped at the pushed price). A wrapper paying out native coin for
  its burned tokens (WETH's `Withdrawal`) is not a loss.

Malformed Sync / Swap logs (wrong topic count, short or long data, dirty address words, values beyond their
declared widths) are skipped, never raised on. This module must not do I/O.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from pydantic import Field, field_validator

from ... import log
from ...findings import Finding, FindingType, Severity, fingerprint
from .base import LOGS, TRACES, Analyzer, AnalyzerInfo, BlockActivity, Log, NoSettings, TxObserved, label
from .flows import NATIVE, V2_SWAP, V2_SYNC, V3_SWAP, WETH_WITHDRAWAL, ZERO, actor, code_accounts, movements
from .flows import net_flows, pools, signed, word_address, word_int

KIND = "reserve-manipulation"
Q96 = 1 << 96
MAX_UINT112, MAX_UINT128, MAX_UINT160 = (1 << 112) - 1, (1 << 128) - 1, (1 << 160) - 1
MAX_TICK = 887272  # Uniswap V3's TickMath bound
IN, OUT = "token0-in", "token0-out"

_log = log.get("kamiyo.analyzers.reserves")


class ReserveSettings(NoSettings):
    min_price_move: float = Field(0.2,
        description="the excursion (highest / lowest price on the path, minus one) to report")

    @field_validator("min_price_move")
    @classmethod
    def _positive(cls, value: float) -> float:
        if not value > 0:
            raise ValueError(f"min_price_move is a relative excursion (0.2 = 20%) and must be above 0, not {value}")
        return value


@dataclass(frozen=True, slots=True)
class Point:
    """The pool's state at one place of the transaction. price is token1 per token0 in raw units, None when a
    reserve is zero (no price)."""

    where: str  # "log:<index>", or "before:log:<index>" for the state derived from the first trade
    price: Fraction | None
    reserve0: int | None = None
    reserve1: int | None = None
    sqrt_price_x96: int | None = None
    liquidity: int | None = None
    tick: int | None = None


@dataclass(frozen=True, slots=True)
class Trade:
    where: str
    into0: int  # token0 into the pool (negative: out of it)
    into1: int
    sender: str
    recipient: str

    @property
    def direction(self) -> str | None:
        if self.into0 or self.into1:
            return IN if self.into0 > 0 or (self.into0 == 0 and self.into1 < 0) else OUT
        return None


@dataclass(slots=True)
class PoolPath:
    pool: str
    version: str  # "v2" or "v3"
    points: list[Point] = field(default_factory=list)
    trades: list[Trade] = field(default_factory=list)

    def excursion(self) -> Fraction:
        prices = [p.price for p in self.points if p.price is not None]
        if len(prices) < 2:
            return Fraction(0)
        return max(prices) / min(prices) - 1


def _words(entry: Log, topics: int, words: int) -> bool:
    """Whether the log has exactly this many topics and 0x-prefixed data of exactly this many words."""
    return len(entry.topics) == topics and entry.data[:2] in ("0x", "0X") and len(entry.data) == 2 + 64 * words


def read_sync(entry: Log) -> tuple[int, int] | None:
    if not _words(entry, 1, 2):
        return None
    r0, r1 = word_int(entry.data, 0), word_int(entry.data, 1)
    if r0 is None or r1 is None or r0 > MAX_UINT112 or r1 > MAX_UINT112:
        return None
    return r0, r1


def read_v2_swap(entry: Log) -> Trade | None:
    if not _words(entry, 3, 4):
        return None
    sender, recipient = word_address(entry.topics[1]), word_address(entry.topics[2])
    amounts = [word_int(entry.data, i) for i in range(4)]
    if sender is None or recipient is None or any(a is None for a in amounts):
        return None
    in0, in1, out0, out1 = amounts  # type: ignore[misc]
    return Trade(f"log:{entry.log_index}", in0 - out0, in1 - out1, sender, recipient)


def read_v3_swap(entry: Log) -> tuple[Trade, Point] | None:
    if not _words(entry, 3, 5):
        return None
    sender, recipient = word_address(entry.topics[1]), word_address(entry.topics[2])
    words = [word_int(entry.data, i) for i in range(5)]
    if sender is None or recipient is None or any(w is None for w in words):
        return None
    amount0, amount1, sqrt_price, liquidity, tick = words  # type: ignore[misc]
    tick = signed(tick)
    if not 0 < sqrt_price <= MAX_UINT160 or liquidity > MAX_UINT128 or abs(tick) > MAX_TICK:
        return None
    where = f"log:{entry.log_index}"
    point = Point(where, Fraction(sqrt_price * sqrt_price, Q96 * Q96), sqrt_price_x96=sqrt_price,
                  liquidity=liquidity, tick=tick)
    return Trade(where, signed(amount0), signed(amount1), sender, recipient), point


def _reserve_point(where: str, r0: int, r1: int) -> Point:
    return Point(where, Fraction(r1, r0) if r0 > 0 and r1 > 0 else None, reserve0=r0, reserve1=r1)


Event = tuple[str, Any]  # ("sync", (r0, r1)) | ("v2", Trade) | ("v3", (Trade, Point))


def _parse(tx: TxObserved, entry: Log) -> Event | None:
    head = entry.topics[0] if entry.topics else None
    if head == V2_SYNC:
        event: Event | None = None if (reserves := read_sync(entry)) is None else ("sync", reserves)
    elif head == V2_SWAP:
        event = None if (trade := read_v2_swap(entry)) is None else ("v2", trade)
    elif head == V3_SWAP:
        event = None if (read := read_v3_swap(entry)) is None else ("v3", read)
    else:
        return None
    if event is None:
        # debug, not warning: anyone can emit these topics with any layout; a line per spam log helps nobody
        _log.debug("reserves.log_skipped", tx_hash=tx.hash, log_index=entry.log_index, contract=entry.address,
                   topic0=head, topics=len(entry.topics), data_chars=len(entry.data))
    return event


def price_paths(tx: TxObserved) -> dict[str, PoolPath]:
    """Every pool's price path and trades in the transaction, in log order. A pool is read as the version of its
    first event; events of the other version from the same address are ignored (no pool emits both)."""
    parsed = [_parse(tx, entry) for entry in tx.logs]
    paths: dict[str, PoolPath] = {}
    for position, (entry, event) in enumerate(zip(tx.logs, parsed)):
        if event is None:
            continue
        kind, value = event
        path = paths.setdefault(entry.address, PoolPath(entry.address, "v3" if kind == "v3" else "v2"))
        if path.version != ("v3" if kind == "v3" else "v2"):
            continue
        if kind == "sync":
            path.points.append(_reserve_point(f"log:{entry.log_index}", *value))
        elif kind == "v3":
            path.trades.append(value[0])
            path.points.append(value[1])
        else:
            if not path.trades:
                _start_before(path, value, tx.logs, parsed, position)
            path.trades.append(value)
    return {pool: path for pool, path in paths.items() if path.trades}


def _paired_sync(pool: str, logs: tuple[Log, ...], parsed: list[Event | None],
                 position: int) -> tuple[bool, tuple[int, int]] | None:
    """(whether it comes after, reserves) of a Swap's Sync: the pool's Sync right before it (Uniswap's `_update`
    emits it, then `swap` the Swap), else right after it (forks emit them the other way round). A Sync further
    away belongs to something else (a mint, a `sync()`)."""
    for at, after in ((position - 1, False), (position + 1, True)):
        event = parsed[at] if 0 <= at < len(parsed) else None
        if event is not None and event[0] == "sync" and logs[at].address == pool:
            return after, event[1]
    return None


def _start_before(path: PoolPath, trade: Trade, logs: tuple[Log, ...], parsed: list[Event | None],
                  position: int) -> None:
    """Put the reserves before the pool's first trade at the head of its path, when the trade's Sync is the
    pool's first in the transaction (otherwise an earlier point already stands for the start)."""
    paired = _paired_sync(path.pool, logs, parsed, position)
    if paired is None:
        return
    after, (r0, r1) = paired
    if len(path.points) != (0 if after else 1):  # the pool already had a Sync before this trade's
        return
    before0, before1 = r0 - trade.into0, r1 - trade.into1
    if before0 < 0 or before1 < 0:  # a Sync that does not add up with its Swap: no start rather than a wrong one
        return
    path.points.insert(0, _reserve_point(f"before:{trade.where}", before0, before1))


@dataclass(frozen=True, slots=True)
class Loss:
    holder: str
    token: str
    amount: int
    to_actor: bool  # some of it went straight to the transaction's actor
    to_pools: frozenset[str]  # pools that traded which received some of it


def third_party_losses(tx: TxObserved) -> list[Loss]:
    """Contracts, not the transaction's actor nor a pool that traded, that ended it poorer in a token other than
    themselves (a token contract selling its own fees is not robbed), and whom they paid."""
    moves = movements(tx)
    net = net_flows(moves)
    acting, traded, contracts = actor(tx), pools(tx), code_accounts(tx)
    unwrapped: dict[str, int] = defaultdict(int)  # wrapper -> native it owed for tokens burned by Withdrawal
    for entry in tx.logs:
        if entry.topics and entry.topics[0] == WETH_WITHDRAWAL and len(entry.topics) == 2:
            amount = word_int(entry.data)
            if amount is not None and len(entry.data) == 66:
                unwrapped[entry.address] += amount
    out = []
    for (holder, token), delta in sorted(net.items()):
        if token == NATIVE:
            delta += unwrapped.get(holder, 0)
        if (delta >= 0 or holder in acting or holder in traded or holder not in contracts or holder == token
                or holder == ZERO):
            continue
        recipients = {m.recipient for m in moves if m.sender == holder and m.token == token}
        out.append(Loss(holder, token, -delta, bool(recipients & acting), frozenset(recipients & traded)))
    return out


class ReserveManipulation(Analyzer):
    info = AnalyzerInfo(
        id=KIND,
        title="Pool price manipulated within a transaction",
        description="A pool's price moved beyond a threshold and back within one transaction, the same actor "
                    "trading it both ways; high when a third-party contract lost funds in that transaction.",
        severity=Severity.MEDIUM,
        # a round trip of that size only pays when someone in between overpays; the misses are actors that
        # rebalance a pool on purpose (a market maker's own thin pool) and, for high, a third party that traded
        # elsewhere at a fair price in the same transaction
        confidence=0.7,
        consumes=frozenset({LOGS, TRACES}),
    )
    Settings = ReserveSettings

    def analyze(self, activity: BlockActivity) -> list[Finding]:
        threshold = Fraction(str(self.settings.min_price_move))  # 0.2 is 1/5, not the float nearest it
        out = []
        for tx in activity.transactions:
            if not tx.success or not tx.logs:
                continue
            paths = {p: path for p, path in price_paths(tx).items() if path.excursion() >= threshold}
            if not paths:
                continue
            losses = third_party_losses(tx)
            for path in paths.values():
                finding = self._finding(activity, tx, path, losses)
                if finding is not None:
                    out.append(finding)
        return out

    def _finding(self, activity: BlockActivity, tx: TxObserved, path: PoolPath,
                 losses: list[Loss]) -> Finding | None:
        losers = {loss.holder for loss in losses}
        # in one transaction every trade is the actor's program, except one made by or for a third party that
        # lost funds: that is the victim trading at the pushed price, not the actor coming back
        directions = {t.direction for t in path.trades if not {t.sender, t.recipient} & losers}
        if not {IN, OUT} <= directions:
            return None
        victims = [loss for loss in losses if loss.to_actor or path.pool in loss.to_pools]
        severity, type_ = (Severity.HIGH, FindingType.EXPLOIT) if victims else (Severity.MEDIUM,
                                                                                  FindingType.SUSPICIOUS)
        return Finding(
            kind=KIND, severity=severity, type=type_, chain_id=activity.block.chain_id, subject=path.pool,
            block=activity.block.number, tx_hash=tx.hash,
            fingerprint=fingerprint(KIND, activity.block.chain_id, tx.hash, path.pool),
            evidence=_evidence(tx, path, victims, severity),
        )


def _point(p: Point) -> dict[str, Any]:
    out: dict[str, Any] = {"where": p.where, "price": None if p.price is None else float(p.price)}
    for name in ("reserve0", "reserve1", "sqrt_price_x96", "liquidity"):
        value = getattr(p, name)
        if value is not None:
            out[name] = str(value)
    if p.tick is not None:
        out["tick"] = p.tick
    return out


def _evidence(tx: TxObserved, path: PoolPath, victims: list[Loss], severity: Severity) -> dict[str, Any]:
    excursion = path.excursion()
    sequence = [t.direction for t in path.trades if t.direction is not None]
    changes = sum(1 for a, b in zip(sequence, sequence[1:]) if a != b)
    exploit = severity is Severity.HIGH
    confidence = 0.75 if exploit else 0.5
    acting = actor(tx)
    addresses = [{"role": "pool", "address": path.pool}]
    addresses += [{"role": "victim", "address": a} for a in sorted({v.holder for v in victims})]
    addresses.append({"role": "tx_sender", "address": tx.sender})
    if tx.to:
        addresses.append({"role": "tx_to", "address": tx.to})
    labels = [label(path.pool, "manipulated-pool", confidence)]
    if exploit:
        labels += [label(a, "victim", confidence) for a in sorted({v.holder for v in victims})]
        labels.append(label(tx.sender, "attacker", confidence))
        if tx.to and tx.to != tx.sender:
            labels.append(label(tx.to, "exploit-contract", confidence))
    summary = (f"pool {path.pool} ({path.version}) moved {float(excursion):.1%} and back within the transaction, "
               f"traded both ways ({changes} direction change(s))")
    if victims:
        summary += "; " + ", ".join(f"{v.holder} lost {v.amount} of {v.token}" for v in victims)
    return {
        "tx_hash": tx.hash,
        "pool": path.pool,
        "version": path.version,
        "excursion": float(excursion),
        "price_path": [_point(p) for p in path.points],
        "trades": [{"where": t.where, "direction": t.direction, "amount0_in": str(t.into0),
                    "amount1_in": str(t.into1), "sender": t.sender, "recipient": t.recipient,
                    "by_actor": t.sender in acting or t.recipient in acting} for t in path.trades],
        "direction_changes": changes,
        "victims": [{"holder": v.holder, "token": v.token, "delta": str(-v.amount), "paid_actor": v.to_actor}
                    for v in victims],
        "amounts": [{"holder": v.holder, "token": v.token, "delta": str(-v.amount)} for v in victims],
        "addresses": addresses,
        "labels": labels,
        "confidence": confidence,
        "summary": summary,
    }
