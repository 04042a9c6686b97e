"""`reserve-manipulation` over pool logs laid out as Uniswap V2 pairs and V3 pools emit them, with the ERC-20
`Transfer` logs that go with each trade. A small constant-product pair below produces them, so reserves, amounts
and transfers always add up. Topic hashes are the published values, written out so the module's are checked."""

from __future__ import annotations

import pydantic
import pytest

from kamiyo.analyzers.tx.base import BlockActivity, CallFrame, Log, TxObserved
from kamiyo.analyzers.tx.flows import TRANSFER
from kamiyo.analyzers.tx.reserves import (
    IN, OUT, ReserveManipulation, ReserveSettings, price_paths, third_party_losses,
)
from kamiyo.chains.blocks import BlockRef
from kamiyo.findings import FindingType, Severity, fingerprint

SYNC = "0x1c411e9a96e071241c2f21f7726b17ae89e3cab4c78be50e062b03a9fffbbad1"
V2_SWAP = "0xd78ad95fa46c994b6551d0da85fc275fe613ce37657fb8d5e3d130840159d822"
V3_SWAP = "0xc42079f94a6350d7e6235f29174924f928cc2ac818eb64fed8004e115fbcca67"
WITHDRAWAL = "0x7fcf532c15f0a6db0bd6d0e038bea71d30d808c7d98cb3bf7268a95bf5081b65"
MINT = "0x4c209b5fc8ad50758f13e2e1088ba56a560dff690a1c6fef26394f4c03821c4f"  # Mint(address,uint256,uint256)

CHAIN, BLOCK = 1, 18_500_000
EOA = "0x" + "e0" * 20
BOT = "0x" + "b0" * 20  # the contract the transaction calls
PAIR = "0x" + "a1" * 20
PAIR_B = "0x" + "a2" * 20
POOL3 = "0x" + "a3" * 20  # a V3 pool
T0 = "0x" + "70" * 20
T1 = "0x" + "71" * 20
USDC = "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"
WETH = "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"
LENDER = "0x" + "1e" * 20  # a lending market that lends against the pair's price
STRATEGY = "0x" + "57" * 20  # a vault strategy that swaps on the pair
FLASH = "0x" + "f1" * 20  # a flash lender
Q96 = 1 << 96
E = 10**18


def test_topics_are_the_published_hashes():
    from kamiyo.analyzers.tx import flows
    assert (flows.V2_SYNC, flows.V2_SWAP, flows.V3_SWAP, flows.WETH_WITHDRAWAL) == (SYNC, V2_SWAP, V3_SWAP,
                                                                                     WITHDRAWAL)


def word(value: str | int) -> str:
    if isinstance(value, int):
        return f"{value % (1 << 256):064x}"  # negatives as two's complement, as int256 is encoded
    return value.removeprefix("0x").rjust(64, "0")


def data(*values: str | int) -> str:
    return "0x" + "".join(word(v) for v in values)


def topic(value: str) -> str:
    return "0x" + word(value)


def transfer(token: str, src: str, dst: str, amount: int) -> Log:
    return Log(token, (TRANSFER, topic(src), topic(dst)), data(amount), 0)


def sync(pool: str, r0: int, r1: int) -> Log:
    return Log(pool, (SYNC,), data(r0, r1), 0)


def v2_swap(pool: str, sender: str, to: str, in0: int = 0, in1: int = 0, out0: int = 0, out1: int = 0) -> Log:
    return Log(pool, (V2_SWAP, topic(sender), topic(to)), data(in0, in1, out0, out1), 0)


def v3_swap(pool: str, sender: str, recipient: str, amount0: int, amount1: int, sqrt_price: int,
            liquidity: int = 10**21, tick: int = 0) -> Log:
    return Log(pool, (V3_SWAP, topic(sender), topic(recipient)), data(amount0, amount1, sqrt_price, liquidity, tick),
               0)


class Pair:
    """A constant-product pair without fees, emitting what a Uniswap V2 pair emits for each trade."""

    def __init__(self, address: str, r0: int, r1: int, token0: str = T0, token1: str = T1) -> None:
        self.address, self.r0, self.r1, self.token0, self.token1 = address, r0, r1, token0, token1

    def sell0(self, trader: str, amount: int, fork_order: bool = False) -> list[Log]:
        """`trader` pays `amount` of token0 and receives token1."""
        out1 = self.r1 * amount // (self.r0 + amount)
        self.r0, self.r1 = self.r0 + amount, self.r1 - out1
        moves = [transfer(self.token0, trader, self.address, amount), transfer(self.token1, self.address, trader,
                                                                              out1)]
        events = [sync(self.address, self.r0, self.r1), v2_swap(self.address, trader, trader, in0=amount,
                                                                out1=out1)]
        return moves + (events[::-1] if fork_order else events)

    def sell1(self, trader: str, amount: int, fork_order: bool = False) -> list[Log]:
        out0 = self.r0 * amount // (self.r1 + amount)
        self.r0, self.r1 = self.r0 - out0, self.r1 + amount
        moves = [transfer(self.token1, trader, self.address, amount), transfer(self.token0, self.address, trader,
                                                                              out0)]
        events = [sync(self.address, self.r0, self.r1), v2_swap(self.address, trader, trader, in1=amount,
                                                                out0=out0)]
        return moves + (events[::-1] if fork_order else events)


def tx(*logs: Log, sender: str = EOA, to: str | None = BOT, trace: CallFrame | None = None,
       hash_: str = "0x" + "c1" * 32, success: bool = True) -> TxObserved:
    numbered = tuple(Log(e.address, e.topics, e.data, i) for i, e in enumerate(logs))
    return TxObserved(hash_, 0, sender, to, 0, "0x", success, numbered, trace)


def block(*txs: TxObserved) -> BlockActivity:
    return BlockActivity(BlockRef(CHAIN, BLOCK, "0x" + "bb" * 32, "0x" + "ba" * 32), txs,
                         has_traces=any(t.trace is not None for t in txs))


def run(*txs: TxObserved, analyzer: ReserveManipulation | None = None):
    return (analyzer or ReserveManipulation()).analyze(block(*txs))


def pump_and_dump(between: tuple[Log, ...] = (), fork_order: bool = False, size: int = 1000 * E) -> list[Log]:
    """Sell `size` token0 into a 1000/1000 pair (its price falls to a quarter), then sell back what it gave."""
    pair = Pair(PAIR, 1000 * E, 1000 * E)
    pump = pair.sell0(BOT, size, fork_order)
    got = pair.r1 and 1000 * E - pair.r1
    return [*pump, *between, *pair.sell1(BOT, got, fork_order)]


# ------------------------------------------------------------------------------------------------ medium


@pytest.mark.parametrize("fork_order", [False, True], ids=["sync-then-swap", "swap-then-sync"])
def test_a_round_trip_that_moves_the_price_is_medium_with_its_path(fork_order):
    [finding] = run(tx(*pump_and_dump(fork_order=fork_order)))
    assert (finding.kind, finding.severity, finding.type) == ("reserve-manipulation", Severity.MEDIUM,
                                                              FindingType.SUSPICIOUS)
    assert (finding.subject, finding.block, finding.tx_hash) == (PAIR, BLOCK, "0x" + "c1" * 32)
    ev = finding.evidence
    assert (ev["pool"], ev["version"], ev["excursion"]) == (PAIR, "v2", 3.0)  # 1 → 0.25 → 1
    assert [(p["reserve0"], p["reserve1"], p["price"]) for p in ev["price_path"]] == [
        (str(1000 * E), str(1000 * E), 1.0), (str(2000 * E), str(500 * E), 0.25),
        (str(1000 * E), str(1000 * E), 1.0)]
    assert ev["price_path"][0]["where"].startswith("before:log:")  # derived from the first trade
    assert [t["direction"] for t in ev["trades"]] == [IN, OUT] and ev["direction_changes"] == 1
    assert ev["trades"][0]["amount0_in"] == str(1000 * E) and ev["trades"][0]["amount1_in"] == str(-500 * E)
    assert all(t["by_actor"] for t in ev["trades"])
    assert ev["victims"] == [] and ev["amounts"] == []
    assert {(lab["entity"], lab["label"]) for lab in ev["labels"]} == {(PAIR, "manipulated-pool")}
    assert PAIR in ev["summary"] and 0 < ev["confidence"] <= 1


def test_a_v3_round_trip_is_read_from_the_prices_after_each_swap():
    logs = (v3_swap(POOL3, BOT, BOT, -500, 1000, 2 * Q96),  # token1 in: the price of token0 doubles twice
            v3_swap(POOL3, BOT, BOT, 500, -990, Q96, tick=-5))
    [finding] = run(tx(*logs))
    ev = finding.evidence
    assert (finding.severity, ev["version"], ev["excursion"]) == (Severity.MEDIUM, "v3", 3.0)
    assert [(p["price"], p["sqrt_price_x96"], p["tick"]) for p in ev["price_path"]] == [
        (4.0, str(2 * Q96), 0), (1.0, str(Q96), -5)]
    assert [t["direction"] for t in ev["trades"]] == [OUT, IN]
    assert [t["amount0_in"] for t in ev["trades"]] == ["-500", "500"]


def test_the_start_before_the_first_trade_counts_toward_the_excursion():
    # out to 0.25 and only back to 0.8: the derived start (1.0) is the top of the path
    pair = Pair(PAIR, 1000 * E, 1000 * E)
    logs = pair.sell0(BOT, 1000 * E) + pair.sell1(BOT, 300 * E)
    [path] = price_paths(tx(*logs)).values()
    assert [p.where.split(":")[0] for p in path.points] == ["before", "log", "log"]
    assert float(path.excursion()) == pytest.approx(3.0)


def test_a_mint_before_the_first_trade_leaves_its_sync_as_the_start():
    mint = [transfer(T0, BOT, PAIR, 10 * E), transfer(T1, BOT, PAIR, 10 * E), sync(PAIR, 1010 * E, 1010 * E),
            Log(PAIR, (MINT, topic(BOT)), data(10 * E, 10 * E), 0)]
    pair = Pair(PAIR, 1010 * E, 1010 * E)
    [path] = price_paths(tx(*mint, *pair.sell0(BOT, 1010 * E), *pair.sell1(BOT, 505 * E))).values()
    assert [p.where.split(":")[0] for p in path.points] == ["log", "log", "log"]  # nothing derived
    assert path.points[0].reserve0 == 1010 * E


# ------------------------------------------------------------------------------------------------ high


def test_a_lending_market_paying_the_actor_at_the_pushed_price_makes_it_an_exploit():
    borrow = (Log(LENDER, ("0x" + "0b" * 32, topic(BOT)), data(5000), 0), transfer(USDC, LENDER, BOT, 5000))
    [finding] = run(tx(*pump_and_dump(between=borrow)))
    assert (finding.severity, finding.type) == (Severity.HIGH, FindingType.EXPLOIT)
    ev = finding.evidence
    assert ev["victims"] == [{"holder": LENDER, "token": USDC, "delta": "-5000", "paid_actor": True}]
    assert ev["amounts"] == [{"holder": LENDER, "token": USDC, "delta": "-5000"}]
    assert {"role": "victim", "address": LENDER} in ev["addresses"]
    labels = {(lab["entity"], lab["label"]) for lab in ev["labels"]}
    assert {(LENDER, "victim"), (EOA, "attacker"), (BOT, "exploit-contract"), (PAIR, "manipulated-pool")} == labels
    assert LENDER in ev["summary"]


def test_a_strategy_swapping_into_the_pushed_pool_is_a_victim_and_its_trade_is_not_the_actors():
    pair = Pair(PAIR, 1000 * E, 1000 * E)
    pump = pair.sell0(BOT, 1000 * E)
    harvest = [Log(STRATEGY, ("0x" + "4a" * 32,), "0x", 0), *pair.sell0(STRATEGY, 100 * E)]  # sells into a dip
    dump = pair.sell1(BOT, 500 * E)
    [finding] = run(tx(*pump, *harvest, *dump))
    assert (finding.severity, finding.type) == (Severity.HIGH, FindingType.EXPLOIT)
    assert [v["holder"] for v in finding.evidence["victims"]] == [STRATEGY]
    assert finding.evidence["victims"][0]["token"] == T0 and finding.evidence["victims"][0]["paid_actor"] is False
    assert [t["by_actor"] for t in finding.evidence["trades"]] == [True, False, True]


def test_a_reverse_leg_made_only_by_the_victim_is_no_round_trip_of_the_actor():
    pair = Pair(PAIR, 1000 * E, 1000 * E)
    logs = [*pair.sell0(BOT, 1000 * E), Log(STRATEGY, ("0x" + "4a" * 32,), "0x", 0),
            *pair.sell1(STRATEGY, 400 * E)]
    assert third_party_losses(tx(*logs))[0].holder == STRATEGY
    assert run(tx(*logs)) == []


# ------------------------------------------------------------------------------------------------ look-alikes


def test_a_single_big_one_way_swap_is_not_manipulation():
    pair = Pair(PAIR, 1000 * E, 1000 * E)
    logs = pair.sell0(BOT, 3000 * E)
    [path] = price_paths(tx(*logs)).values()
    assert path.excursion() > 10  # the price fell to a sixteenth …
    assert run(tx(*logs)) == []  # … but nobody brought it back
    assert run(tx(v3_swap(POOL3, BOT, BOT, -500, 1000, 4 * Q96), v3_swap(POOL3, BOT, BOT, -1, 2, Q96))) == []


def test_an_arbitrage_across_two_pools_funded_by_a_flash_loan_is_not_reported():
    cheap, dear = Pair(PAIR, 1000 * E, 1000 * E), Pair(PAIR_B, 1000 * E, 2000 * E)
    loan = [Log(FLASH, ("0x" + "f1" * 32,), "0x", 0), transfer(T1, FLASH, BOT, 200 * E)]
    buy = cheap.sell1(BOT, 200 * E)  # token0 out of the cheap pool …
    sell = dear.sell0(BOT, 1000 * E - cheap.r0)  # … and into the dear one: the prices converge
    repay = [transfer(T1, BOT, FLASH, 201 * E)]
    arbitrage = tx(*loan, *buy, *sell, *repay)
    paths = price_paths(arbitrage)
    assert all(p.excursion() >= 0.2 for p in paths.values())  # both moved a lot, each one way
    assert [{t.direction for t in p.trades} for p in paths.values()] == [{OUT}, {IN}]
    assert third_party_losses(arbitrage) == []  # the lender was repaid with a fee
    assert run(arbitrage) == []


def test_many_small_swaps_both_ways_that_barely_move_the_price_are_not_reported():
    pair = Pair(PAIR, 10**6 * E, 10**6 * E)
    logs = []
    for _ in range(10):
        logs += pair.sell0(BOT, 1000 * E) + pair.sell1(BOT, 1000 * E)
    [path] = price_paths(tx(*logs)).values()
    assert {t.direction for t in path.trades} == {IN, OUT} and path.excursion() < 0.01
    assert run(tx(*logs)) == []
    assert len(run(tx(*logs), analyzer=ReserveManipulation(ReserveSettings(min_price_move=0.001)))) == 1


def test_a_pool_with_zero_reserves_never_divides_by_zero():
    empty = [sync(PAIR, 100, 0), v2_swap(PAIR, BOT, BOT, in0=100), sync(PAIR, 0, 0), v2_swap(PAIR, BOT, BOT,
                                                                                            out0=100)]
    [path] = price_paths(tx(*empty)).values()
    assert [p.price for p in path.points] == [None, None, None] and path.excursion() == 0
    assert run(tx(*empty)) == []
    # the derived start has a zero reserve, the rest of the path is a real round trip: reported without it
    drained = [sync(PAIR, 1000, 500), v2_swap(PAIR, BOT, BOT, in0=1000, out1=0), sync(PAIR, 500, 1000),
               v2_swap(PAIR, BOT, BOT, in1=500, out0=500)]
    [finding] = run(tx(*drained))
    assert [p["price"] for p in finding.evidence["price_path"]] == [None, 0.5, 2.0]
    assert finding.evidence["excursion"] == 3.0


def test_weth_paying_out_for_its_burned_tokens_is_not_a_victim():
    unwrap = (Log(WETH, (WITHDRAWAL, topic(BOT)), data(E), 0),)
    trace = CallFrame("CALL", EOA, BOT, 0, "0x01020304", "0x", None, (
        CallFrame("CALL", BOT, WETH, 0, "0x2e1a7d4d" + word(E), "0x", None, (
            CallFrame("CALL", WETH, BOT, E, "0x", "0x", None, ()),)),))
    [finding] = run(tx(*pump_and_dump(between=unwrap), trace=trace))
    assert (finding.severity, finding.evidence["victims"]) == (Severity.MEDIUM, [])
    # a wrapper paying out more native than was burned is losing its own coin
    overpaid = CallFrame("CALL", EOA, BOT, 0, "0x01020304", "0x", None, (
        CallFrame("CALL", BOT, WETH, 0, "0x2e1a7d4d" + word(E), "0x", None, (
            CallFrame("CALL", WETH, BOT, 3 * E, "0x", "0x", None, ()),)),))
    [drained] = run(tx(*pump_and_dump(between=unwrap), trace=overpaid))
    assert drained.evidence["victims"] == [{"holder": WETH, "token": "native", "delta": str(-2 * E),
                                            "paid_actor": True}]


def test_a_token_selling_its_own_balance_accounts_not_known_as_contracts_the_actor_and_pools_are_not_victims():
    fees = (transfer(T1, T1, EOA, 5 * E),  # a token contract paying out its own collected fees
            transfer(USDC, "0x" + "99" * 20, BOT, 100))  # an account nothing shows to be a contract
    logs = tuple(pump_and_dump(between=fees))
    assert third_party_losses(tx(*logs)) == []
    [finding] = run(tx(*logs))
    assert finding.severity == Severity.MEDIUM


def test_failed_transactions_and_quiet_ones_are_skipped():
    assert run(tx(*pump_and_dump(), success=False)) == []
    assert run(tx()) == []
    assert run(tx(transfer(T0, EOA, BOT, 5))) == []


# ------------------------------------------------------------------------------------------------ malformed


MALFORMED = {
    "sync-short": Log(PAIR, (SYNC,), data(1), 0),
    "sync-long": Log(PAIR, (SYNC,), data(1, 2, 3), 0),
    "sync-uint112-overflow": Log(PAIR, (SYNC,), data(1 << 112, 1), 0),
    "sync-not-hex": Log(PAIR, (SYNC,), "0x" + "zz" * 64, 0),
    "sync-no-prefix": Log(PAIR, (SYNC,), data(1, 2)[2:] + "00", 0),
    "sync-indexed": Log(PAIR, (SYNC, topic(BOT)), data(1, 2), 0),
    "v2-dirty-sender": Log(PAIR, (V2_SWAP, "0x" + "ff" * 12 + BOT[2:], topic(BOT)), data(1, 0, 0, 1), 0),
    "v2-one-topic": Log(PAIR, (V2_SWAP, topic(BOT)), data(BOT, 1, 0, 0, 1), 0),
    "v2-short-data": Log(PAIR, (V2_SWAP, topic(BOT), topic(BOT)), data(1, 0, 0), 0),
    "v2-truncated-word": Log(PAIR, (V2_SWAP, topic(BOT), topic(BOT)), data(1, 0, 0, 1)[:-1], 0),
    "v3-short-data": Log(POOL3, (V3_SWAP, topic(BOT), topic(BOT)), data(1, -1, Q96, 1), 0),
    "v3-zero-price": v3_swap(POOL3, BOT, BOT, 1, -1, 0),
    "v3-price-overflow": v3_swap(POOL3, BOT, BOT, 1, -1, 1 << 160),
    "v3-liquidity-overflow": v3_swap(POOL3, BOT, BOT, 1, -1, Q96, liquidity=1 << 128),
    "v3-tick-out-of-range": v3_swap(POOL3, BOT, BOT, 1, -1, Q96, tick=887273),
    "v3-short-topic": Log(POOL3, (V3_SWAP, topic(BOT)[:-2], topic(BOT)), data(1, -1, Q96, 1, 0), 0),
    "no-topics": Log(PAIR, (), data(1, 2), 0),
}


@pytest.mark.parametrize("entry", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_pool_log_is_skipped_and_the_rest_still_counts(entry):
    [finding] = run(tx(*pump_and_dump(), entry))
    assert (finding.subject, len(finding.evidence["trades"]), len(finding.evidence["price_path"])) == (PAIR, 2, 3)
    assert run(tx(entry, entry)) == []
    assert price_paths(tx(entry)) == {}


def test_a_v3_swap_from_a_v2_pair_is_ignored_rather_than_mixed_in():
    logs = [*pump_and_dump(), v3_swap(PAIR, BOT, BOT, 1, -1, 100 * Q96)]  # would be a 10,000x price
    [finding] = run(tx(*logs))
    assert finding.evidence["excursion"] == 3.0 and len(finding.evidence["trades"]) == 2


# ------------------------------------------------------------------------------------------------ identity


def test_fingerprint_is_stable_and_names_chain_tx_and_pool():
    [first] = run(tx(*pump_and_dump()))
    [again] = run(tx(*pump_and_dump()), analyzer=ReserveManipulation())
    assert first.fingerprint == again.fingerprint == fingerprint("reserve-manipulation", CHAIN, "0x" + "c1" * 32,
                                                                 PAIR)
    [other] = run(tx(*pump_and_dump(), hash_="0x" + "c2" * 32))
    assert other.fingerprint != first.fingerprint


def test_min_price_move_is_honoured_and_validated():
    assert run(tx(*pump_and_dump()), analyzer=ReserveManipulation(ReserveSettings(min_price_move=3.5))) == []
    assert len(run(tx(*pump_and_dump()), analyzer=ReserveManipulation(ReserveSettings(min_price_move=3.0)))) == 1
    for bad in (0, -0.2):
        with pytest.raises(pydantic.ValidationError, match="min_price_move .* must be above 0"):
            ReserveSettings(min_price_move=bad)
    with pytest.raises(pydantic.ValidationError):
        ReserveSettings(min_move=0.3)  # a misspelt key is refused
    assert ReserveSettings().min_price_move == 0.2 and ReserveSettings().enabled


def test_an_excursion_of_exactly_the_threshold_is_reported():
    # 100/100 → 100/120 (price 1.2) → back: a 20% excursion, computed exactly
    logs = [sync(PAIR, 100, 120), v2_swap(PAIR, BOT, BOT, in1=20), sync(PAIR, 100, 100),
            v2_swap(PAIR, BOT, BOT, out1=20)]
    [finding] = run(tx(*logs))
    assert finding.evidence["excursion"] == pytest.approx(0.2)
    assert run(tx(*logs), analyzer=ReserveManipulation(ReserveSettings(min_price_move=0.2000001))) == []


def test_declared_as_a_log_analyzer_that_uses_traces_when_present():
    info = ReserveManipulation.info
    assert (info.id, info.needs_traces, info.consumes) == ("reserve-manipulation", False,
                                                           frozenset({"logs", "traces"}))
    assert ReserveManipulation.Settings is ReserveSettings
