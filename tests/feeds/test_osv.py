"""OSV 1.x: the recorded GHSA record read to its real values, the three payload shapes osv.dev and the GitHub
Advisory Database publish, on-chain addresses found in the prose, and broken payloads refused whole."""

from __future__ import annotations

import copy
import json
from datetime import date
from pathlib import Path

import pytest

from kamiyo.feeds import osv
from kamiyo.feeds.model import ADVISORY, FeedFormatError, RoleAddress

RECORD = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "feeds" / "osv-GHSA-4j93-fm92-rp4m.json"
ADDRESS = "0x9D7E2A2a3b7E5A6E4F1c0C8b1e2D3f4A5b6C7d8E"
TX = "0x" + "ab" * 32


@pytest.fixture(scope="module")
def payload() -> bytes:
    if not RECORD.exists():
        pytest.skip(f"{RECORD} is not here")
    return RECORD.read_bytes()


@pytest.fixture
def record(payload) -> dict:
    return json.loads(payload)


def parse(value) -> list:
    return osv.parse(json.dumps(value).encode(), "ghsa")


def test_the_real_record(payload, record):
    (report,) = osv.parse(payload, "ghsa")
    assert (report.source, report.ref, report.kind) == ("ghsa", "GHSA-4j93-fm92-rp4m", ADVISORY)
    assert report.protocol == "github.com/cosmos/cosmos-sdk (Go)"  # two affected ranges, one package
    assert report.day == date(2024, 2, 21)
    assert report.references == (
        "https://github.com/cosmos/cosmos-sdk/security/advisories/GHSA-4j93-fm92-rp4m",
        "https://github.com/cosmos/cosmos-sdk",
        "https://github.com/cosmos/cosmos-sdk/releases/tag/v0.47.9",
        "https://github.com/cosmos/cosmos-sdk/releases/tag/v0.50.4",
    )
    assert report.addresses == () and report.tx_hashes == ()  # the prose names no on-chain address
    assert (report.chains, report.loss_usd) == ((), None)
    assert report.raw == record and report.raw["aliases"] == []


def test_the_three_shapes(record):
    other = dict(record, id="GHSA-0000-1111-2222", aliases=["CVE-2024-0001"])
    assert [r.ref for r in parse([record, other])] == ["GHSA-4j93-fm92-rp4m", "GHSA-0000-1111-2222"]
    assert [r.ref for r in parse({"vulns": [record], "next_page_token": "abc"})] == ["GHSA-4j93-fm92-rp4m"]
    assert parse({"vulns": []}) == [] and parse([]) == []
    assert parse({}) == []  # osv.dev's query answer when nothing matches
    assert parse([other])[0].raw["aliases"] == ["CVE-2024-0001"]


def test_addresses_and_hashes_in_the_prose(record):
    record["summary"] = f"Reentrancy in the vault at {ADDRESS}"
    record["details"] = (f"Exploited in {TX}. The vault {ADDRESS.lower()} and the router "
                         "0x1111111111111111111111111111111111111111 were affected; "
                         "0x12345 and 0x" + "c" * 50 + " are not addresses.")
    record["references"].append({"type": "WEB", "url": "https://etherscan.io/address/"
                                                       "0x2222222222222222222222222222222222222222"})
    (report,) = parse(record)
    assert report.addresses == (
        RoleAddress("other", None, ADDRESS.lower()),
        RoleAddress("other", None, "0x1111111111111111111111111111111111111111"),
        RoleAddress("other", None, "0x2222222222222222222222222222222222222222"),
    )
    assert report.tx_hashes == (TX,)  # and no address read out of the hash's first 40 digits


def test_protocol_without_packages(record):
    record["affected"] = [{"ranges": [{"type": "GIT", "repo": "https://github.com/example/vault",
                                       "events": [{"introduced": "0"}]}]}]
    assert parse(record)[0].protocol == "https://github.com/example/vault"
    del record["affected"]
    assert parse(record)[0].protocol == "GHSA-4j93-fm92-rp4m"
    record["affected"] = [{"package": {"ecosystem": "npm", "name": "@openzeppelin/contracts"}},
                          {"package": {"ecosystem": "npm", "name": "@openzeppelin/contracts-upgradeable"}}]
    assert parse(record)[0].protocol == ("@openzeppelin/contracts (npm), "
                                         "@openzeppelin/contracts-upgradeable (npm)")


def test_published_dates(record):
    record["published"] = "2024-02-20T23:12:51-05:00"  # already the 21st in UTC
    assert parse(record)[0].day == date(2024, 2, 21)
    record["published"] = "2021-09-29T19:40:54.123456789Z"
    assert parse(record)[0].day == date(2021, 9, 29)
    del record["published"]
    assert parse(record)[0].day is None
    record["published"] = "last Tuesday"
    (report,) = parse(record)  # an odd date loses the day, not the advisory
    assert report.day is None and report.ref == "GHSA-4j93-fm92-rp4m"


def refused(payload: bytes, *words: str) -> None:
    with pytest.raises(FeedFormatError) as caught:
        osv.parse(payload, "ghsa")
    for word in ("ghsa: ", *words):
        assert word in str(caught.value), str(caught.value)


def test_broken_payloads_are_refused(payload, record):
    refused(payload[:-40], "not valid JSON")
    refused(b"not json", "not valid JSON")
    refused(b'"GHSA-4j93-fm92-rp4m"', "expected an OSV record", "a string")
    refused(json.dumps({"results": [{"vulns": [{"id": "GHSA-x", "modified": "2024-01-01T00:00:00Z"}]}]}).encode(),
            "expected an OSV record")  # the querybatch answer: ids only, not records
    refused(json.dumps({"vulns": {"id": "GHSA-x"}}).encode(), '"vulns" must be an array')
    refused(json.dumps([record, "GHSA-x"]).encode(), "OSV record 1 must be an object")
    refused(b"[" * 50_000 + b"]" * 50_000, "nested too deeply")


@pytest.mark.parametrize(("change", "words"), [
    (lambda r: r.pop("id"), ("id: Field required",)),
    (lambda r: r.update(id="GHSA 4j93"), ("id:",)),
    (lambda r: r.update(id="G" * 500), ("id:",)),
    (lambda r: r.update(schema_version="2.0.0"), ("schema_version:", "1.x")),
    (lambda r: r.update(references="https://github.com/cosmos/cosmos-sdk"), ("references:",)),
    (lambda r: r.update(references=[{"type": "WEB"}]), ("references.0.url: Field required",)),
    (lambda r: r.update(aliases="CVE-2024-0001"), ("aliases:",)),
    (lambda r: r.update(published=20240221), ("published:",)),
    (lambda r: r["affected"][1]["package"].update(name=["cosmos-sdk"]), ("affected.1.package.name:",)),
    (lambda r: r.update(details="x" * 2_000_000), ("details:", "at most")),
])
def test_a_bad_record_refuses_the_whole_payload(record, change, words):
    good = copy.deepcopy(record) | {"id": "GHSA-0000-1111-2222"}
    change(record)
    refused(json.dumps([good, record]).encode(), "OSV record 1", *words)
