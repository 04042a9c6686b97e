"""Merging reports into incidents: the rules one at a time on small records, then the real shared sources."""

from __future__ import annotations

import random
from dataclasses import asdict
from datetime import date
from pathlib import Path

import pytest

from kamiyo.feeds.merge import Record, merge, name_similarity, normalise

FEEDS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "feeds"
REKT = Path(__file__).resolve().parent / "fixtures" / "rekt-rss.xml"
TX = "0x" + "ab" * 32


def rec(source, ref, protocol, day, chains=(1,), loss=None, txs=(), addresses=(), kind="incident") -> Record:
    return Record(source, ref, kind, protocol, day, tuple(chains), loss, tuple(addresses), tuple(txs))


@pytest.mark.parametrize("a, b", [("Euler Finance", "EulerFinance"), ("Euler Finance", "Euler"),
                                  ("Ronin Bridge", "Ronin Network"), ("Balancer V2", "BalancerV2"),
                                  ("Nomad", "Nomad Bridge")])
def test_names_of_one_protocol_match(a, b):
    assert name_similarity(a, b) >= 0.85, (normalise(a), normalise(b))


@pytest.mark.parametrize("a, b", [("Uniswap", "SushiSwap"), ("Euler", "Beanstalk"), ("Curve", "Convex")])
def test_names_of_different_protocols_do_not(a, b):
    assert name_similarity(a, b) < 0.75


def test_name_matches_merge_across_sources_within_the_window_and_not_beyond():
    records = [rec("defillama", "1", "Euler V1", date(2023, 3, 13), loss=197e6),
               rec("rekt", "a", "Euler Finance", date(2023, 3, 19), loss=197e6),  # six days later
               rec("rekt", "b", "Euler Finance", date(2023, 6, 1))]  # another incident, months later
    incidents = merge(records)
    assert sorted(len(i.records) for i in incidents) == [1, 2]
    merged = next(i for i in incidents if len(i.records) == 2)
    assert {r.ref for r in merged.records} == {"1", "a"} and "names" in merged.why[0]


def test_a_sources_own_two_records_never_merge_by_name_even_through_a_third():
    records = [rec("defillama", "1", "Balancer", date(2023, 8, 27)),
               rec("defillama", "2", "Balancer", date(2023, 8, 30)),
               rec("rekt", "x", "Balancer", date(2023, 8, 28))]
    incidents = merge(records)
    assert sorted(len(i.records) for i in incidents) == [1, 2]
    assert all(len({r.source for r in i.records}) == len(i.records) for i in incidents)


def test_a_shared_transaction_or_victim_merges_whatever_the_names():
    victim = {"role": "victim", "chain_id": 56, "address": "0x" + "11" * 20}
    records = [rec("a", "1", "Foo", date(2024, 1, 1), txs=(TX,)), rec("b", "2", "Bar Protocol", None, txs=(TX,)),
               rec("c", "3", "Baz", date(2024, 5, 1), addresses=(victim,)),
               rec("d", "4", "Qux", date(2024, 5, 2), addresses=({**victim, "chain_id": None},))]
    incidents = merge(records)
    assert sorted(sorted(r.ref for r in i.records) for i in incidents) == [["1", "2"], ["3", "4"]]
    assert any("shared transaction" in w for i in incidents for w in i.why)
    assert any("shared victim" in w for i in incidents for w in i.why)


def test_disjoint_chains_and_very_different_losses_keep_similar_names_apart():
    records = [rec("defillama", "1", "Dexible", date(2023, 2, 17), chains=(1,), loss=2e6),
               rec("rekt", "a", "Dexible Pro", date(2023, 2, 18), chains=(56,), loss=50e6)]
    assert len(merge(records)) == 2


def test_advisories_stay_beside_incidents():
    records = [rec("defillama", "1", "Cosmos SDK", date(2024, 1, 1)),
               rec("ghsa", "GHSA-x", "Cosmos SDK", date(2024, 1, 1), chains=(), kind="advisory")]
    assert len(merge(records)) == 2


def _shared_records() -> list[Record]:
    from kamiyo.feeds import defihacklabs, defillama, rss

    if not FEEDS.exists():
        pytest.skip(f"{FEEDS} is not here")
    reports = defillama.parse((FEEDS / "defillama-hacks-subset.json").read_bytes(), "defillama")
    reports += defihacklabs.read_checkout(FEEDS / "defihacklabs", "defihacklabs",
                                          poc_index=FEEDS / "defihacklabs" / "poc-index.derived.json")
    reports += rss.parse(REKT.read_bytes(), "rekt")
    return [Record(r.source, r.ref, r.kind, r.protocol, r.day, tuple(r.chains), r.loss_usd,
                   tuple(asdict(a) for a in r.addresses), tuple(r.tx_hashes)) for r in reports]


def test_the_real_sources_merge_where_they_tell_of_one_hack_and_results_do_not_depend_on_order():
    records = _shared_records()
    incidents = merge(records)

    def sources_of(protocol_words: str, day: date) -> set[str]:
        for incident in incidents:
            if any(r.day == day and protocol_words in r.protocol.lower() for r in incident.records):
                return {r.source for r in incident.records}
        return set()

    assert sources_of("euler", date(2023, 3, 13)) == {"defillama", "defihacklabs", "rekt"}
    assert sources_of("ronin", date(2022, 3, 23)) == {"defillama", "defihacklabs", "rekt"}
    assert sources_of("balancer", date(2023, 8, 27)) == {"defillama", "defihacklabs"}
    assert sources_of("balancer", date(2025, 11, 3)) == {"defillama", "defihacklabs", "rekt"}
    assert sources_of("balancer", date(2023, 9, 19)) == {"defillama"}  # a frontend attack three weeks later
    assert sources_of("ronin", date(2024, 8, 6)) == {"defillama"}  # Ronin again, two years on
    multichain = [sum(r.source == "defillama" and r.protocol == "Multichain" for r in i.records) for i in incidents]
    assert sum(multichain) == 4 and max(multichain) == 1  # four hacks of one protocol, years apart: four incidents

    shuffled = records[:]
    random.Random(7).shuffle(shuffled)
    again = merge(shuffled)
    assert [(i.id, [r.key for r in i.records]) for i in again] == [(i.id, [r.key for r in i.records])
                                                                  for i in incidents]


def test_shared_evidence_does_not_join_a_sources_own_records_or_reports_months_apart():
    # hand-written sources copy a header into the next entry: DeFiHackLabs' HNet names DominoTT's attack tx
    records = [rec("defihacklabs", "hnet", "HNet", date(2023, 12, 7), txs=(TX,)),
               rec("defihacklabs", "domino", "DominoTT", date(2023, 12, 28), txs=(TX,)),
               rec("rekt", "late", "Something else", date(2024, 6, 1), txs=(TX,))]
    assert len(merge(records)) == 3
