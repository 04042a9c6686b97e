"""The transaction analyzers in the running daemon, against real attacks and real look-alikes on anvil.

One anvil chain carrying the Solidity scenarios of tests/support/scenarios.py, played one after another, then
the daemon following it from genesis with every built-in analyzer at its defaults (no `[analyzers]` table) and
the scenarios' contracts under `[[watch]]` as their team would put them (so privileged-change sees the malicious
and the timelocked upgrade alike). Every attack
must be reported as an `exploit` of severity high or critical on one of the transactions that took the funds,
with evidence; the hard negatives and 1,000 ordinary transactions must produce nothing high or critical. What
lower-severity findings they do produce is counted and printed (BENCHMARKS.md records the figures).
"""

from __future__ import annotations

from collections import Counter

import pytest

from tests.support.anvil import anvil, require_anvil
from tests.support.daemon import follow_scenarios
from tests.support.scenarios import ATTACKS, NEGATIVES, ScenarioRun, ordinary_activity

CHAIN_ID = 31_337
LOUD = ("high", "critical")


@pytest.fixture(scope="module")
def played(tmp_path_factory):
    """(scenario runs, findings, incidents) after the daemon followed every scenario on one chain."""
    require_anvil()
    with anvil(CHAIN_ID) as node:
        runs: list[ScenarioRun] = [play(node) for play in (*ATTACKS.values(), *NEGATIVES.values())]
        runs.append(ordinary_activity(node, transactions=1_000))
        findings, incidents = follow_scenarios(node, tmp_path_factory.mktemp("attacks"), runs)
    return runs, findings, incidents


def within(run: ScenarioRun, findings: list[dict]) -> list[dict]:
    return [f for f in findings if run.first_block <= f["block"] <= run.last_block]


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_every_attack_is_an_exploit_finding_on_the_transaction_that_took_the_funds(played, name):
    runs, findings, _ = played
    [run] = [r for r in runs if r.name == name]
    loud = [f for f in within(run, findings) if f["severity"] in LOUD and f["type"] == "exploit"
            and f["tx_hash"] in run.key_txs]
    assert loud, f"{name}: nothing high/critical on {run.key_txs}; found {summarize(within(run, findings))}"
    for f in loud:
        evidence = f["evidence"]
        assert evidence["tx_hash"] == f["tx_hash"] and evidence["addresses"] and evidence["labels"]
        assert run.roles["victim"] in {a["address"] for a in evidence["addresses"]} or \
            run.roles["victim"] in {label["entity"] for label in evidence["labels"]}, (name, f["kind"], evidence)


def test_look_alikes_and_ordinary_activity_raise_nothing_high_or_critical(played):
    runs, findings, _ = played
    benign = [r for r in runs if not r.attack]
    assert sum(len(r.txs) for r in benign if r.name == "ordinary-activity") >= 1_000
    loud = [(r.name, f["kind"], f["severity"], f["evidence"].get("event"), f["tx_hash"]) for r in benign
            for f in within(r, findings) if f["severity"] in LOUD]
    assert loud == [], "\n".join(map(str, loud))
    counts = Counter((r.name, f["kind"], f["severity"]) for r in benign for f in within(r, findings))
    # the sole depositor takes back exactly what the ledger saw them pay in: not even a low outflow finding
    # (this also holds only if the analyzers saw the blocks in order, though the daemon fetches them ahead)
    [sole] = [r for r in benign if r.name == "sole-depositor-withdraw"]
    assert [f for f in within(sole, findings) if f["kind"] == "large-outflow"] == []
    [timelocked] = [r for r in benign if r.name == "timelock-upgrade"]
    governed = [f for f in within(timelocked, findings) if f["kind"] == "privileged-change"]
    assert {(f["severity"], f["evidence"]["event"]) for f in governed} >= {("low", "Upgraded"),
                                                                            ("medium", "CallScheduled")}, governed
    print("\nfalse positives below high, by scenario, analyzer and severity:", dict(sorted(counts.items())))


def test_each_attack_is_one_incident_of_the_daemons_own(played):
    runs, _, incidents = played
    for run in (r for r in runs if r.attack):
        holding = [i for i in incidents if set(run.key_txs) & set(i["tx_hashes"])]
        assert len(holding) == 1, (run.name, holding)
        assert {s["source"] for s in holding[0]["sources"]} == {"kamiyo"}
    assert len(incidents) == len(ATTACKS)  # and the look-alikes are none


def summarize(findings: list[dict]) -> list[tuple]:
    return [(f["kind"], f["severity"], f["type"], f["tx_hash"]) for f in findings]
