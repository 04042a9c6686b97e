"""`large-outflow`: graded by the ledger of who paid what in, never by the share alone."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from kamiyo.analyzers.tx.flows import NATIVE, ZERO
from kamiyo.analyzers.tx.outflow import KIND, LargeOutflow, OutflowSettings
from kamiyo.findings import FindingType, Severity
from tests.analyzers.tx.build import addr, block, call, event, transfer, tx

ETH = 10**18
VAULT, TOKEN, OTHER = addr(0xA1), addr(0x70), addr(0x71)
ALICE, BOB, MALLORY, HELPER = addr(0x11), addr(0x12), addr(0x66), addr(0x67)


def deposit(who: str, amount: int, vault: str = VAULT):
    return tx(who, vault, trace=call(who, vault, value=amount, input="0xd0e30db0"))


def withdraw(who: str, amount: int, vault: str = VAULT, to: str | None = None):
    return tx(who, vault, trace=call(who, vault, input="0x2e1a7d4d", calls=(call(vault, to or who, value=amount,
                                                                                  input="0x"),)))


def run(analyzer: LargeOutflow, *blocks):
    out = []
    for b in blocks:
        out.append(analyzer.analyze(b))
    return out


def test_drain_to_an_account_that_never_paid_in_is_a_high_exploit():
    analyzer = LargeOutflow()
    quiet, found = run(analyzer, block(1, deposit(ALICE, 10 * ETH), deposit(BOB, 10 * ETH)),
                       block(2, withdraw(MALLORY, 20 * ETH), balances={(VAULT, NATIVE): 20 * ETH}))
    assert quiet == []
    [finding] = found
    assert (finding.kind, finding.severity, finding.type) == (KIND, Severity.HIGH, FindingType.EXPLOIT)
    assert finding.subject == VAULT
    ev = finding.evidence
    assert ev["share"] == 1.0 and ev["lost"] == str(20 * ETH) and ev["token"] == NATIVE
    assert {"role": "taker", "address": MALLORY} in ev["addresses"]
    assert [entry["label"] for entry in ev["labels"]] == ["victim", "attacker"]
    assert ev["takers"] == [{"address": MALLORY, "paid_in": "0", "taken_out": str(20 * ETH)}]


def test_the_sole_depositor_withdrawing_everything_is_not_reported():
    analyzer = LargeOutflow()
    assert run(analyzer, block(1, deposit(ALICE, 10 * ETH)),
               block(2, withdraw(ALICE, 10 * ETH), balances={(VAULT, NATIVE): 10 * ETH})) == [[], []]


def test_taking_back_more_than_was_paid_in_is_reported():
    """A re-entrancy drain: the attacker deposited a little, in the same transaction even, and took it all."""
    analyzer = LargeOutflow()
    attack = tx(MALLORY, HELPER, trace=call(MALLORY, HELPER, input="0x9e5faafc", calls=(
        call(HELPER, VAULT, value=ETH, input="0xd0e30db0"),
        call(HELPER, VAULT, input="0x2e1a7d4d", calls=(call(VAULT, HELPER, value=21 * ETH, input="0x"),)),
    )))
    _, [found] = run(analyzer, block(1, deposit(ALICE, 10 * ETH), deposit(BOB, 10 * ETH)),
                     block(2, attack, balances={(VAULT, NATIVE): 20 * ETH}))
    assert found.severity is Severity.HIGH and found.type is FindingType.EXPLOIT
    assert found.evidence["takers"] == [{"address": HELPER, "paid_in": str(ETH), "taken_out": str(21 * ETH)}]


def test_a_control_change_before_the_drain_makes_it_critical():
    analyzer = LargeOutflow()
    takeover = tx(MALLORY, VAULT, logs=(event(VAULT, "OwnershipTransferred(address,address)", ZERO, MALLORY),),
                  trace=call(MALLORY, VAULT, input="0xc4d66de8"))
    _, _, [found] = run(analyzer, block(1, deposit(ALICE, 10 * ETH)), block(2, takeover),
                        block(3, withdraw(MALLORY, 10 * ETH), balances={(VAULT, NATIVE): 10 * ETH}))
    assert found.severity is Severity.CRITICAL and found.type is FindingType.EXPLOIT
    assert found.evidence["control_changes"][0]["event"] == "OwnershipTransferred"


def test_a_constructor_setting_its_first_owner_is_no_control_change():
    from kamiyo.analyzers.tx.base import Created

    analyzer = LargeOutflow()
    creation = tx(ALICE, None, logs=(event(VAULT, "OwnershipTransferred(address,address)", ZERO, ALICE),),
                  created=(Created(VAULT, ALICE),), trace=call(ALICE, VAULT, kind="CREATE"))
    _, _, [found] = run(analyzer, block(1, creation, deposit(BOB, 10 * ETH)), block(2),
                        block(3, withdraw(MALLORY, 10 * ETH), balances={(VAULT, NATIVE): 10 * ETH}))
    assert found.severity is Severity.HIGH


def test_the_deployer_emptying_its_own_contract_is_medium_not_an_exploit():
    from kamiyo.analyzers.tx.base import Created

    analyzer = LargeOutflow()
    creation = tx(MALLORY, None, created=(Created(HELPER, MALLORY),), trace=call(MALLORY, HELPER, kind="CREATE"))
    loot = tx(ALICE, VAULT, trace=call(ALICE, VAULT, input="0x2e1a7d4d",
                                       calls=(call(VAULT, HELPER, value=10 * ETH, input="0x"),)))
    sweep = tx(MALLORY, HELPER, trace=call(MALLORY, HELPER, input="0x01020304",
                                           calls=(call(HELPER, MALLORY, value=10 * ETH, input="0x"),)))
    *_, [found] = run(analyzer, block(1, creation), block(2, loot, balances={(VAULT, NATIVE): 100 * ETH}),
                      block(3, sweep, balances={(HELPER, NATIVE): 10 * ETH}))
    assert (found.subject, found.severity, found.type) == (HELPER, Severity.MEDIUM, FindingType.SUSPICIOUS)
    assert found.evidence["reason"] == "sent by or to the account that deployed it"


def test_a_team_paying_out_of_its_own_contract_is_medium_and_moving_to_its_own_new_contract_low():
    from kamiyo.analyzers.tx.base import Created

    team, grantee, successor = addr(0x7EA), addr(0x6A7), addr(0x5CC)
    creations = tx(team, None, created=(Created(VAULT, team), Created(successor, team)),
                   trace=call(team, VAULT, kind="CREATE"))
    payout = withdraw(team, 8 * ETH, to=grantee)
    migrate = withdraw(team, 10 * ETH, to=successor)
    *_, [paid] = run(LargeOutflow(), block(1, creations, deposit(ALICE, 10 * ETH)),
                     block(2, payout, balances={(VAULT, NATIVE): 10 * ETH}))
    assert (paid.severity, paid.evidence["reason"]) == (Severity.MEDIUM, "sent by or to the account that deployed it")
    *_, [moved] = run(LargeOutflow(), block(1, creations, deposit(ALICE, 10 * ETH)),
                      block(2, migrate, balances={(VAULT, NATIVE): 10 * ETH}))
    assert (moved.severity, moved.type) == (Severity.LOW, FindingType.INFO)


def test_without_the_history_of_who_paid_in_a_drain_is_only_medium():
    analyzer = LargeOutflow()
    [[found]] = run(analyzer, block(5, withdraw(MALLORY, 20 * ETH), balances={(VAULT, NATIVE): 20 * ETH}))
    assert found.severity is Severity.MEDIUM and found.type is FindingType.SUSPICIOUS
    assert "short history" in found.evidence["reason"]


def test_shares_burned_for_the_outflow_make_it_low():
    """An ERC-4626-style redemption: the vault is its own share token and burns the redeemer's shares."""
    analyzer = LargeOutflow()
    redeem = tx(ALICE, VAULT, logs=(transfer(VAULT, ALICE, ZERO, 5 * ETH), transfer(TOKEN, VAULT, ALICE, 100)),
                trace=call(ALICE, VAULT, input="0xba087652"))
    [[found]] = run(analyzer, block(7, redeem, balances={(VAULT, TOKEN): 100}))
    assert found.severity is Severity.LOW and found.type is FindingType.INFO


def test_an_outflow_paid_for_in_another_token_is_medium():
    analyzer = LargeOutflow()
    swap = tx(ALICE, VAULT, logs=(transfer(OTHER, ALICE, VAULT, 500), transfer(TOKEN, VAULT, ALICE, 90)),
              trace=call(ALICE, VAULT))
    [[found]] = run(analyzer, block(7, swap, balances={(VAULT, TOKEN): 100}))
    assert found.severity is Severity.MEDIUM


def test_a_pool_that_traded_is_left_to_the_reserve_analyzers():
    analyzer = LargeOutflow()
    sync = event(VAULT, "Sync(uint112,uint112)", data="0x" + "00" * 63 + "01" + "00" * 63 + "02")
    swap = tx(MALLORY, VAULT, logs=(transfer(TOKEN, VAULT, MALLORY, 90), sync), trace=call(MALLORY, VAULT))
    assert run(analyzer, block(7, swap, balances={(VAULT, TOKEN): 100})) == [[]]


@pytest.mark.parametrize("lost, balance", [(4 * ETH, 10 * ETH), (ETH // 2, ETH // 2)])
def test_small_shares_and_small_native_amounts_are_not_reported(lost, balance):
    analyzer = LargeOutflow()
    assert run(analyzer, block(3, withdraw(MALLORY, lost), balances={(VAULT, NATIVE): balance})) == [[]]


def test_dust_tokens_by_supply_share_are_not_reported():
    analyzer = LargeOutflow()
    drain = tx(MALLORY, VAULT, logs=(transfer(TOKEN, VAULT, MALLORY, 100),), trace=call(MALLORY, VAULT))
    assert run(analyzer, block(3, drain, balances={(VAULT, TOKEN): 100}, supplies={TOKEN: 10**12})) == [[]]
    drain = tx(MALLORY, VAULT, logs=(transfer(TOKEN, VAULT, MALLORY, 100),), trace=call(MALLORY, VAULT))
    assert run(LargeOutflow(), block(3, drain, balances={(VAULT, TOKEN): 100}, supplies={TOKEN: 10**5}))[0]


def test_an_unknown_balance_before_reports_nothing():
    assert run(LargeOutflow(), block(3, withdraw(MALLORY, 20 * ETH))) == [[]]


@pytest.mark.parametrize("second_block, reported", [(11, True), (12, True), (13, False)])
def test_losses_add_up_within_the_window_and_not_beyond_it(second_block, reported):
    """3 of 10, then 3 more: the episode counts 6 of the 10 it started from, while its first loss is in the window."""
    analyzer = LargeOutflow(OutflowSettings(window_blocks=3))
    first, second = run(analyzer, block(10, withdraw(MALLORY, 3 * ETH), balances={(VAULT, NATIVE): 10 * ETH}),
                        block(second_block, withdraw(MALLORY, 3 * ETH), balances={(VAULT, NATIVE): 7 * ETH}))
    assert first == []
    if reported:
        assert [f.evidence["share"] for f in second] == [0.6]
    else:
        assert second == []


def test_an_episode_is_reported_once_per_severity():
    analyzer = LargeOutflow()
    out = run(analyzer, block(1, withdraw(MALLORY, 6 * ETH), balances={(VAULT, NATIVE): 10 * ETH}),
              block(2, withdraw(MALLORY, 2 * ETH), balances={(VAULT, NATIVE): 4 * ETH}))
    assert [len(found) for found in out] == [1, 0]


def test_a_block_seen_again_undoes_what_its_old_version_booked():
    analyzer = LargeOutflow()
    # block 2 first had Mallory deposit 10 (so taking 10 back would be a refund); the new branch has no deposit
    run(analyzer, block(1, deposit(ALICE, 10 * ETH)), block(2, deposit(MALLORY, 10 * ETH)))
    [[], [found]] = run(analyzer, block(2), block(3, withdraw(MALLORY, 10 * ETH), balances={(VAULT, NATIVE): 10 * ETH}))
    assert found.severity is Severity.HIGH


def test_the_ledger_is_bounded():
    analyzer = LargeOutflow(OutflowSettings(max_ledger_entries=1_000))
    analyzer.analyze(block(1, *(deposit(addr(0x1000 + i), ETH) for i in range(3_000))))
    assert len(analyzer._ledger) <= 1_000 and len(analyzer._known) <= 1_000


def test_token_drain_by_transfer_logs():
    analyzer = LargeOutflow()
    fund = tx(ALICE, TOKEN, logs=(transfer(TOKEN, ALICE, VAULT, 1_000),), trace=call(ALICE, TOKEN))
    proof = tx(BOB, VAULT, trace=call(BOB, VAULT))  # the vault runs code: it is a contract
    drain = tx(MALLORY, VAULT, logs=(transfer(TOKEN, VAULT, MALLORY, 900),), trace=call(MALLORY, VAULT))
    out = run(analyzer, block(1, proof, fund), block(2, drain, balances={(VAULT, TOKEN): 1_000},
                                                     supplies={TOKEN: 10**6}))
    assert [f.severity for f in out[1]] == [Severity.HIGH]


def test_reverted_transactions_move_nothing():
    analyzer = LargeOutflow()
    failed = withdraw(MALLORY, 20 * ETH)
    failed = type(failed)(**{**{k: getattr(failed, k) for k in failed.__slots__}, "success": False})
    assert run(analyzer, block(2, failed, balances={(VAULT, NATIVE): 20 * ETH})) == [[]]


def test_settings_are_validated():
    with pytest.raises(ValidationError):
        OutflowSettings(min_share=0)
    with pytest.raises(ValidationError):
        OutflowSettings(min_share=1.5)
    with pytest.raises(ValidationError):
        OutflowSettings(unknown=1)
