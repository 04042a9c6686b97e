"""Forks of one stored deployment: real Uniswap, PancakeSwap, SushiSwap and BSCswap pairs and EIP-1167 clones,
stored the way the daemon stores them, related across chains by the stored links."""

from __future__ import annotations

import pytest

from kamiyo.reports.forks import DeploymentNotFound, forks_report, render_text
from tests.support.stored_world import (A1, A2, B1, BSC, BSCSWAP_ID, BSCSWAP_LABEL, C1, E1, ETH, P1, P2, P3, R1,
                                        UNCONFIGURED, Z1)

pytestmark = pytest.mark.npm
NAMES = {ETH: "eth", BSC: "bsc"}


def link(world, a: str, b: str):
    """The stored link between the classes of two named things, whichever end found it."""
    ka, kb = world.keys[a], world.keys[b]
    return next(l for l in world.lineage.links_of(ka) if {l.a, l.b} == {ka, kb})


async def test_uniswap_pair_is_related_to_its_copy_clones_forks_and_proxy_on_every_chain(world, engine):
    report = await forks_report(engine, ETH, A1, NAMES)
    assert report["subject"] == {"chain": "eth", "chain_id": ETH, "address": A1, "kind": "contract",
                                 "family": world.lineage.family(world.keys["A1"])}
    got = [(r["chain"], r["address"], r["relation"], r["similarity"]) for r in report["related"]]
    pancake, bscswap, sushi = link(world, "B1", "A1"), link(world, BSCSWAP_LABEL, "A1"), link(world, "C1", "A1")
    assert (pancake.relation, bscswap.relation, sushi.relation) == ("clone", "fork", "fork")
    assert got == [
        ("eth", A2, "identical", 1.0),  # the same class, another address
        ("bsc", B1, "clone", pancake.similarity),  # PancakeSwap's pair: Uniswap's, recompiled
        ("bsc", P3, "clone", pancake.similarity),  # a proxy running PancakeSwap's pair runs a clone
        ("eth", P1, "proxy", 1.0),  # an EIP-1167 clone of A1 runs A1's code
        (None, BSCSWAP_ID, "fork", bscswap.similarity),  # imported known code
        (str(UNCONFIGURED), C1, "fork", sushi.similarity),  # a chain the configuration does not name
    ]
    assert report["total"] == 6 and report["schema_version"] == 1
    known = next(r for r in report["related"] if r["chain"] is None)
    assert known["label"] == BSCSWAP_LABEL and known["chain_id"] is None
    assert all("label" not in r for r in report["related"] if r["chain"] is not None)
    listed = {r["address"] for r in report["related"]}
    assert not listed & {E1, P2, R1, Z1}  # another lineage, a proxy of nothing stored on bsc, rolled back


async def test_a_proxy_counts_in_the_family_of_the_code_it_runs(world, engine):
    report = await forks_report(engine, ETH, P1, NAMES)
    assert report["subject"]["kind"] == "eip1167"
    assert report["subject"]["family"] == world.lineage.family(world.keys["A1"])
    relations = {r["address"]: r["relation"] for r in report["related"]}
    assert relations[A1] == relations[A2] == "identical"  # the code P1 runs
    assert relations[B1] == "clone" and relations[C1] == "fork"
    # P2 has P1's code (one implementation address) but runs nothing stored on its chain: not this family
    assert P2 not in relations and world.keys["P2"] == world.keys["P1"]


async def test_a_proxy_to_code_not_stored_on_its_chain_stands_in_its_own_class(world, engine):
    report = await forks_report(engine, BSC, P2, NAMES)
    assert report["subject"]["family"] == world.keys["P2"]
    assert report["related"] == [] and report["total"] == 0
    assert "no other deployment or imported code in this family" in render_text(report)


async def test_limit_caps_the_list_and_total_counts_everything(world, engine):
    report = await forks_report(engine, BSC, B1, NAMES, limit=2)
    assert report["total"] == 6
    assert [(r["address"], r["relation"]) for r in report["related"]] == [(P3, "proxy"), (A1, "clone")]
    assert report["related"][1]["similarity"] == link(world, "B1", "A1").similarity


@pytest.mark.parametrize("where", [(BSC, R1), (ETH, "0x" + "de" * 20), (BSC, A1)])
async def test_an_address_with_no_stored_deployment_is_refused(engine, where):
    with pytest.raises(DeploymentNotFound, match=where[1]):
        await forks_report(engine, *where, NAMES)


async def test_text_is_an_aligned_table(engine):
    report = await forks_report(engine, ETH, A1, NAMES)
    lines = render_text(report).splitlines()
    assert lines[0] == f"eth:{A1}  contract  family {report['subject']['family']}"
    header, rule, *rows = lines[2:10]
    assert header.split() == ["relation", "similarity", "chain", "address", "label"]
    assert set(rule.replace(" ", "")) == {"-"} and len(rows) == len(report["related"]) == 6
    similarity_ends = header.index("similarity") + len("similarity")  # numbers are right-aligned
    chain_at, address_at, label_at = header.index("chain"), header.index("address"), header.index("label")
    for row, entry in zip(rows, report["related"]):
        assert row[:similarity_ends].split() == [entry["relation"], f"{entry['similarity']:.4f}"]
        assert row[chain_at:address_at].strip() == (entry["chain"] or "known")
        assert row[address_at:label_at].strip() == entry["address"]
        assert row[label_at:] == entry.get("label", "-")
    assert lines[-1] == "6 related"
