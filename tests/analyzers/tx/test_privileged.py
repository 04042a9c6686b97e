"""`privileged-change` over logs laid out as Solidity emits them: topic0 = keccak of the signature, indexed
arguments as 32-byte topics (addresses left-padded), the rest ABI-encoded in data. Topic hashes below are the
published values, written out so that the module's own hashing is checked against them, not against itself."""

from __future__ import annotations

import pydantic
import pytest
from structlog.testing import capture_logs

from kamiyo.analyzers.tx.base import BlockActivity, Log, TxObserved
from kamiyo.analyzers.tx.privileged import EVENT_NAMES, EVENTS, PrivilegedChange, PrivilegedSettings
from kamiyo.chains.blocks import BlockRef
from kamiyo.findings import FindingType, Severity, fingerprint

OWNERSHIP_TRANSFERRED = "0x8be0079c531659141344cd1fd0a4f28419497f9722a3daafe3b4186f6b6457e0"
OWNERSHIP_TRANSFER_STARTED = "0x38d16b8cac22d99fc7c124b9cd0de2d3fa1faef420bfe791d8c362d765e22700"
UPGRADED = "0xbc7cd75a20ee27fd9adebab32041f755214dbc6bffa90cc0225b39da2e5c2d3b"
ADMIN_CHANGED = "0x7e644d79422f17c01e4894b5f4f588d331ebfa28653d42ae832dc59e38c9798f"
BEACON_UPGRADED = "0x1cf3b03a6cf19fa2baba4df148e9dcabedea7f8a5c07840e207e5c089be95d3e"
ROLE_GRANTED = "0x2f8788117e7eff1d82e926ec794901d17c78024a50270940304540a733656f0d"
ROLE_REVOKED = "0xf6391f5c32d9c69d2a47ea670b442974b53935d1edc7fd64eb21e047a839171b"
PAUSED = "0x62e78cea01bee320cd4e420270b5ea74000d11b0c9f74754ebdbfc544b05a258"
UNPAUSED = "0x5db9ee0a495bf2e6ff9c91a7834c1ba4fdd244a5e8aa4e537bd38aeae4b073aa"
INITIALIZED = "0x7f26b83ff96e1f2b6a682f133852f6798a09c465da95921460cefb3847402498"  # Initialized(uint8): not ours
CALL_EXECUTED = "0xc2617efa69bab66782fa219543714338489c4e9e178271560a91b82c3f612b58"  # TimelockController

DEFAULT_ADMIN_ROLE = "0x" + "00" * 32
MINTER_ROLE = "0x9f2df0fed2c77648de5860a4cc508cd0818c85b8b8a1ab4ceeef8d981c8956a6"  # keccak256("MINTER_ROLE")
TIMELOCK_ADMIN_ROLE = "0x5f58e3a2316349923ce3780f8d587db2d72378aed66a8261c916544fa6846ca5"
CUSTOM_ROLE = "0x" + "ab" * 32
ZERO = "0x" + "00" * 20

CHAIN = 1
PROXY = "0x87870bca3f3fd6335c3f4ce8392d69350b4fa4e2"  # watched, labelled
VAULT = "0x5f4ec3df9cbd43714fe2740f5e3616155c5b8419"  # watched, no label
STRANGER = "0xdac17f958d2ee523a2206206994597c13d831ec7"  # not watched
TIMELOCK = "0xee56e2b3d491590b5b31738cc34d5232f378a8d5"  # watched: the protocol's TimelockController
OWNER = "0x2a9f3e8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f"
ATTACKER = "0x00000000c0ffee00000000000000000000000bad"
IMPL = "0x1111111254eeb25477b68fb85ed929f73a960582"
IMPL2 = "0x4d9079bb4165aeb4084c526a32695dcfd2f77381"
BEACON = "0xbeac0000000000000000000000000000000000e1"
PROXY_ADMIN = "0x7a250d5630b4cf539739df2c5dacb4c659f2488d"
EXECUTOR = "0x9e3a9b2c5d7f8e1a4b6c3d2e1f0a9b8c7d6e5f40"  # the EOA that calls execute on the timelock

WATCHED = {PROXY: "Aave v3 Pool", VAULT: None, TIMELOCK: "Protocol Timelock"}


def word(value: str | int) -> str:
    """One ABI word as 64 hex digits: an address or bytes32 left-padded, an integer big-endian."""
    if isinstance(value, int):
        return f"{value:064x}"
    return value.removeprefix("0x").rjust(64, "0")


def topics(topic0: str, *indexed: str | int) -> tuple[str, ...]:
    return (topic0, *("0x" + word(v) for v in indexed))


def data(*values: str | int) -> str:
    return "0x" + "".join(word(v) for v in values)


def log(address: str, topic0: str, indexed: tuple[str | int, ...] = (), non_indexed: tuple[str | int, ...] = (),
        index: int = 0) -> Log:
    return Log(address, topics(topic0, *indexed), data(*non_indexed), index)


def tx(*logs: Log, sender: str = OWNER, to: str | None = PROXY, hash_: str = "0x" + "a1" * 32,
       success: bool = True) -> TxObserved:
    return TxObserved(hash_, 0, sender, to, 0, "0x", success, logs)


def block(*txs: TxObserved, watched: dict | None = WATCHED, chain_id: int = CHAIN) -> BlockActivity:
    context = {} if watched is None else {"watched": watched}
    return BlockActivity(BlockRef(chain_id, 19_000_000, "0x" + "bb" * 32, "0x" + "ba" * 32), txs, context=context)


def run(*logs: Log, analyzer: PrivilegedChange | None = None, **kw):
    return (analyzer or PrivilegedChange()).analyze(block(tx(*logs, **kw)))


# One log per event, as OpenZeppelin's contracts emit it, with what the finding must say.
CASES = [
    ("OwnershipTransferred", log(PROXY, OWNERSHIP_TRANSFERRED, (OWNER, ATTACKER)), Severity.HIGH,
     FindingType.SUSPICIOUS, {"previousOwner": OWNER, "newOwner": ATTACKER}),
    ("OwnershipTransferStarted", log(PROXY, OWNERSHIP_TRANSFER_STARTED, (OWNER, ATTACKER)), Severity.MEDIUM,
     FindingType.SUSPICIOUS, {"previousOwner": OWNER, "newOwner": ATTACKER}),
    ("Upgraded", log(PROXY, UPGRADED, (IMPL2,)), Severity.HIGH, FindingType.SUSPICIOUS, {"implementation": IMPL2}),
    ("BeaconUpgraded", log(PROXY, BEACON_UPGRADED, (BEACON,)), Severity.HIGH, FindingType.SUSPICIOUS,
     {"beacon": BEACON}),
    ("AdminChanged", log(PROXY, ADMIN_CHANGED, (), (PROXY_ADMIN, ATTACKER)), Severity.HIGH, FindingType.SUSPICIOUS,
     {"previousAdmin": PROXY_ADMIN, "newAdmin": ATTACKER}),
    ("RoleGranted", log(PROXY, ROLE_GRANTED, (MINTER_ROLE, ATTACKER, OWNER)), Severity.MEDIUM,
     FindingType.SUSPICIOUS, {"role": MINTER_ROLE, "account": ATTACKER, "sender": OWNER}),
    ("RoleRevoked", log(PROXY, ROLE_REVOKED, (MINTER_ROLE, ATTACKER, OWNER)), Severity.LOW, FindingType.INFO,
     {"role": MINTER_ROLE, "account": ATTACKER, "sender": OWNER}),
    ("Paused", log(PROXY, PAUSED, (), (OWNER,)), Severity.LOW, FindingType.INFO, {"account": OWNER}),
    ("Unpaused", log(PROXY, UNPAUSED, (), (OWNER,)), Severity.LOW, FindingType.INFO, {"account": OWNER}),
]


def test_topics_are_the_published_hashes():
    expected = {"OwnershipTransferred": OWNERSHIP_TRANSFERRED, "OwnershipTransferStarted": OWNERSHIP_TRANSFER_STARTED,
                "Upgraded": UPGRADED, "BeaconUpgraded": BEACON_UPGRADED, "AdminChanged": ADMIN_CHANGED,
                "RoleGranted": ROLE_GRANTED, "RoleRevoked": ROLE_REVOKED, "Paused": PAUSED, "Unpaused": UNPAUSED}
    assert {e.name: e.topic for e in EVENTS} == expected
    assert [c[0] for c in CASES] + ["CallScheduled"] == list(EVENT_NAMES)  # every event is exercised below


@pytest.mark.parametrize(("name", "entry", "severity", "type_", "args"), CASES, ids=[c[0] for c in CASES])
def test_each_event_on_a_watched_contract_is_a_finding(name, entry, severity, type_, args):
    [finding] = run(entry)
    assert (finding.kind, finding.severity, finding.type) == ("privileged-change", severity, type_)
    assert (finding.chain_id, finding.subject, finding.block, finding.tx_hash) == (CHAIN, PROXY, 19_000_000,
                                                                                   "0x" + "a1" * 32)
    ev = finding.evidence
    assert (ev["event"], ev["contract"], ev["label"], ev["log_index"], ev["args"]) == (name, PROXY, "Aave v3 Pool",
                                                                                       0, args)
    assert (ev["sender"], ev["to"], ev["tx_hash"], ev["confidence"]) == (OWNER, PROXY, "0x" + "a1" * 32, 0.9)
    assert ev["signature"].startswith(name + "(")
    assert {"role": "contract", "address": PROXY} in ev["addresses"]
    assert {"role": "tx_sender", "address": OWNER} in ev["addresses"]
    for address in args.values():
        if len(address) == 42:
            assert address in {a["address"] for a in ev["addresses"]}


def test_addresses_are_listed_by_role():
    [grant] = run(log(PROXY, ROLE_GRANTED, (MINTER_ROLE, ATTACKER, OWNER)))
    assert grant.evidence["addresses"] == [
        {"role": "contract", "address": PROXY}, {"role": "account", "address": ATTACKER},
        {"role": "granted_by", "address": OWNER}, {"role": "tx_sender", "address": OWNER},
        {"role": "tx_to", "address": PROXY}]
    assert (grant.evidence["role"], grant.evidence["role_name"]) == (MINTER_ROLE, "MINTER_ROLE")


@pytest.mark.parametrize(("role", "name"), [(DEFAULT_ADMIN_ROLE, "DEFAULT_ADMIN_ROLE"),
                                            (TIMELOCK_ADMIN_ROLE, "TIMELOCK_ADMIN_ROLE")])
def test_granting_an_admin_role_is_high(role, name):
    [grant] = run(log(PROXY, ROLE_GRANTED, (role, ATTACKER, OWNER)))
    assert (grant.severity, grant.evidence["role"], grant.evidence["role_name"]) == (Severity.HIGH, role, name)
    [revoke] = run(log(PROXY, ROLE_REVOKED, (role, OWNER, ATTACKER)))  # taking it away gives nobody anything
    assert (revoke.severity, revoke.evidence["role_name"]) == (Severity.LOW, name)


def test_an_unknown_role_is_medium_and_unnamed():
    [grant] = run(log(PROXY, ROLE_GRANTED, (CUSTOM_ROLE, ATTACKER, OWNER)))
    assert (grant.severity, grant.evidence["role"], grant.evidence["role_name"]) == (Severity.MEDIUM, CUSTOM_ROLE,
                                                                                      None)


def test_unwatched_contracts_report_nothing_whatever_they_emit():
    strangers = [Log(STRANGER, c[1].topics, c[1].data, i) for i, c in enumerate(CASES)]
    assert run(*strangers) == []
    assert run(*strangers, to=STRANGER) == []
    assert PrivilegedChange().analyze(block(tx(*(c[1] for c in CASES)), watched=None)) == []  # no watch list
    assert PrivilegedChange().analyze(block(tx(*(c[1] for c in CASES)), watched={})) == []


def test_an_unlabelled_watched_contract_is_reported_with_label_none():
    [finding] = run(log(VAULT, PAUSED, (), (OWNER,)), to=VAULT)
    assert (finding.subject, finding.evidence["label"]) == (VAULT, None)


def test_a_reverted_transaction_changed_nothing():
    assert run(log(PROXY, UPGRADED, (IMPL2,)), success=False) == []


MALFORMED = {
    # one of two addresses indexed: which one is the new owner cannot be told
    "owner-one-topic": Log(PROXY, topics(OWNERSHIP_TRANSFERRED, ATTACKER), data(OWNER), 0),
    "owner-no-args": Log(PROXY, (OWNERSHIP_TRANSFERRED,), "0x", 0),
    "upgraded-extra-topic": Log(PROXY, topics(UPGRADED, IMPL2, IMPL), "0x", 0),
    "upgraded-also-data": Log(PROXY, topics(UPGRADED, IMPL2), data(IMPL), 0),
    "role-two-topics": Log(PROXY, topics(ROLE_GRANTED, MINTER_ROLE, ATTACKER), data(OWNER), 0),
    "admin-short-data": Log(PROXY, (ADMIN_CHANGED,), data(PROXY_ADMIN), 0),
    "admin-truncated-word": Log(PROXY, (ADMIN_CHANGED,), data(PROXY_ADMIN, ATTACKER)[:-2], 0),
    "admin-long-data": Log(PROXY, (ADMIN_CHANGED,), data(PROXY_ADMIN, ATTACKER, 0), 0),
    "paused-odd-hex": Log(PROXY, (PAUSED,), data(OWNER) + "0", 0),
    "paused-not-hex": Log(PROXY, (PAUSED,), "0x" + "zz" * 32, 0),
    "paused-no-prefix": Log(PROXY, (PAUSED,), word(OWNER), 0),
    "paused-spaces": Log(PROXY, (PAUSED,), "0x" + " ".join([word(OWNER)[:32], word(OWNER)[32:]]), 0),
    "dirty-address": Log(PROXY, topics(UPGRADED, "ff" * 12 + IMPL2[2:]), "0x", 0),
    "short-topic": Log(PROXY, (UPGRADED, "0x" + word(IMPL2)[2:]), "0x", 0),
}


def entry_event(entry: Log) -> str:
    return next(e.name for e in EVENTS if e.topic == entry.topics[0])


@pytest.mark.parametrize("entry", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_log_is_skipped_with_a_warning_and_the_next_still_counts(entry):
    good = log(PROXY, UPGRADED, (IMPL2,), index=1)
    with capture_logs() as logs:
        findings = run(entry, good)
    assert [f.evidence["log_index"] for f in findings] == [1]
    [warning] = [e for e in logs if e["event"] == "privileged.log_skipped"]
    assert (warning["log_level"], warning["contract"], warning["log_index"]) == ("warning", PROXY, 0)
    assert warning["event_name"] == entry_event(entry)


def test_logs_without_topics_or_of_other_events_are_ignored_silently():
    anonymous = Log(PROXY, (), data(OWNER), 0)
    initialized = log(PROXY, INITIALIZED, (), (1,), index=1)
    with capture_logs() as logs:
        assert run(anonymous, initialized) == []
    assert logs == []


def test_unindexed_and_fully_indexed_redeclarations_are_read():
    # `event OwnershipTransferred(address previousOwner, address newOwner)` without `indexed`, as older
    # Ownable copies declare it, and a Pausable whose account is indexed: same topic0, unambiguous layout
    [owner] = run(log(PROXY, OWNERSHIP_TRANSFERRED, (), (OWNER, ATTACKER)))
    assert (owner.severity, owner.evidence["args"]) == (Severity.HIGH, {"previousOwner": OWNER, "newOwner": ATTACKER})
    [paused] = run(log(PROXY, PAUSED, (OWNER,)))
    assert paused.evidence["args"] == {"account": OWNER}


def test_a_proxy_deployment_reports_each_change_once_with_distinct_fingerprints():
    # TransparentUpgradeableProxy's constructor and an Ownable initializer, in emission order
    deployment = tx(
        log(PROXY, UPGRADED, (IMPL,), index=0),
        log(PROXY, OWNERSHIP_TRANSFERRED, (ZERO, OWNER), index=1),
        log(PROXY, INITIALIZED, (), (1,), index=2),
        log(PROXY, ADMIN_CHANGED, (), (ZERO, PROXY_ADMIN), index=3),
        to=None,
    )
    findings = PrivilegedChange().analyze(block(deployment))
    assert [(f.evidence["event"], f.evidence["log_index"]) for f in findings] == [
        ("Upgraded", 0), ("OwnershipTransferred", 1), ("AdminChanged", 3)]
    assert len({f.fingerprint for f in findings}) == 3
    owner = findings[1]
    assert owner.evidence["to"] is None and owner.evidence["to_label"] is None
    roles = [a["role"] for a in owner.evidence["addresses"]]
    assert roles == ["contract", "new_owner", "tx_sender"]  # the zero previous owner is not listed


def test_fingerprint_is_stable_and_names_chain_contract_tx_and_log():
    entry = log(PROXY, UPGRADED, (IMPL2,), index=7)
    [first] = run(entry)
    [again] = run(entry, analyzer=PrivilegedChange())  # another instance, as after a restart
    assert first.fingerprint == again.fingerprint == fingerprint("privileged-change", CHAIN, PROXY,
                                                                 "0x" + "a1" * 32, 7)
    [other_log] = run(log(PROXY, UPGRADED, (IMPL2,), index=8))
    [other_tx] = run(entry, hash_="0x" + "a2" * 32)
    [other_chain] = PrivilegedChange().analyze(block(tx(entry), chain_id=10))
    assert len({first.fingerprint, other_log.fingerprint, other_tx.fingerprint, other_chain.fingerprint}) == 4


EXECUTE_TRANSACTION = "0xa560e3198060a2f10670c1ec5b403077ea6ae93ca8de1c32b451dc1a943cd6e7"  # Compound Timelock


def test_a_timelock_executed_upgrade_is_low_informational_and_names_the_path():
    # An executor EOA calls TimelockController.execute, which calls the proxy's upgradeTo: the upgrade was
    # scheduled a delay before, so it is governance working, not a takeover; the timelock is named.
    calldata = "3659cfe6" + word(IMPL2)  # upgradeTo(address)
    call_executed = Log(TIMELOCK, topics(CALL_EXECUTED, "0x" + "cd" * 32, 0),
                        data(PROXY, 0, 0x80, len(calldata) // 2) + calldata.ljust(128, "0"), 1)
    upgrade = log(PROXY, UPGRADED, (IMPL2,), index=0)
    [finding] = PrivilegedChange().analyze(block(tx(upgrade, call_executed, sender=EXECUTOR, to=TIMELOCK)))
    [direct] = run(upgrade)  # the same upgrade sent by the owner itself
    assert (direct.severity, finding.severity, finding.type) == (Severity.HIGH, Severity.LOW, FindingType.INFO)
    assert finding.evidence["timelock"] == {"timelock": TIMELOCK, "standard": "TimelockController",
                                            "operation": "0x" + "cd" * 32, "target": PROXY, "log_index": 1}
    assert direct.evidence["timelock"] is None
    assert (finding.evidence["sender"], finding.evidence["sender_label"]) == (EXECUTOR, None)
    assert (finding.evidence["to"], finding.evidence["to_label"]) == (TIMELOCK, "Protocol Timelock")
    assert {"role": "tx_to", "address": TIMELOCK} in finding.evidence["addresses"]
    assert {"role": "tx_sender", "address": EXECUTOR} in finding.evidence["addresses"]


def test_a_compound_timelock_execution_counts_too_and_a_malformed_one_does_not():
    executed = Log(TIMELOCK, topics(EXECUTE_TRANSACTION, "0x" + "ee" * 32, PROXY_ADMIN), data(0, 0xc0, 0x100, 7), 1)
    upgrade = log(PROXY, UPGRADED, (IMPL2,), index=0)
    [finding] = PrivilegedChange().analyze(block(tx(upgrade, executed, to=TIMELOCK)))
    assert (finding.severity, finding.evidence["timelock"]["target"]) == (Severity.LOW, PROXY_ADMIN)
    dirty = Log(TIMELOCK, (EXECUTE_TRANSACTION, "0x" + "ee" * 32, "0x" + "ff" * 32), "0x", 1)
    [finding] = PrivilegedChange().analyze(block(tx(upgrade, dirty, to=TIMELOCK)))
    assert finding.severity is Severity.HIGH


CALL_SCHEDULED = "0x4cf4410cc57040e44862ef0f45f3dd5a5e02db8eb8add648d4b0e236f1d07dca"  # TimelockController


def scheduled(target: str, selector: str = "3659cfe6", delay: int = 172_800, emitter: str = TIMELOCK) -> Log:
    calldata = selector + word(IMPL2)
    return Log(emitter, topics(CALL_SCHEDULED, "0x" + "cd" * 32, 0),
               data(target, 0, 0xa0, 0, delay, len(calldata) // 2) + calldata.ljust(128, "0"), 0)


def test_a_call_scheduled_on_a_watched_contract_is_the_medium_early_warning():
    [finding] = PrivilegedChange().analyze(block(tx(scheduled(PROXY, emitter=STRANGER), to=STRANGER)))
    assert (finding.severity, finding.type, finding.subject) == (Severity.MEDIUM, FindingType.INFO, PROXY)
    ev = finding.evidence
    assert (ev["timelock"], ev["delay_seconds"], ev["selector"], ev["label"]) == (
        STRANGER, 172_800, "0x3659cfe6", "Aave v3 Pool")


def test_a_watched_timelock_scheduling_anything_is_reported_and_unwatched_ones_are_not():
    [finding] = PrivilegedChange().analyze(block(tx(scheduled(STRANGER), to=TIMELOCK)))
    assert finding.evidence["timelock_label"] == "Protocol Timelock"
    assert PrivilegedChange().analyze(block(tx(scheduled(STRANGER, emitter=STRANGER), to=STRANGER))) == []
    short = Log(TIMELOCK, topics(CALL_SCHEDULED, "0x" + "cd" * 32, 0), data(PROXY, 0), 0)
    assert PrivilegedChange().analyze(block(tx(short, to=TIMELOCK))) == []  # malformed: skipped, no raise
    ignoring = PrivilegedChange(PrivilegedSettings(ignore_events=["CallScheduled"]))
    assert ignoring.analyze(block(tx(scheduled(PROXY), to=TIMELOCK))) == []


def test_a_timelock_as_the_transaction_sender_is_named_too():
    [finding] = run(log(PROXY, UPGRADED, (IMPL2,)), sender=TIMELOCK)
    assert (finding.severity, finding.evidence["sender"], finding.evidence["sender_label"]) == (
        Severity.HIGH, TIMELOCK, "Protocol Timelock")


def test_ignore_events_is_honoured():
    analyzer = PrivilegedChange(PrivilegedSettings(ignore_events=["Paused", "Unpaused", "RoleRevoked"]))
    findings = analyzer.analyze(block(tx(*(Log(c[1].address, c[1].topics, c[1].data, i)
                                           for i, c in enumerate(CASES)))))
    assert [f.evidence["event"] for f in findings] == [n for n in EVENT_NAMES
                                                       if n not in ("Paused", "Unpaused", "RoleRevoked",
                                                                    "CallScheduled")]


def test_min_severity_keeps_admin_role_grants_that_outrank_their_event():
    analyzer = PrivilegedChange(PrivilegedSettings(min_severity="high"))
    findings = analyzer.analyze(block(tx(
        log(PROXY, ROLE_GRANTED, (MINTER_ROLE, ATTACKER, OWNER), index=0),
        log(PROXY, ROLE_GRANTED, (DEFAULT_ADMIN_ROLE, ATTACKER, OWNER), index=1),
        log(PROXY, PAUSED, (), (OWNER,), index=2),
        log(PROXY, UPGRADED, (IMPL2,), index=3),
    )))
    assert [(f.evidence["event"], f.evidence["log_index"]) for f in findings] == [("RoleGranted", 1),
                                                                                  ("Upgraded", 3)]


def test_settings_reject_unknown_events_listing_the_known_ones():
    with pytest.raises(pydantic.ValidationError) as caught:
        PrivilegedSettings(ignore_events=["Paused", "OwnershipTransfered"])
    message = str(caught.value)
    assert "unknown event 'OwnershipTransfered'" in message
    assert all(name in message for name in EVENT_NAMES)
    with pytest.raises(pydantic.ValidationError):
        PrivilegedSettings(ignore_events=["paused"])  # names are Solidity's, case included
    with pytest.raises(pydantic.ValidationError):
        PrivilegedSettings(min_severity="urgent")
    with pytest.raises(pydantic.ValidationError):
        PrivilegedSettings(ignore=["Paused"])  # a misspelt key is refused, not ignored
    assert PrivilegedSettings().enabled and PrivilegedSettings().ignore_events == []


def test_declared_as_a_log_analyzer():
    info = PrivilegedChange.info
    assert (info.id, info.consumes, info.needs_traces) == ("privileged-change", frozenset({"logs"}), False)
    assert PrivilegedChange.Settings is PrivilegedSettings


def test_events_in_the_transaction_that_created_the_contract_are_its_set_up_not_a_change():
    from kamiyo.analyzers.tx.base import Created

    upgrade, owner = log(PROXY, UPGRADED, (IMPL,), index=0), log(PROXY, OWNERSHIP_TRANSFERRED, (ZERO, OWNER), index=1)
    creation = TxObserved("0x" + "c1" * 32, 0, OWNER, None, 0, "0x", True, (upgrade, owner),
                          created=(Created(PROXY, OWNER),))
    findings = PrivilegedChange().analyze(block(creation))
    assert [(f.severity, f.type, f.evidence["at_creation"]) for f in findings] == [
        (Severity.LOW, FindingType.INFO, True)] * 2
    # a factory's product: the deployment finder names the creating transaction in the context
    later = tx(upgrade, hash_="0x" + "c2" * 32)
    activity = block(later)
    activity.context["created"] = {PROXY: later.hash}
    assert [f.severity for f in PrivilegedChange().analyze(activity)] == [Severity.LOW]
    activity.context["created"] = {PROXY: "0x" + "c3" * 32}  # created by another transaction: a real change
    assert [f.severity for f in PrivilegedChange().analyze(activity)] == [Severity.HIGH]
