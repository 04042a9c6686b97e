"""Watchlists: entries parsed and checked, stored and read back, and which findings each concerns."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from kamiyo.errors import InputError
from kamiyo.watchlists.match import Matcher
from kamiyo.watchlists.store import Entry, Watchlist, check, create, load, parse_entry, remove

CHAINS = {"ethereum": 1, "bsc": 56}
POOL, FORK, OTHER = "0x" + "aa" * 20, "0x" + "bb" * 20, "0x" + "cc" * 20


def test_entries_are_parsed_with_clear_errors():
    assert parse_entry("ethereum:0x" + "AB" * 20, CHAINS) == Entry(1, "0x" + "ab" * 20)
    assert parse_entry("10:" + POOL, CHAINS) == Entry(10, POOL)
    assert parse_entry("protocol:  Uniswap   V2 ", CHAINS) == Entry(protocol="Uniswap V2")
    for bad, says in (("ethereum", "expected CHAIN:ADDRESS"), ("mars:" + POOL, "unknown chain 'mars'"),
                      ("ethereum:0x12", "expected an address"), ("protocol:ab", "at least 3"),
                      ("²:" + POOL, "unknown chain"), ("9" * 30 + ":" + POOL, "unknown chain")):
        with pytest.raises(InputError, match=says):
            parse_entry(bad, CHAINS)


def test_a_watchlist_lists_every_problem_at_once():
    with pytest.raises(InputError) as caught:
        check("", [], "severe", ["nope"], {"team"})
    text = str(caught.value)
    assert "name" in text and "entries" in text and "'severe'" in text and "unknown channel(s) nope" in text


async def test_stored_read_back_and_removed(tmp_path):
    from kamiyo.config import StorageSettings
    from kamiyo.storage.engine import create_engine
    from kamiyo.storage.migrations import upgrade

    engine = create_engine(StorageSettings(url=f"sqlite:///{tmp_path / 'k.db'}"))
    try:
        await upgrade(engine)
        async with engine.begin() as conn:
            ident = await create(conn, "key_1", "pools", [Entry(1, POOL), Entry(protocol="Uniswap")], kinds=[],
                                 min_severity="medium", channels=["team"])
            with pytest.raises(InputError, match="exists already"):
                await create(conn, "key_1", "pools", [Entry(1, POOL)], kinds=[], min_severity="low", channels=[])
            [stored] = await load(conn, "key_1")
            assert (stored.id, stored.entries, stored.channels) == (ident, (Entry(1, POOL), Entry(protocol="Uniswap")),
                                                                     ("team",))
            assert await load(conn, "key_2") == []
            assert not await remove(conn, ident, owner="key_2")  # another owner's
            assert await remove(conn, ident) and await load(conn) == []
    finally:
        await engine.dispose()


def watchlist(*entries, min_severity="low", kinds=()):
    return Watchlist("wl_1", "operator", "w", tuple(entries), tuple(kinds), min_severity, ("team",), None)


def finding(subject, chain=1, kind="large-outflow", severity="high", **evidence):
    return {"chain_id": chain, "subject": subject, "kind": kind, "severity": severity, "evidence": evidence}


def test_a_contract_entry_covers_itself_what_names_it_and_its_fork_family():
    lineage = SimpleNamespace(classes={"k-pool": 0, "k-fork": 0}, family=lambda key: "fam-pool")
    matcher = Matcher([watchlist(Entry(1, POOL))], {(1, POOL): "fam-pool", (56, FORK): "fam-pool",
                                                    (56, OTHER): "fam-other"}, lineage)
    assert matcher.watchlists_for(finding(POOL))
    assert matcher.watchlists_for(finding(OTHER, addresses=[{"role": "victim", "address": POOL.upper()}]))  # any case
    assert matcher.watchlists_for(finding(OTHER, chain=5, addresses=[{"role": "pool", "address": POOL}])) == []
    assert matcher.watchlists_for(finding(OTHER, addresses=[{"role": "pool", "address": POOL}]))
    assert matcher.watchlists_for(finding(FORK, chain=56, kind="fork-detected", family="k-fork"))
    assert matcher.watchlists_for(finding(FORK, chain=56))  # an exploit on a fork: by the subject's family
    assert matcher.watchlists_for(finding(OTHER, chain=56)) == []


def test_a_protocol_entry_covers_findings_naming_it_and_watchlists_filter_themselves():
    matcher = Matcher([watchlist(Entry(protocol="Uniswap"))], {}, None)
    assert matcher.watchlists_for(finding(OTHER, kind="fork-of-exploited", protocol="Uniswap V2 pairs"))
    assert matcher.watchlists_for(finding(OTHER, protocol="Sushi")) == []
    strict = watchlist(Entry(1, POOL), min_severity="critical", kinds=("reentrancy",))
    assert not strict.wants(finding(POOL)) and strict.wants(finding(POOL, kind="reentrancy", severity="critical"))
