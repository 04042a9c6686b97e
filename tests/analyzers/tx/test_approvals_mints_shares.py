"""approval-drain, unbacked-mint and share-inflation: each mechanism, its look-alikes, and malformed input."""

from __future__ import annotations

import pytest

from kamiyo.analyzers.tx.approvals import TRANSFER_FROM, ApprovalDrain, ApprovalSettings
from kamiyo.analyzers.tx.flows import ZERO, topic
from kamiyo.analyzers.tx.mints import UnbackedMint
from kamiyo.analyzers.tx.shares import ERC4626_DEPOSIT, ShareInflation
from kamiyo.analyzers.tx.base import Log
from kamiyo.findings import FindingType, Severity
from tests.analyzers.tx.build import addr, block, call, transfer, tx, word

ATTACKER, ROUTER, TOKEN, USD, POOL, VAULT = addr(0x66), addr(0xA6), addr(0x70), addr(0x71), addr(0xB0), addr(0xC0)
USERS = [addr(0x100 + i) for i in range(4)]
E = 10**18
SYNC = topic("Sync(uint112,uint112)")


def pull(spender: str, victim: str, recipient: str, amount: int, output: str = "0x" + "0" * 63 + "1"):
    frame = call(spender, TOKEN, input=TRANSFER_FROM + word(victim)[2:] + word(recipient)[2:] + word(amount)[2:])
    return frame.__class__(frame.kind, frame.sender, frame.to, 0, frame.input, output, None, ())


def drain_tx(victims, recipient=ATTACKER, spender=ROUTER, sender=ATTACKER, extra_logs=()):
    trace = call(sender, spender, input="0x1cff79cd", calls=tuple(pull(spender, v, recipient, 10 * E) for v in victims))
    logs = tuple(transfer(TOKEN, v, recipient, 10 * E) for v in victims) + tuple(extra_logs)
    return tx(sender, spender, trace=trace, logs=logs)


def test_a_spender_pulling_several_bystanders_tokens_to_the_caller_is_a_drain():
    [found] = ApprovalDrain().analyze(block(1, drain_tx(USERS)))
    assert (found.severity, found.type, found.subject) == (Severity.HIGH, FindingType.EXPLOIT, ROUTER)
    assert found.evidence["victims"] == sorted(USERS) and found.evidence["spenders"] == [ROUTER]
    assert {entry["label"] for entry in found.evidence["labels"]} == {"victim", "attacker"}


def test_one_bystander_is_medium_and_min_victims_is_honoured():
    [one] = ApprovalDrain().analyze(block(1, drain_tx(USERS[:1])))
    assert (one.severity, one.type) == (Severity.MEDIUM, FindingType.SUSPICIOUS)
    [strict] = ApprovalDrain(ApprovalSettings(min_victims=5)).analyze(block(1, drain_tx(USERS)))
    assert strict.severity is Severity.MEDIUM


def test_look_alikes_are_not_drains():
    # the user is the transaction's sender: a router spending its caller's approval
    own = drain_tx([ATTACKER], recipient=POOL)
    # a protocol pulling what subscribers owe into itself (recipient == spender)
    collect = drain_tx(USERS, recipient=ROUTER)
    # a limit-order fill: the makers are paid back in the same transaction
    filled = drain_tx(USERS, extra_logs=tuple(transfer(USD, ATTACKER, u, 5 * E) for u in USERS))
    # the tokens go to a third party, not the transaction's side (a relayer delivering gasless transfers)
    relayed = drain_tx(USERS, recipient=addr(0x999))
    # a transferFrom that returned false moved nothing
    refused = tx(ATTACKER, ROUTER, trace=call(ATTACKER, ROUTER, calls=tuple(
        pull(ROUTER, u, ATTACKER, E, output="0x" + "0" * 64) for u in USERS)))
    assert ApprovalDrain().analyze(block(1, own, collect, filled, relayed, refused)) == []


def test_without_a_trace_or_with_garbage_calldata_nothing_is_said():
    untraced = tx(ATTACKER, ROUTER, logs=tuple(transfer(TOKEN, u, ATTACKER, E) for u in USERS))
    garbage = tx(ATTACKER, ROUTER, trace=call(ATTACKER, ROUTER, calls=(call(ROUTER, TOKEN, input=TRANSFER_FROM + "zz"),
                                                                      call(ROUTER, TOKEN, input=TRANSFER_FROM))))
    assert ApprovalDrain().analyze(block(1, untraced, garbage)) == []


def sync(pool, r0, r1, index=0):
    return Log(pool, (SYNC,), word(r0) + word(r1)[2:], index)


def mint_and_dump(minted=1_000_000 * E, to=ATTACKER):
    return tx(ATTACKER, addr(0xB7), logs=(
        transfer(TOKEN, ZERO, to, minted),
        transfer(TOKEN, to, POOL, minted),
        transfer(USD, POOL, to, 990_000 * E),
        sync(POOL, 10_000 * E, 1_010_000 * E)))


def test_a_mint_of_most_of_the_supply_sold_into_a_pool_is_critical_when_the_pool_is_emptied():
    activity = block(5, mint_and_dump(), supplies={TOKEN: 14_000 * E}, balances={(POOL, USD): 1_000_000 * E})
    [found] = UnbackedMint().analyze(activity)
    assert (found.severity, found.type, found.subject) == (Severity.CRITICAL, FindingType.EXPLOIT, TOKEN)
    assert found.evidence["drained"] == [{"pool": POOL, "token": USD, "lost": str(990_000 * E), "share": 0.99}]
    activity = block(5, mint_and_dump(), supplies={TOKEN: 14_000 * E}, balances={(POOL, USD): 10_000_000 * E})
    assert [f.severity for f in UnbackedMint().analyze(activity)] == [Severity.HIGH]


def test_mints_that_are_small_kept_new_or_of_unknown_supply_are_not_exploits():
    small = block(5, mint_and_dump(minted=E), supplies={TOKEN: 14_000 * E})
    new = block(5, mint_and_dump(), supplies={TOKEN: 0})
    unknown = block(5, mint_and_dump())
    assert UnbackedMint().analyze(small) == UnbackedMint().analyze(new) == UnbackedMint().analyze(unknown) == []
    kept = block(5, tx(ATTACKER, TOKEN, logs=(transfer(TOKEN, ZERO, ATTACKER, 50_000 * E),)),
                 supplies={TOKEN: 14_000 * E})
    [found] = UnbackedMint().analyze(kept)
    assert (found.severity, found.type) == (Severity.MEDIUM, FindingType.SUSPICIOUS)  # a bridge delivering


def deposit_log(assets, shares, owner=USERS[0], sender=USERS[0]):
    return Log(VAULT, (ERC4626_DEPOSIT, word(sender), word(owner)), word(assets) + word(shares)[2:], 0)


def test_a_deposit_that_minted_no_shares_is_a_high_exploit_with_the_depositor_the_victim():
    [found] = ShareInflation().analyze(block(9, tx(USERS[0], VAULT, logs=(deposit_log(5_000 * E, 0),))))
    assert (found.severity, found.type, found.subject) == (Severity.HIGH, FindingType.EXPLOIT, VAULT)
    assert found.evidence["labels"][0]["entity"] == USERS[0]


@pytest.mark.parametrize("entry", [
    deposit_log(5_000 * E, 7),  # shares minted: an ordinary deposit
    deposit_log(999, 0),  # dust rounding to nothing
    Log(VAULT, (ERC4626_DEPOSIT, word(USERS[0])), word(5) + word(0)[2:], 0),  # a WETH-style or odd Deposit
    Log(VAULT, (ERC4626_DEPOSIT, word(USERS[0]), "0x" + "ff" * 32), word(5 * E) + word(0)[2:], 0),  # dirty owner
    Log(VAULT, (ERC4626_DEPOSIT, word(USERS[0]), word(USERS[0])), word(5 * E), 0),  # short data
])
def test_ordinary_dust_and_malformed_deposits_are_not_reported(entry):
    assert ShareInflation().analyze(block(9, tx(USERS[0], VAULT, logs=(entry,)))) == []
