"""`flash-loan`: a loan is recognised by the providers' events and by the trace's shape, and reported only with a
profit or a third party's loss. Topic hashes are the published values, written out so that the module's own
hashing is checked against them."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from kamiyo.analyzers.tx import flows
from kamiyo.analyzers.tx import loans as fl
from kamiyo.analyzers.tx.base import CallFrame, Log, TxObserved
from kamiyo.analyzers.tx.flashloan import KIND, FlashLoan, FlashLoanSettings, pool_signals
from kamiyo.analyzers.tx.loans import log_loans, trace_loans
from kamiyo.analyzers.tx.flows import NATIVE, V2_SWAP, V2_SYNC, V3_SWAP, movements
from kamiyo.findings import FindingType, Severity, fingerprint
from tests.analyzers.tx.build import addr, block, call, event, transfer, tx, word

AAVE_V2 = "0x631042c832b07452973831137f2d73e395028b44b250dedc5abb0ee766e168ac"
AAVE_V3 = "0xefefaba5e921573100900a3ad9cf29f222d995fb3b6045797eaea7521bd8d6f0"
BALANCER = "0x0d7d75e01ab95780d3cd1c8ec0dd6c2ce19e3a20427eec8bf53283b6fb8e95f0"
UNI_V3_FLASH = "0xbdbdb71d7860376ba52b25a5028beea23581364a40522f6bcfb86bb1f2dca633"

EOA, BOT, HELPER = addr(0xE0A), addr(0xB07), addr(0xB08)
POOL, A_USDC, VAULT_BAL, SOLO, LENDER = addr(0xAAE), addr(0xAA1), addr(0xBA1), addr(0xD1D), addr(0x1E0)
VICTIM, CURVE = addr(0x5AFE), addr(0xC0C0)
USDC, WETH, USDT, DEBT = addr(0x7001), addr(0x7002), addr(0x7003), addr(0x7004)
PAIR_A, PAIR_B, V3_POOL = addr(0x9A), addr(0x9B), addr(0x93)
M = 10**6


def hx(*values: int | str) -> str:
    """ABI words without the 0x, for calldata and log data."""
    return "".join(word(v)[2:] for v in values)


def data(*values: int | str) -> str:
    return "0x" + hx(*values)


def calldata(signature: str, *values: int | str, tail: str = "") -> str:
    return flows.selector(signature) + hx(*values) + tail


def send(sender: str, token: str, to: str, amount: int) -> CallFrame:
    return call(sender, token, input=calldata("transfer(address,uint256)", to, amount))


def pull(caller: str, token: str, source: str, to: str, amount: int) -> CallFrame:
    return call(caller, token, input=calldata("transferFrom(address,address,uint256)", source, to, amount))


def aave_v3_log(target: str, asset: str, amount: int, premium: int, initiator: str = EOA) -> Log:
    return Log(POOL, (AAVE_V3, word(target), word(asset), word(0)), data(initiator, amount, 0, premium), 0)


def activity_log(address: str) -> Log:
    """Some event of a contract, so that logs alone show it is a contract whose code ran."""
    return event(address, "Withdraw(address,uint256)", EOA, data=data(1))


def aave_drain(victim_amount: int = 600 * M, premium: int = 900):
    """Logs only: borrow 1M USDC from Aave v3, take `victim_amount` from a vault, repay with premium."""
    return (aave_v3_log(BOT, USDC, 1000 * M, premium), transfer(USDC, A_USDC, BOT, 1000 * M),
            activity_log(VICTIM), transfer(USDC, VICTIM, BOT, victim_amount),
            transfer(USDC, BOT, A_USDC, 1000 * M + premium), transfer(USDC, BOT, EOA, victim_amount - premium))


def run(*txs: TxObserved, analyzer: FlashLoan | None = None, balances: dict | None = None):
    return (analyzer or FlashLoan()).analyze(block(20_000_000, *txs, balances=balances))


# --- loans from events -----------------------------------------------------------------------------------------

def test_topics_are_the_published_hashes():
    assert (fl.AAVE_V2_FLASH_LOAN, fl.AAVE_V3_FLASH_LOAN, fl.BALANCER_FLASH_LOAN, fl.V3_FLASH) == (
        AAVE_V2, AAVE_V3, BALANCER, UNI_V3_FLASH)
    assert fl.V2_SWAP_CALL == "0x022c0d9f"
    assert fl.BORROWER_CALLBACKS["0x8b418713"][1] == "dydx"


def test_each_provider_event_is_decoded_by_its_indexed_layout():
    logs = (
        Log(POOL, (AAVE_V2, word(BOT), word(EOA), word(USDC)), data(500, 45, 0), 0),
        aave_v3_log(BOT, WETH, 700, 7, initiator=HELPER),
        Log(VAULT_BAL, (BALANCER, word(BOT), word(USDT)), data(900, 0), 2),
        Log(V3_POOL, (UNI_V3_FLASH, word(EOA), word(BOT)), data(300, 0, 3, 0), 3),
        transfer(USDC, A_USDC, BOT, 500), transfer(WETH, V3_POOL, BOT, 300),
    )
    loans = log_loans(tx(EOA, BOT, logs=logs), movements(tx(EOA, BOT, logs=logs)))
    assert [(x.provider, x.lender, x.borrower, x.token, x.amount, x.fee) for x in loans] == [
        ("aave-v2", POOL, BOT, USDC, 500, 45), ("aave-v3", POOL, BOT, WETH, 700, 7),
        ("balancer", VAULT_BAL, BOT, USDT, 900, 0), ("uniswap-v3", V3_POOL, BOT, WETH, 300, 3)]
    assert loans[0].holder == A_USDC  # the aToken sent the funds, so it is on the lender's side too
    assert loans[3].where == "log:3"


@pytest.mark.parametrize("entry", [
    Log(POOL, (AAVE_V2, word(BOT), word(EOA)), data(500, 45, 0), 0),  # a topic missing
    Log(POOL, (AAVE_V2, word(BOT), word(EOA), word(USDC)), data(500, 45), 0),  # short data
    Log(POOL, (AAVE_V2, word(BOT), word(EOA), "0x" + "ff" * 12 + USDC[2:]), data(500, 45, 0), 0),  # dirty address
    Log(POOL, (AAVE_V2, word(BOT), word(EOA), word(USDC)), data(500, 45, 1 << 16), 0),  # referral beyond uint16
    Log(POOL, (AAVE_V3, word(BOT), word(USDC), word(0)), data(1 << 160, 500, 0, 5), 0),  # initiator not an address
    Log(POOL, (AAVE_V3, word(BOT), word(USDC), word(0)), "0xzz" + "0" * 254, 0),  # not hex
    Log(VAULT_BAL, (BALANCER, word(BOT)), data(900, 0, 0), 0),  # Balancer's layout, wrong split
    Log(V3_POOL, (UNI_V3_FLASH, word(EOA), word(BOT)), data(300, 0, 3), 0),
], ids=["topics", "short", "dirty", "referral", "initiator", "hex", "balancer", "v3-short"])
def test_malformed_loan_logs_are_skipped(entry):
    malformed = tx(EOA, BOT, logs=(entry, transfer(USDC, VICTIM, BOT, 10**9)))
    assert log_loans(malformed, movements(malformed)) == []
    assert run(malformed, analyzer=FlashLoan()) == []


# --- severity --------------------------------------------------------------------------------------------------

def test_logs_alone_a_loan_and_an_unpaid_loss_of_most_of_a_balance_is_critical():
    [finding] = run(tx(EOA, BOT, logs=aave_drain()), balances={(VICTIM, USDC): 1000 * M})
    assert (finding.kind, finding.severity, finding.type, finding.subject) == (
        KIND, Severity.CRITICAL, FindingType.EXPLOIT, VICTIM)
    ev = finding.evidence
    assert [(x["provider"], x["lender"], x["holder"], x["borrower"], x["amount"], x["fee"]) for x in ev["loans"]] == [
        ("aave-v3", POOL, A_USDC, BOT, str(1000 * M), "900")]
    assert ev["victims"] == [{"address": VICTIM, "token": USDC, "loss": str(600 * M), "balance_before": str(1000 * M),
                              "share": 0.6, "reason": "unpaid-loss"}]
    assert ev["profit"] == [{"token": USDC, "amount": str(600 * M - 900)}]
    labels = {(x["entity"], x["label"]) for x in ev["labels"]}
    assert {(EOA, "attacker"), (BOT, "attacker"), (VICTIM, "victim"), (POOL, "flash-lender")} <= labels
    assert (A_USDC, "victim") not in labels and {"role": "victim", "address": VICTIM} in ev["addresses"]
    assert finding.fingerprint == fingerprint(KIND, 1, finding.tx_hash)


def test_unknown_balance_is_high_and_a_small_share_is_an_ordinary_borrow():
    [unknown] = run(tx(EOA, BOT, logs=aave_drain()))
    assert (unknown.severity, unknown.type) == (Severity.HIGH, FindingType.EXPLOIT)
    assert unknown.evidence["victims"][0]["share"] is None
    [small] = run(tx(EOA, BOT, logs=aave_drain()), balances={(VICTIM, USDC): 100_000 * M})  # 0.6 %
    assert (small.severity, small.type, small.evidence["victims"]) == (Severity.LOW, FindingType.INFO, [])
    assert small.evidence["counterparties"][0]["reason"] == "small-share"
    assert "attacker" not in {x["label"] for x in small.evidence["labels"]}


def test_the_victims_balance_before_counts_earlier_transactions_of_the_block():
    refill = tx(HELPER, VICTIM, logs=(transfer(USDC, HELPER, VICTIM, 500 * M),))
    [finding] = run(refill, tx(EOA, BOT, logs=aave_drain()), balances={(VICTIM, USDC): 1000 * M})
    assert finding.severity == Severity.HIGH  # 600 of 1,500: below critical_share
    assert finding.evidence["victims"][0]["balance_before"] == str(1500 * M)
    [critical] = run(refill, tx(EOA, BOT, logs=aave_drain()), balances={(VICTIM, USDC): 1000 * M},
                     analyzer=FlashLoan(FlashLoanSettings(critical_share=0.4)))
    assert critical.severity == Severity.CRITICAL


def test_a_loss_without_profit_to_the_actor_is_medium():
    logs = aave_drain()[:-1] + (transfer(USDC, BOT, HELPER, 600 * M - 900),)  # the takings go to a third account
    [finding] = run(tx(EOA, BOT, logs=logs))
    assert (finding.severity, finding.type, finding.evidence["profit"]) == (Severity.MEDIUM, FindingType.SUSPICIOUS,
                                                                            [])
    assert {"holder": HELPER, "token": USDC, "amount": str(600 * M - 900)} in finding.evidence["amounts"]


def test_a_loan_repaid_with_no_profit_and_no_loser_is_nothing():
    """A collateral swap: borrow USDC, repay the debt, withdraw WETH collateral (aWETH burned), swap it back to
    USDC, repay the loan. Debt tokens burned, aTokens burned, pools traded, nobody else poorer."""
    a_weth = addr(0xAA2)
    logs = (aave_v3_log(EOA, USDC, 1000 * M, 900), transfer(USDC, A_USDC, EOA, 1000 * M),
            transfer(DEBT, EOA, flows.ZERO, 1000 * M), transfer(USDC, EOA, A_USDC, 1000 * M),
            transfer(a_weth, EOA, flows.ZERO, 10**18), transfer(WETH, a_weth, EOA, 10**18),
            transfer(WETH, EOA, PAIR_A, 10**18), transfer(USDC, PAIR_A, EOA, 1000 * M + 900),
            Log(PAIR_A, (V2_SYNC,), data(10**21, 10**12), 0), Log(PAIR_A, (V2_SWAP, word(EOA), word(EOA)),
                                                                 data(10**18, 0, 0, 1000 * M + 900), 0),
            transfer(USDC, EOA, A_USDC, 1000 * M + 900))
    assert run(tx(EOA, POOL, logs=logs)) == []


def test_minted_receipts_and_debt_tokens_are_not_profit():
    """Leverage: borrow, deposit, receive aTokens and debt tokens; the loan is repaid from the borrowed USDC."""
    logs = (aave_v3_log(BOT, USDC, 1000 * M, 900), transfer(USDC, A_USDC, BOT, 1000 * M),
            transfer(USDC, BOT, A_USDC, 1000 * M), transfer(A_USDC, flows.ZERO, BOT, 1000 * M),
            transfer(DEBT, flows.ZERO, BOT, 1000 * M), transfer(USDC, A_USDC, BOT, 1000 * M + 900),
            transfer(USDC, BOT, A_USDC, 1000 * M + 900))
    assert run(tx(EOA, BOT, logs=logs)) == []


def test_a_trading_counterparty_is_not_a_victim_unless_it_lost_most_of_its_balance():
    """A Curve-like pool announces no V2/V3 event: it lost USDT but gained USDC, which is a trade."""
    logs = (Log(VAULT_BAL, (BALANCER, word(BOT), word(USDC)), data(1000 * M, 0), 0),
            transfer(USDC, VAULT_BAL, BOT, 1000 * M), activity_log(CURVE), transfer(USDC, BOT, CURVE, 1000 * M),
            transfer(USDT, CURVE, BOT, 1001 * M), transfer(USDT, BOT, PAIR_A, 1001 * M),
            transfer(USDC, PAIR_A, BOT, 1000 * M + 50),
            Log(PAIR_A, (V2_SYNC,), data(10**12, 10**12), 0),
            Log(PAIR_A, (V2_SWAP, word(BOT), word(BOT)), data(0, 1001 * M, 1000 * M + 50, 0), 0),
            transfer(USDC, BOT, VAULT_BAL, 1000 * M))
    [finding] = run(tx(EOA, BOT, logs=logs))
    assert (finding.severity, finding.type) == (Severity.LOW, FindingType.INFO)
    assert finding.evidence["counterparties"][0] | {"share": None} == {
        "address": CURVE, "token": USDT, "loss": str(1001 * M), "balance_before": None, "share": None,
        "reason": "traded"}
    [drained] = run(tx(EOA, BOT, logs=logs), balances={(CURVE, USDT): 1500 * M})
    assert (drained.severity, drained.evidence["victims"][0]["reason"]) == (Severity.CRITICAL, "large-share")


def test_report_profit_only_false_drops_the_benign_profit():
    quiet = FlashLoan(FlashLoanSettings(report_profit_only=False))
    assert run(tx(EOA, BOT, logs=aave_drain()), balances={(VICTIM, USDC): 100_000 * M}, analyzer=quiet) == []
    assert run(tx(EOA, BOT, logs=aave_drain()), analyzer=quiet)[0].severity == Severity.HIGH


# --- loans from the trace --------------------------------------------------------------------------------------

def flash_arbitrage(callback_data: str = "01", with_callback: bool = True) -> TxObserved:
    """Flash-swap 3,000 USDC from pair A (100 WETH / 300,000 USDC), sell it on pair B (100 WETH / 290,000 USDC) for
    1.02 WETH, repay pair A 1.0135 WETH (its k, fee included, holds), unwrap the 0.0065 WETH left."""
    repay, bought, profit = 10135 * 10**14, 102 * 10**16, 65 * 10**14
    args = (0, 3000 * M, BOT, 0x80, len(callback_data) // 2)
    swap_input = calldata("swap(uint256,uint256,address,bytes)", *args, tail=callback_data.ljust(64, "0")
                          if callback_data else "")
    callback = call(PAIR_A, BOT, input=calldata("uniswapV2Call(address,uint256,uint256,bytes)", BOT, 0, 3000 * M,
                                                0x80, 0), calls=(
        send(BOT, USDC, PAIR_B, 3000 * M),
        call(BOT, PAIR_B, input=calldata("swap(uint256,uint256,address,bytes)", bought, 0, BOT, 0x80, 0),
             calls=(send(PAIR_B, WETH, BOT, bought),)),
        send(BOT, WETH, PAIR_A, repay)))
    trace = call(EOA, BOT, input="0xdeadbeef", calls=(
        call(BOT, PAIR_A, input=swap_input, calls=(send(PAIR_A, USDC, BOT, 3000 * M),
                                                   *((callback,) if with_callback else ()))),
        call(BOT, WETH, input="0x2e1a7d4d" + hx(profit), calls=(call(WETH, BOT, value=profit, input="0x"),))))
    logs = (transfer(USDC, PAIR_A, BOT, 3000 * M), transfer(USDC, BOT, PAIR_B, 3000 * M),
            transfer(WETH, PAIR_B, BOT, bought), Log(PAIR_B, (V2_SYNC,), data(10**20 - bought, 293_000 * M), 0),
            Log(PAIR_B, (V2_SWAP, word(BOT), word(BOT)), data(0, 3000 * M, bought, 0), 0),
            transfer(WETH, BOT, PAIR_A, repay), Log(PAIR_A, (V2_SYNC,), data(10**20 + repay, 297_000 * M), 0),
            Log(PAIR_A, (V2_SWAP, word(BOT), word(BOT)), data(repay, 0, 0, 3000 * M), 0),
            event(WETH, "Withdrawal(address,uint256)", BOT, data=data(profit)))
    return tx(EOA, BOT, logs=logs, trace=trace)


def test_the_flash_swap_arbitrage_is_at_most_low_and_names_no_attacker():
    arbitrage = flash_arbitrage()
    [loan] = trace_loans(arbitrage, movements(arbitrage))
    assert (loan.provider, loan.lender, loan.borrower, loan.token, loan.amount, loan.where) == (
        "uniswap-v2-flash-swap", PAIR_A, BOT, USDC, 3000 * M, "trace:0")
    [finding] = run(arbitrage)
    assert (finding.severity, finding.type) == (Severity.LOW, FindingType.INFO)
    ev = finding.evidence
    assert ev["victims"] == [] and ev["counterparties"] == []  # WETH paid out native against burned WETH
    assert ev["profit"] == [{"token": NATIVE, "amount": str(65 * 10**14)}]
    assert ev["pools"] == []  # each pair moved a little, one way
    assert "attacker" not in {x["label"] for x in ev["labels"]}
    assert run(arbitrage, analyzer=FlashLoan(FlashLoanSettings(report_profit_only=False))) == []


def test_a_v2_swap_without_callback_data_is_no_loan():
    plain = flash_arbitrage(callback_data="", with_callback=False)
    assert trace_loans(plain, movements(plain)) == []
    assert run(plain) == []
    logs_only = TxObserved(plain.hash, 0, EOA, BOT, 0, "0x", True, plain.logs)  # a V2 Swap log is not a loan
    assert run(logs_only) == []


def test_the_callback_alone_makes_a_flash_swap_when_data_cannot_be_read():
    swap = flash_arbitrage(callback_data="", with_callback=True)  # the pair called back despite the empty bytes
    assert [x.provider for x in trace_loans(swap, movements(swap))] == ["uniswap-v2-flash-swap"]


def generic_attack(callback: str = "0xabcdef01", reverted_drain: bool = False) -> TxObserved:
    """An unknown lender L: sends 5,000 USDC to the attacker, calls it back, is repaid; inside the callback the
    attacker takes 2,000 USDC from a third-party contract."""
    drain = call(BOT, VICTIM, input="0x3ccfd60b", error="execution reverted" if reverted_drain else None,
                 calls=(send(VICTIM, USDC, BOT, 2000 * M),))
    trace = call(EOA, BOT, input="0xdeadbeef", calls=(
        call(BOT, LENDER, input="0x12345678", calls=(
            send(LENDER, USDC, BOT, 5000 * M),
            call(LENDER, BOT, input=callback, calls=(drain, send(BOT, USDC, LENDER, 5000 * M + 5))))),
        send(BOT, USDC, EOA, 2000 * M - 5)))
    logs = [transfer(USDC, LENDER, BOT, 5000 * M)]
    if not reverted_drain:
        logs.append(transfer(USDC, VICTIM, BOT, 2000 * M))
    logs += [transfer(USDC, BOT, LENDER, 5000 * M + 5), transfer(USDC, BOT, EOA, 2000 * M - 5)]
    return tx(EOA, BOT, logs=tuple(logs), trace=trace)


def test_an_unseen_lender_is_caught_by_the_shape_of_the_loan():
    attack = generic_attack()
    [loan] = trace_loans(attack, movements(attack))
    assert (loan.provider, loan.lender, loan.borrower, loan.token, loan.amount, loan.fee, loan.where) == (
        "callback", LENDER, BOT, USDC, 5000 * M, 5, "trace:0.1")
    [finding] = run(attack, balances={(VICTIM, USDC): 2000 * M})
    assert (finding.severity, finding.type, finding.subject) == (Severity.CRITICAL, FindingType.EXPLOIT, VICTIM)
    assert finding.evidence["victims"][0]["share"] == 1.0


def test_a_reverted_drain_is_no_loss():
    attack = generic_attack(reverted_drain=True)
    assert [x.lender for x in trace_loans(attack, movements(attack))] == [LENDER]
    assert run(attack) == []  # the loan is there, but nothing was taken and the actor is poorer


def test_dydx_call_action_is_a_loan_repaid_after_the_callback():
    operate = call(BOT, SOLO, input="0xa67a6a45", calls=(
        send(SOLO, WETH, BOT, 10**21),
        call(SOLO, BOT, input=calldata("callFunction(address,(address,uint256),bytes)", BOT, BOT, 0, 0x80, 0)),
        pull(SOLO, WETH, BOT, SOLO, 10**21 + 2)))
    loans = trace_loans(tx(EOA, BOT, trace=call(EOA, BOT, calls=(operate,))), [])
    assert [(x.provider, x.lender, x.token, x.amount, x.fee) for x in loans] == [("dydx", SOLO, WETH, 10**21, 2)]


def test_erc3156_callback_states_the_loan_and_a_proxy_lender_is_seen_through():
    flash = call(EOA, LENDER, input="0x5cffe9de", calls=(
        call(LENDER, addr(0x1E1), kind="DELEGATECALL", input="0x5cffe9de", calls=(
            call(LENDER, BOT, input=calldata("onFlashLoan(address,address,uint256,uint256,bytes)", EOA, USDC, 777, 7,
                                             0xa0, 0)),)),))
    [loan] = trace_loans(tx(EOA, LENDER, trace=flash), [])
    assert (loan.provider, loan.lender, loan.borrower, loan.token, loan.amount, loan.fee) == (
        "erc-3156", LENDER, BOT, USDC, 777, 7)


def test_circular_arbitrage_without_a_loan_is_not_one():
    """The bot pays pair A, A pays pair B, B pays the bot: the bot is paid back, but not by whom it paid."""
    trace = call(EOA, BOT, calls=(
        send(BOT, USDC, PAIR_A, 1000),
        call(BOT, PAIR_A, input=calldata("swap(uint256,uint256,address,bytes)", 0, 5, PAIR_B, 0x80, 0),
             calls=(send(PAIR_A, WETH, PAIR_B, 5),)),
        call(BOT, PAIR_B, input=calldata("swap(uint256,uint256,address,bytes)", 1010, 0, BOT, 0x80, 0),
             calls=(send(PAIR_B, USDC, BOT, 1010),))))
    assert trace_loans(tx(EOA, BOT, trace=trace), []) == []


@pytest.mark.parametrize("swap_input", [
    "0x022c0d9f", "0x022c0d9f" + hx(1, 2), "0x022c0d9f" + hx(0, 5, BOT, 1 << 255),  # offset far beyond the data
    "0x022c0d9f" + hx(0, 5, "ff" * 32, 0x80, 1), "0x022c0d9fzz" + "0" * 300])
def test_malformed_swap_calldata_never_raises(swap_input):
    trace = call(EOA, BOT, calls=(call(BOT, PAIR_A, input=swap_input, calls=(send(PAIR_A, USDC, BOT, 5),)),))
    assert trace_loans(tx(EOA, BOT, trace=trace), []) == []


# --- pools -----------------------------------------------------------------------------------------------------

def sync(pair: str, r0: int, r1: int) -> Log:
    return Log(pair, (V2_SYNC,), data(r0, r1), 0)


def v2_swap(pair: str, in0: int, in1: int, out0: int, out1: int) -> Log:
    return Log(pair, (V2_SWAP, word(BOT), word(BOT)), data(in0, in1, out0, out1), 0)


def test_a_pool_whose_invariant_fell_without_a_burn_is_drained():
    logs = (sync(PAIR_A, 1100, 1000), v2_swap(PAIR_A, 100, 0, 0, 91),  # a trade: k grows
            sync(PAIR_A, 10, 1000),  # sync() after the pair's token balance was burned away
            sync(PAIR_A, 1010, 10), v2_swap(PAIR_A, 1000, 0, 0, 990))
    assert pool_signals(tx(EOA, BOT, logs=logs), 2.0)[PAIR_A]["signal"] == "drained"
    burn = (sync(PAIR_A, 550, 500), Log(PAIR_A, (fl.V2_BURN, word(BOT), word(BOT)), data(550, 500), 0))
    assert pool_signals(tx(EOA, BOT, logs=burn), 2.0) == {}  # removing liquidity lowers k legitimately
    attack = logs + (aave_v3_log(BOT, WETH, 10**6, 9), transfer(WETH, A_USDC, BOT, 10**6),
                     transfer(WETH, BOT, A_USDC, 10**6 + 9), transfer(USDT, PAIR_A, BOT, 990))
    [finding] = run(tx(EOA, BOT, logs=attack), balances={(PAIR_A, USDT): 1000})
    assert (finding.severity, finding.subject) == (Severity.CRITICAL, PAIR_A)
    assert finding.evidence["victims"][0]["reason"] == "pool-drained"


def test_pumped_and_dumped_pool_with_profit_is_high_and_one_way_is_not():
    def v3(amount0: int, sqrt_price: int) -> Log:
        return Log(V3_POOL, (V3_SWAP, word(BOT), word(BOT)), data(amount0 % (1 << 256), 0, sqrt_price, 10**9, 0), 0)

    round_trip = (v3(-(10**9), 3 << 96), v3(10**9, 1 << 96))  # price ×9 then back
    assert pool_signals(tx(EOA, BOT, logs=round_trip), 2.0)[V3_POOL]["signal"] == "pumped-and-dumped"
    assert pool_signals(tx(EOA, BOT, logs=(v3(-(10**9), 3 << 96), v3(-(10**9), 1 << 96))), 2.0) == {}
    loan = (Log(VAULT_BAL, (BALANCER, word(BOT), word(USDC)), data(10**9, 0), 0),
            transfer(USDC, VAULT_BAL, BOT, 10**9), transfer(USDC, BOT, VAULT_BAL, 10**9),
            transfer(WETH, addr(0x1E4D), BOT, 10**18))  # what the pushed price let it take, from a two-sided lender
    [finding] = run(tx(EOA, BOT, logs=round_trip + loan))
    assert (finding.severity, finding.type, finding.subject) == (Severity.HIGH, FindingType.EXPLOIT, V3_POOL)


def test_a_large_one_way_move_with_profit_is_at_most_medium():
    logs = (sync(PAIR_A, 4000, 250), v2_swap(PAIR_A, 3000, 0, 0, 250),  # price 1 -> 1/16: an arbitrage of a stale pool
            Log(VAULT_BAL, (BALANCER, word(BOT), word(USDC)), data(3000, 0), 0), transfer(USDC, VAULT_BAL, BOT, 3000),
            transfer(USDC, BOT, PAIR_A, 3000), transfer(WETH, PAIR_A, BOT, 250), transfer(USDC, HELPER, BOT, 3000),
            transfer(USDC, BOT, VAULT_BAL, 3000))
    assert pool_signals(tx(EOA, BOT, logs=logs), 2.0)[PAIR_A]["signal"] == "moved"
    [finding] = run(tx(EOA, BOT, logs=logs))
    assert (finding.severity, finding.type) == (Severity.MEDIUM, FindingType.SUSPICIOUS)


# --- settings and declaration ----------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [{"critical_share": 0}, {"critical_share": 1.5}, {"min_victim_share": -0.1},
                                 {"price_factor": 1.0}, {"typo": 1}])
def test_settings_are_validated(bad):
    with pytest.raises(ValidationError) as caught:
        FlashLoanSettings(**bad)
    assert list(bad)[0] in str(caught.value)


def test_declared_to_work_without_traces():
    info = FlashLoan.info
    assert (info.id, info.needs_traces) == ("flash-loan", False)
    assert {"logs", "traces", "balances"} <= info.consumes
    assert "(0, 1]" in str(pytest.raises(ValidationError, FlashLoanSettings, critical_share=2).value)


@pytest.mark.parametrize("entry", [
    Log(PAIR_A, (V2_SYNC,), data(5), 0), Log(PAIR_A, (V2_SYNC, word(BOT)), data(5, 5), 0),
    Log(PAIR_A, (V2_SYNC,), "0x" + "g" * 128, 0), Log(V3_POOL, (V3_SWAP, word(BOT)), data(1, 2, 3, 4, 5), 0),
    Log(V3_POOL, (V3_SWAP, word(BOT), word(BOT)), data(1, 2, 0, 4, 5), 0)])
def test_malformed_pool_logs_are_skipped(entry):
    base = (sync(PAIR_A, 1000, 1000), v2_swap(PAIR_A, 0, 10, 9, 0), sync(PAIR_A, 1000, 1010))
    with_entry = base[:2] + (entry,) + base[2:]
    assert pool_signals(tx(EOA, BOT, logs=with_entry), 2.0) == pool_signals(tx(EOA, BOT, logs=base), 2.0) == {}
    assert pool_signals(tx(EOA, BOT, logs=(entry, Log(PAIR_A, (V2_SYNC,), data((1 << 256) - 1, 1), 0))), 2.0) == {}
