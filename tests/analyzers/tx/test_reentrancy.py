"""`reentrancy` over synthetic call trees shaped like the call tracer's: the DAO-style drain (native and ERC-20,
through a plain `receive()` and through a token hook), and the callbacks that look like it and must stay silent:
a router unwrapping WETH, a flash swap, multicall self-calls, read-only re-entry, ERC-777 hooks, reverted
subtrees. Selectors below are the published values, written out so the module's hashing is checked."""

from __future__ import annotations

import pydantic
import pytest

from kamiyo.analyzers.tx.base import BlockActivity, CallFrame, Log, TxObserved
from kamiyo.analyzers.tx.flows import NATIVE, TRANSFER, V2_SYNC
from kamiyo.analyzers.tx.reentrancy import (
    TRANSFER_CALL, TRANSFER_FROM_CALL, Reentrancy, ReentrancySettings, episodes, frame_outflows, scan,
)
from kamiyo.chains.blocks import BlockRef
from kamiyo.findings import FindingType, Severity, fingerprint

CHAIN, BLOCK = 1, 18_000_000
EOA = "0x" + "e0" * 20  # the attacker's (or user's) account
ATTACKER = "0x" + "a7" * 20  # its contract
VAULT = "0x" + "5a" * 20  # a vault with the DAO's bug
TOKEN = "0x" + "70" * 20
TOKEN2 = "0x" + "72" * 20
WETH = "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"
ROUTER = "0x" + "40" * 20
SAFE = "0x" + "5f" * 20  # a smart wallet the user acts through
PAIR1 = "0x" + "b1" * 20
PAIR2 = "0x" + "b2" * 20
BORROWER = "0x" + "bb" * 20
BENEFICIARY = "0x" + "be" * 20
HELPER = "0x" + "4e" * 20
HOLDER = "0x" + "48" * 20  # holds an ERC-777-style token
ETH = 10**18
TRUE = "0x" + "00" * 31 + "01"

WITHDRAW, DEPOSIT, ATTACK = "0x3ccfd60b", "0xd0e30db0", "0x9e5faafc"  # withdraw(), deposit(), attack()


def test_selectors_are_the_published_ones():
    assert (TRANSFER_CALL, TRANSFER_FROM_CALL) == ("0xa9059cbb", "0x23b872dd")


def word(value: str | int) -> str:
    if isinstance(value, int):
        return f"{value:064x}"
    return value.removeprefix("0x").rjust(64, "0")


def call(sender: str, to: str, input_: str = "0x12345678", *calls: CallFrame, value: int = 0, kind: str = "CALL",
         output: str | None = "0x", error: str | None = None) -> CallFrame:
    return CallFrame(kind, sender, to, value, input_, output, error, tuple(calls))


def pay(sender: str, to: str, value: int, *calls: CallFrame, kind: str = "CALL") -> CallFrame:
    """Native value with empty calldata: lands in the recipient's `receive()`."""
    return call(sender, to, "0x", *calls, value=value, kind=kind)


def erc20(sender: str, token: str, to: str, amount: int, *calls: CallFrame, output: str | None = TRUE) -> CallFrame:
    return call(sender, token, TRANSFER_CALL + word(to) + word(amount), *calls, output=output)


def erc20_from(sender: str, token: str, src: str, to: str, amount: int, *calls: CallFrame) -> CallFrame:
    return call(sender, token, TRANSFER_FROM_CALL + word(src) + word(to) + word(amount), *calls, output=TRUE)


def transfer_log(token: str, src: str, dst: str, amount: int) -> Log:
    return Log(token, (TRANSFER, "0x" + word(src), "0x" + word(dst)), "0x" + word(amount), 0)


def tx(trace: CallFrame | None, *logs: Log, sender: str = EOA, to: str | None = ATTACKER, value: int = 0,
       hash_: str = "0x" + "a1" * 32, success: bool = True, index: int = 0) -> TxObserved:
    numbered = tuple(Log(e.address, e.topics, e.data, i) for i, e in enumerate(logs))
    return TxObserved(hash_, index, sender, to, value, "0x", success, numbered, trace)


def block(*txs: TxObserved, balances: dict | None = None) -> BlockActivity:
    return BlockActivity(BlockRef(CHAIN, BLOCK, "0x" + "bb" * 32, "0x" + "ba" * 32), txs, has_traces=True,
                         balances=dict(balances or {}))


def run(*txs: TxObserved, balances: dict | None = None, analyzer: Reentrancy | None = None):
    return (analyzer or Reentrancy()).analyze(block(*txs, balances=balances))


def dao(levels: int = 2, stake: int = ETH, kind: str = "CALL", error_at: int | None = None) -> CallFrame:
    """The attack of tests/scenarios/contracts/Reentrancy.sol: deposit a stake, withdraw it, and from `receive()`
    withdraw again `levels` times. `kind` is the re-entering call's; `error_at` makes that re-entry revert."""
    inner = pay(VAULT, ATTACKER, stake)
    for level in range(levels, 0, -1):
        reenter = call(ATTACKER, VAULT, WITHDRAW, inner, kind=kind,
                       error="execution reverted" if level == error_at else None)
        inner = pay(VAULT, ATTACKER, stake, reenter)
    withdraw = call(ATTACKER, VAULT, WITHDRAW, inner)
    return call(EOA, ATTACKER, ATTACK, call(ATTACKER, VAULT, DEPOSIT, value=stake), withdraw, value=stake)


# ------------------------------------------------------------------------------------------------ detection


def test_a_dao_style_drain_is_a_high_exploit_with_its_paths_and_losses():
    [finding] = run(tx(dao(levels=2), value=ETH), balances={(VAULT, NATIVE): 10 * ETH})
    assert (finding.kind, finding.severity, finding.type) == ("reentrancy", Severity.HIGH, FindingType.EXPLOIT)
    assert (finding.subject, finding.block, finding.tx_hash) == (VAULT, BLOCK, "0x" + "a1" * 32)
    ev = finding.evidence
    assert (ev["reentries"], ev["depth"]) == (2, 2)
    assert ev["reentry_paths"] == ["trace:1.0.0", "trace:1.0.0.0.0"]
    assert ev["outer_frames"] == ["trace:1"] and ev["reentered_by"] == [ATTACKER]
    assert [o["where"] for o in ev["outer_outflows"]] == ["trace:1.0"]
    assert [(o["where"], o["token"], o["amount"], o["to"]) for o in ev["reentered_outflows"]] == [
        ("trace:1.0.0.0", NATIVE, str(ETH), ATTACKER), ("trace:1.0.0.0.0.0", NATIVE, str(ETH), ATTACKER)]
    # the tx totals come from flows: three payments of the stake, one stake paid in
    assert ev["amounts"] == [{"token": NATIVE, "amount": str(3 * ETH), "from": VAULT, "to": ATTACKER}]
    assert ev["outflow_totals"] == [{"token": NATIVE, "amount": str(3 * ETH)}]
    assert ev["net"] == [{"holder": VAULT, "token": NATIVE, "delta": str(-2 * ETH)}]
    assert ev["losses"] == [{"token": NATIVE, "amount": str(2 * ETH), "balance_before": str(10 * ETH),
                             "share": 0.2}]
    assert ev["paid_to_reentering_side"] is True
    labels = {(lab["entity"], lab["label"]) for lab in ev["labels"]}
    assert labels == {(VAULT, "victim"), (EOA, "attacker"), (ATTACKER, "exploit-contract")}
    assert {"role": "reentered_contract", "address": VAULT} in ev["addresses"]
    assert {"role": "reentered_by", "address": ATTACKER} in ev["addresses"]
    assert 0 < ev["confidence"] <= 1 and VAULT in ev["summary"]


def test_losing_most_of_the_balance_is_critical_and_unknown_balances_stay_high():
    [critical] = run(tx(dao(levels=2), value=ETH), balances={(VAULT, NATIVE): 3 * ETH})  # 2 of 3
    assert (critical.severity, critical.type) == (Severity.CRITICAL, FindingType.EXPLOIT)
    assert critical.evidence["losses"][0]["share"] == pytest.approx(2 / 3, abs=1e-6)
    [unknown] = run(tx(dao(levels=2), value=ETH))
    assert unknown.severity == Severity.HIGH and unknown.evidence["losses"][0]["balance_before"] is None
    [zero] = run(tx(dao(levels=2), value=ETH), balances={(VAULT, NATIVE): 0})  # inconsistent answer: no share
    assert zero.severity == Severity.HIGH and zero.evidence["losses"][0]["share"] is None
    lenient = Reentrancy(ReentrancySettings(critical_share=0.2))
    [share] = run(tx(dao(levels=2), value=ETH), balances={(VAULT, NATIVE): 10 * ETH}, analyzer=lenient)
    assert share.severity == Severity.CRITICAL


def test_the_balance_before_counts_the_blocks_earlier_transactions():
    # an earlier transaction of the block took 6 of the vault's 10: the attack's 2 are half of what was left
    earlier = tx(call(BENEFICIARY, VAULT, WITHDRAW, pay(VAULT, BENEFICIARY, 6 * ETH)), sender=BENEFICIARY,
                 to=VAULT, hash_="0x" + "a0" * 32, index=0)
    attack = tx(dao(levels=2), value=ETH, index=1)
    [finding] = run(earlier, attack, balances={(VAULT, NATIVE): 10 * ETH})
    assert finding.severity == Severity.CRITICAL
    assert finding.evidence["losses"][0]["balance_before"] == str(4 * ETH)
    [alone] = run(attack, balances={(VAULT, NATIVE): 10 * ETH})
    assert alone.severity == Severity.HIGH


def test_a_token_drain_through_a_transfer_hook_is_found_from_calldata():
    # the vault pays with an ERC-777-style token whose recipient hook re-enters withdraw()
    hook = "0x0023de29"  # tokensReceived(...)
    inner = erc20(VAULT, TOKEN, ATTACKER, 100)
    reenter = call(ATTACKER, VAULT, WITHDRAW, inner)
    outer = erc20(VAULT, TOKEN, ATTACKER, 100, call(TOKEN, ATTACKER, hook, reenter))
    trace = call(EOA, ATTACKER, ATTACK, erc20_from(ATTACKER, TOKEN, ATTACKER, VAULT, 100),
                 call(ATTACKER, VAULT, WITHDRAW, outer))
    logs = (transfer_log(TOKEN, ATTACKER, VAULT, 100), transfer_log(TOKEN, VAULT, ATTACKER, 100),
            transfer_log(TOKEN, VAULT, ATTACKER, 100))
    [finding] = run(tx(trace, *logs), balances={(VAULT, TOKEN): 150})
    assert (finding.severity, finding.type, finding.subject) == (Severity.CRITICAL, FindingType.EXPLOIT, VAULT)
    ev = finding.evidence
    assert ev["reentry_paths"] == ["trace:1.0.0.0"] and ev["reentered_by"] == [ATTACKER]
    assert [(o["token"], o["amount"], o["where"]) for o in ev["reentered_outflows"]] == [
        (TOKEN, "100", "trace:1.0.0.0.0")]
    assert ev["losses"] == [{"token": TOKEN, "amount": "100", "balance_before": "150", "share": 0.666667}]


def test_transfer_from_taking_from_the_account_is_its_outflow():
    # inside the re-entered frame the vault has a helper pull its tokens with an allowance
    pull = call(VAULT, HELPER, "0xdeadbeef", erc20_from(HELPER, TOKEN, VAULT, ATTACKER, 70))
    reenter = call(ATTACKER, VAULT, WITHDRAW, pull)
    trace = call(EOA, ATTACKER, ATTACK, call(ATTACKER, VAULT, WITHDRAW, erc20(VAULT, TOKEN, ATTACKER, 30,
                                                                               reenter)))
    logs = (transfer_log(TOKEN, VAULT, ATTACKER, 70), transfer_log(TOKEN, VAULT, ATTACKER, 30))
    [finding] = run(tx(trace, *logs))
    assert [(o["amount"], o["from"], o["to"]) for o in finding.evidence["reentered_outflows"]] == [
        ("70", VAULT, ATTACKER)]
    assert finding.severity == Severity.HIGH


def test_the_recipient_may_be_what_the_reentering_contract_called():
    # the attack contract has the vault pay a collector contract it calls afterwards to sweep the loot
    collector = "0x" + "c0" * 20
    inner = pay(VAULT, collector, ETH)
    reenter = call(ATTACKER, VAULT, WITHDRAW, inner)
    trace = call(EOA, ATTACKER, ATTACK, call(ATTACKER, VAULT, WITHDRAW, pay(VAULT, ATTACKER, ETH, reenter)),
                 call(ATTACKER, collector, "0x01020304"))
    [finding] = run(tx(trace))
    assert (finding.severity, finding.evidence["paid_to_reentering_side"]) == (Severity.HIGH, True)


def test_min_reentries_is_honoured():
    assert run(tx(dao(levels=2), value=ETH), analyzer=Reentrancy(ReentrancySettings(min_reentries=3))) == []
    [finding] = run(tx(dao(levels=3), value=ETH), analyzer=Reentrancy(ReentrancySettings(min_reentries=3)))
    assert finding.evidence["reentries"] == 3


# ------------------------------------------------------------------------------------------------ medium


def test_a_loss_paid_to_someone_unrelated_to_the_reentering_side_is_medium():
    inner = pay(VAULT, BENEFICIARY, ETH)
    reenter = call(ATTACKER, VAULT, WITHDRAW, inner)
    trace = call(EOA, ATTACKER, ATTACK, call(ATTACKER, VAULT, WITHDRAW, pay(VAULT, ATTACKER, ETH, reenter)))
    [finding] = run(tx(trace), balances={(VAULT, NATIVE): 2 * ETH})  # all of it, yet not critical
    assert (finding.severity, finding.type) == (Severity.MEDIUM, FindingType.SUSPICIOUS)
    assert finding.evidence["paid_to_reentering_side"] is False
    assert {lab["label"] for lab in finding.evidence["labels"]} == {"reentered-contract"}


def test_a_pool_that_traded_is_not_a_third_party_victim():
    sync = Log(VAULT, (V2_SYNC,), "0x" + word(1) + word(1), 0)  # the re-entered payer announced a trade
    [finding] = run(tx(dao(levels=2), sync, value=ETH), balances={(VAULT, NATIVE): 2 * ETH})
    assert (finding.severity, finding.type) == (Severity.MEDIUM, FindingType.SUSPICIOUS)


# ------------------------------------------------------------------------------------------------ look-alikes


def test_router_unwrapping_weth_into_its_receive_is_not_reentrancy():
    # a wallet calls a router: it swaps to WETH, WETH.withdraw pays the router's receive(), the router pays out
    trace = call(EOA, SAFE, "0x6a761202", call(SAFE, ROUTER, "0x18cbafe5",
        erc20_from(ROUTER, TOKEN, SAFE, PAIR1, 500),
        call(ROUTER, PAIR1, "0x022c0d9f", erc20(PAIR1, WETH, ROUTER, ETH)),
        call(ROUTER, WETH, "0x2e1a7d4d" + word(ETH), pay(WETH, ROUTER, ETH)),
        pay(ROUTER, SAFE, ETH)))
    withdrawal = Log(WETH, ("0x7fcf532c15f0a6db0bd6d0e038bea71d30d808c7d98cb3bf7268a95bf5081b65",
                            "0x" + word(ROUTER)), "0x" + word(ETH), 0)
    logs = (transfer_log(TOKEN, SAFE, PAIR1, 500), transfer_log(WETH, PAIR1, ROUTER, ETH), withdrawal)
    seen = scan(trace).accounts[ROUTER]
    assert [r.where for r in seen.reentries] == ["trace:0.2.0"]  # the shape is there …
    assert not any(o.reentered for o in seen.outflows)  # … but receive() pays nothing
    assert run(tx(trace, *logs, to=SAFE)) == []


UNISWAP_V2_CALL, SWAP, GO = "0x10d1e85c", "0x022c0d9f", "0x01020304"


def pool_logs(pair: str) -> tuple[Log, ...]:
    """What a V2 pair announces when it trades (the values do not matter here, only that it traded)."""
    swap = "0xd78ad95fa46c994b6551d0da85fc275fe613ce37657fb8d5e3d130840159d822"
    return (Log(pair, (V2_SYNC,), "0x" + word(10**6) + word(10**6), 0),
            Log(pair, (swap, "0x" + word(BORROWER), "0x" + word(BORROWER)), "0x" + word(0) * 4, 0))


def flash_swap(kept: int, executor: str | None = None) -> TxObserved:
    """Borrow 1000 TOKEN from PAIR1, sell them on PAIR2 inside uniswapV2Call, repay PAIR1 1100 TOKEN2, and tip
    the sender 1 TOKEN2. `kept` is what the sale brought beyond the repayment (negative: the bot paid the
    difference from its own stock). `executor`: the contract the sender calls, which calls the borrower."""
    borrowed, repaid = 1000, 1100
    bought = repaid + kept
    callback = call(PAIR1, BORROWER, UNISWAP_V2_CALL,
                    erc20(BORROWER, TOKEN, PAIR2, borrowed),
                    call(BORROWER, PAIR2, SWAP, erc20(PAIR2, TOKEN2, BORROWER, bought)),
                    erc20(BORROWER, TOKEN2, PAIR1, repaid))
    borrow = call(BORROWER, PAIR1, SWAP, erc20(PAIR1, TOKEN, BORROWER, borrowed), callback)
    tip = erc20(BORROWER, TOKEN2, EOA, 1)
    if executor is None:
        trace, to = call(EOA, BORROWER, GO, borrow, tip), BORROWER
    else:
        trace, to = call(EOA, executor, GO, call(executor, BORROWER, GO, borrow, tip)), executor
    logs = (transfer_log(TOKEN, PAIR1, BORROWER, borrowed), transfer_log(TOKEN, BORROWER, PAIR2, borrowed),
            transfer_log(TOKEN2, PAIR2, BORROWER, bought), *pool_logs(PAIR2),
            transfer_log(TOKEN2, BORROWER, PAIR1, repaid), *pool_logs(PAIR1), transfer_log(TOKEN2, BORROWER, EOA, 1))
    return tx(trace, *logs, to=to)


def test_a_flash_swap_callback_that_trades_on_another_pair_is_not_reported():
    profitable = flash_swap(kept=5)
    [episode] = episodes(scan(profitable.trace))  # re-entered by PAIR1 and paying in and around the callback
    assert (episode.account, [r.by for r in episode.reentries]) == (BORROWER, [PAIR1])
    assert run(profitable) == []
    assert run(flash_swap(kept=-20)) == []  # a losing trade: the bot's own loss, and paid into the pools


def test_a_flash_swap_borrower_behind_an_executor_is_not_a_victim_either():
    # the borrower is not the transaction's `to` here: profitable, it ended no poorer; losing, what it paid in
    # the callback went into the pools it traded with (the repayment and the sale)
    assert run(flash_swap(kept=5, executor=ROUTER)) == []
    assert run(flash_swap(kept=-20, executor=ROUTER)) == []


def test_the_transactions_own_contract_losing_through_a_callback_is_not_reported():
    # the contract the sender called pays a counterparty, is called back and pays it again: its own business
    counterparty = "0x" + "cc" * 20
    again = call(counterparty, BORROWER, GO, erc20(BORROWER, TOKEN, counterparty, 10))
    pays = erc20(BORROWER, TOKEN, counterparty, 10, call(TOKEN, counterparty, GO, again))
    trace = call(EOA, BORROWER, GO, pays)
    logs = (transfer_log(TOKEN, BORROWER, counterparty, 10), transfer_log(TOKEN, BORROWER, counterparty, 10))
    assert [e.account for e in episodes(scan(trace))] == [BORROWER]
    assert run(tx(trace, *logs, to=BORROWER)) == []
    through_wallet = call(EOA, SAFE, GO, call(SAFE, BORROWER, GO, pays))  # a contract the sender did not call
    [other] = run(tx(through_wallet, *logs, to=SAFE))
    assert other.subject == BORROWER and other.severity == Severity.HIGH


def test_paying_only_inside_the_callback_is_not_the_pattern():
    # an unlock-callback design: the manager pays nothing before calling back, then pays what the callback takes
    manager = "0x" + "3a" * 20
    take = call(ATTACKER, manager, "0x0b0d9c09", erc20(manager, TOKEN, ATTACKER, 100))
    callback = call(manager, ATTACKER, "0x91dd7346", take)
    logs = (transfer_log(TOKEN, manager, ATTACKER, 100),)
    assert run(tx(call(EOA, ATTACKER, GO, call(ATTACKER, manager, "0x48c89491", callback)), *logs)) == []
    # the same manager paying first, before calling back, is the drain shape
    paid_first = call(ATTACKER, manager, "0x48c89491", erc20(manager, TOKEN, ATTACKER, 1), callback)
    [finding] = run(tx(call(EOA, ATTACKER, GO, paid_first), *logs, transfer_log(TOKEN, manager, ATTACKER, 1)))
    assert finding.subject == manager


def test_multicall_self_calls_are_not_reentry():
    # a vault's multicall calling itself (directly, and by DELEGATECALL of its own code) to pay out twice
    trace = call(EOA, ROUTER, "0xac9650d8", call(ROUTER, VAULT, "0xac9650d8",
        call(VAULT, VAULT, WITHDRAW, pay(VAULT, BENEFICIARY, ETH)),
        call(VAULT, VAULT, WITHDRAW, pay(VAULT, BENEFICIARY, ETH), kind="DELEGATECALL"),
        pay(VAULT, BENEFICIARY, ETH)))
    assert scan(trace).accounts[VAULT].reentries == []
    assert run(tx(trace, to=ROUTER), balances={(VAULT, NATIVE): 3 * ETH}) == []


def test_a_proxy_reached_again_through_its_implementation_is_not_reentry():
    implementation = "0x" + "1e" * 20
    trace = call(EOA, VAULT, WITHDRAW, call(VAULT, implementation, WITHDRAW,
                 call(VAULT, VAULT, "0x01020304", pay(VAULT, EOA, ETH)), pay(VAULT, EOA, ETH), kind="DELEGATECALL"))
    assert scan(trace).accounts[VAULT].reentries == []


@pytest.mark.parametrize(("kind", "found"), [("CALL", 1), ("STATICCALL", 0)])
def test_read_only_reentry_is_not_reentry(kind, found):
    # the same drain shape, but the re-entering calls are STATICCALLs: nothing under them can change state
    findings = run(tx(dao(levels=2, kind=kind), value=ETH))
    assert len(findings) == found
    if kind == "STATICCALL":
        assert scan(dao(levels=2, kind=kind)).accounts[VAULT].reentries == []


def test_calls_below_a_staticcall_are_not_reentry():
    view = call(ATTACKER, HELPER, "0x01020304", call(HELPER, VAULT, WITHDRAW, pay(VAULT, ATTACKER, ETH)),
                kind="STATICCALL")
    trace = call(EOA, ATTACKER, ATTACK, call(ATTACKER, VAULT, WITHDRAW, pay(VAULT, ATTACKER, ETH, view)))
    assert scan(trace).accounts[VAULT].reentries == []


def test_an_erc777_hook_reentering_a_holder_that_only_receives_is_not_reported():
    hook = "0x0023de29"
    deposit = call(SAFE, HOLDER, DEPOSIT,
                   erc20_from(HOLDER, TOKEN, SAFE, HOLDER, 100, call(TOKEN, HOLDER, hook)),  # recipient's hook
                   erc20(HOLDER, TOKEN2, SAFE, 100))  # the receipt
    trace = call(EOA, SAFE, "0x6a761202", deposit)
    logs = (transfer_log(TOKEN, SAFE, HOLDER, 100), transfer_log(TOKEN2, HOLDER, SAFE, 100))
    assert [r.where for r in scan(trace).accounts[HOLDER].reentries] == ["trace:0.0.0"]
    assert run(tx(trace, *logs, to=SAFE), balances={(HOLDER, TOKEN2): 100}) == []


def test_an_erc777_hook_reentry_that_pays_a_bonus_but_leaves_the_holder_richer_is_not_reported():
    hook = "0x0023de29"
    counterparty = "0x" + "cc" * 20
    reenter = call(counterparty, HOLDER, "0x01020304", erc20(HOLDER, TOKEN, counterparty, 5))  # a 5 bonus
    trace = call(EOA, counterparty, "0x01020304",
                 erc20(counterparty, TOKEN, HOLDER, 100),  # pays the holder 100 first
                 call(counterparty, HOLDER, "0x01020304",
                      erc20(HOLDER, TOKEN, counterparty, 50, call(TOKEN, counterparty, hook, reenter))))
    logs = (transfer_log(TOKEN, counterparty, HOLDER, 100), transfer_log(TOKEN, HOLDER, counterparty, 5),
            transfer_log(TOKEN, HOLDER, counterparty, 50))
    [episode] = episodes(scan(trace))
    assert episode.account == HOLDER  # re-entered while paying, in and around the hook …
    assert run(tx(trace, *logs, to=counterparty)) == []  # … but 45 richer at the end


def test_a_reverted_reentry_did_not_happen():
    assert run(tx(dao(levels=1, error_at=1), value=ETH)) == []
    assert scan(dao(levels=1, error_at=1)).accounts[VAULT].reentries == []
    # a deeper revert leaves the first re-entry: the vault still paid twice for one stake
    [finding] = run(tx(dao(levels=2, error_at=2), value=ETH))
    assert (finding.evidence["reentries"], finding.evidence["net"][0]["delta"]) == (1, str(-ETH))


def test_failed_transactions_and_traceless_ones_are_skipped():
    assert run(tx(dao(), value=ETH, success=False)) == []
    assert run(tx(None, value=ETH)) == []
    top_reverted = dao()
    top_reverted = CallFrame(top_reverted.kind, top_reverted.sender, top_reverted.to, top_reverted.value,
                             top_reverted.input, None, "out of gas", top_reverted.calls)
    assert run(tx(top_reverted, value=ETH)) == []


# ------------------------------------------------------------------------------------------------ decoding


def test_frame_outflows_decode_only_standard_calls_that_succeeded():
    assert frame_outflows(pay(VAULT, ATTACKER, 7)) == [(VAULT, NATIVE, ATTACKER, 7)]
    assert frame_outflows(erc20(VAULT, TOKEN, ATTACKER, 9)) == [(VAULT, TOKEN, ATTACKER, 9)]
    assert frame_outflows(erc20_from(HELPER, TOKEN, VAULT, ATTACKER, 9)) == [(VAULT, TOKEN, ATTACKER, 9)]
    assert frame_outflows(erc20(VAULT, TOKEN, ATTACKER, 9, output=None)) == [(VAULT, TOKEN, ATTACKER, 9)]  # USDT
    assert frame_outflows(erc20(VAULT, TOKEN, ATTACKER, 9, output="0x" + "00" * 32)) == []  # returned false
    assert frame_outflows(pay(VAULT, ATTACKER, 7, kind="DELEGATECALL")) == []  # carries no value of its own
    assert frame_outflows(pay(VAULT, VAULT, 7)) == []
    upper = call(VAULT, TOKEN, TRANSFER_CALL.upper().replace("0X", "0x") + word(ATTACKER) + word(9), output=TRUE)
    assert frame_outflows(upper) == [(VAULT, TOKEN, ATTACKER, 9)]


MALFORMED_CALLDATA = {
    "short": TRANSFER_CALL + word(ATTACKER),
    "truncated-amount": TRANSFER_CALL + word(ATTACKER) + word(9)[:-2],
    "dirty-address": TRANSFER_CALL + "ff" * 12 + ATTACKER[2:] + word(9),
    "not-hex": TRANSFER_CALL + "zz" * 32 + word(9),
    "zero-amount": TRANSFER_CALL + word(ATTACKER) + word(0),
    "transferFrom-short": TRANSFER_FROM_CALL + word(VAULT) + word(ATTACKER),
    "selector-only": TRANSFER_CALL,
    "empty": "",
}


@pytest.mark.parametrize("input_", MALFORMED_CALLDATA.values(), ids=MALFORMED_CALLDATA.keys())
def test_malformed_calldata_is_no_payment_and_never_raises(input_):
    frame = call(VAULT, TOKEN, input_, output=TRUE)
    assert frame_outflows(frame) == []
    reenter = call(ATTACKER, VAULT, WITHDRAW, frame)
    trace = call(EOA, ATTACKER, ATTACK, call(ATTACKER, VAULT, WITHDRAW, erc20(VAULT, TOKEN, ATTACKER, 1, reenter)))
    assert run(tx(trace, transfer_log(TOKEN, VAULT, ATTACKER, 1))) == []  # nothing paid inside the re-entry


def test_unknown_callees_and_odd_frames_do_not_raise():
    failed_create = CallFrame("CREATE", ATTACKER, None, 0, "0x6080", None, None, ())
    selfdestruct = CallFrame("SELFDESTRUCT", VAULT, ATTACKER, ETH, "0x", None, None, ())
    trace = call(EOA, ATTACKER, ATTACK, failed_create, call(ATTACKER, VAULT, WITHDRAW, selfdestruct))
    assert run(tx(trace)) == []


def test_a_trace_deeper_than_pythons_recursion_limit_is_walked():
    frame = pay(VAULT, ATTACKER, 1)
    for _ in range(1_500):  # 3,000 frames of the attacker and a helper calling each other
        frame = call(HELPER, ATTACKER, GO, call(ATTACKER, HELPER, GO, frame))
    trace = call(EOA, ATTACKER, ATTACK, call(ATTACKER, VAULT, WITHDRAW, pay(VAULT, ATTACKER, 1,
                 call(ATTACKER, VAULT, WITHDRAW, call(VAULT, HELPER, GO, frame)))))
    seen = scan(trace)
    assert [r.level for r in seen.accounts[VAULT].reentries] == [1]
    assert [o.reentered for o in seen.accounts[VAULT].outflows] == [False, True]
    assert len(seen.accounts[ATTACKER].reentries) == 1_500 + 2  # the helper's calls, and the vault's two payments


# ------------------------------------------------------------------------------------------------ identity


def test_fingerprint_is_stable_and_names_chain_tx_and_account():
    [first] = run(tx(dao(), value=ETH))
    [again] = run(tx(dao(), value=ETH), analyzer=Reentrancy())
    assert first.fingerprint == again.fingerprint == fingerprint("reentrancy", CHAIN, "0x" + "a1" * 32, VAULT)
    [other] = run(tx(dao(), value=ETH, hash_="0x" + "a2" * 32))
    assert other.fingerprint != first.fingerprint


def test_settings_are_validated_with_clear_messages():
    with pytest.raises(pydantic.ValidationError, match="min_reentries must be at least 1"):
        ReentrancySettings(min_reentries=0)
    for bad in (0, -0.1, 1.5):
        with pytest.raises(pydantic.ValidationError, match=r"critical_share .* in \(0, 1\]"):
            ReentrancySettings(critical_share=bad)
    with pytest.raises(pydantic.ValidationError):
        ReentrancySettings(min_reentry=2)  # a misspelt key is refused
    assert ReentrancySettings().critical_share == 0.5 and ReentrancySettings(critical_share=1).critical_share == 1


def test_declared_as_a_trace_analyzer():
    info = Reentrancy.info
    assert (info.id, info.needs_traces, info.consumes) == ("reentrancy", True, frozenset({"traces", "balances"}))
    assert Reentrancy.Settings is ReentrancySettings
