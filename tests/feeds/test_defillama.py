"""DeFiLlama's /hacks: the recorded real payload read to the values it holds, odd field values kept as None, and
every payload that is not the hack list refused whole with a message that names what is wrong."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from kamiyo.feeds import defillama
from kamiyo.feeds import payload as json_payloads
from kamiyo.feeds.model import INCIDENT, FeedFormatError

SUBSET = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "feeds" / "defillama-hacks-subset.json"
ETHEREUM, ARBITRUM, BASE, POLYGON, SONIC, OPTIMISM, BSC, FANTOM, MOONRIVER = (
    1, 42161, 8453, 137, 146, 10, 56, 250, 1285)


@pytest.fixture(scope="module")
def payload() -> bytes:
    if not SUBSET.exists():
        pytest.skip(f"{SUBSET} is not here")
    return SUBSET.read_bytes()


@pytest.fixture
def records(payload) -> list[dict]:
    return json.loads(payload)


def parse(records: list) -> list:
    return defillama.parse(json.dumps(records).encode(), "defillama")


def test_the_real_subset_reads_whole(payload):
    reports = defillama.parse(payload, "defillama")
    assert len(reports) == 18
    assert {r.source for r in reports} == {"defillama"} and {r.kind for r in reports} == {INCIDENT}
    assert [r.raw for r in reports] == json.loads(payload)  # each record kept exactly as published


def test_balancer_v2_incidents(payload):
    balancer = sorted((r for r in defillama.parse(payload, "defillama") if r.protocol == "Balancer V2"),
                      key=lambda r: r.day)
    assert [(r.ref, r.day, r.loss_usd, r.classification, r.technique) for r in balancer] == [
        ("2611:1693094400", date(2023, 8, 27), 800_000, "Oracle Manipulation", "Spot Price Manipulation"),
        ("2611:1695081600", date(2023, 9, 19), 238_000, "Frontend & Infrastructure", "Frontend Compromise"),
        ("2611:1762128000", date(2025, 11, 3), 128_000_000, "Token & Share Accounting", "Rounding Error"),
    ]
    assert balancer[0].chains == (ETHEREUM,)
    assert balancer[2].chains == (ETHEREUM, ARBITRUM, BASE, POLYGON, SONIC, OPTIMISM)
    assert balancer[2].references == ()  # source is "" in the real data
    assert balancer[2].raw["parentProtocolId"] == "parent#balancer"


def test_other_real_values(payload):
    by_ref = {r.ref: r for r in defillama.parse(payload, "defillama")}
    euler = by_ref["1183:1678665600"]
    assert (euler.protocol, euler.day, euler.loss_usd) == ("Euler V1", date(2023, 3, 13), 197_000_000)
    assert euler.raw["returnedFunds"] == 240_000_000  # more than was taken: kept as published, in raw
    assert by_ref["591:1688688000"].chains == (MOONRIVER, BSC, FANTOM)
    assert by_ref["286:1665446400"].chains == ("Solana",)  # not an EVM chain: kept as the source wrote it
    assert by_ref["2286:1740096000"].loss_usd == 1_400_000_000  # Bybit, the largest


def test_odd_field_values_keep_the_record(records):
    records[0].update(amount=None, chain=None, defillamaId=2611, source="https://example.org/post-mortem ")
    records[1].update(defillamaId=None, source="a tweet, no link")
    del records[2]["amount"], records[2]["chain"]
    records[3]["amount"] = -5
    records[4]["amount"] = 1e300
    with capture_logs() as logs:
        reports = parse(records)
    assert len(reports) == 18
    assert (reports[0].loss_usd, reports[0].chains, reports[0].ref) == (None, (), "2611:1693094400")
    assert reports[0].references == ("https://example.org/post-mortem",)
    assert reports[1].ref == "Tornado Cash:1684540800" and reports[1].references == ()
    assert (reports[2].loss_usd, reports[2].chains) == (None, ())
    assert reports[3].loss_usd is None and reports[4].loss_usd is None
    dropped = [(e["ref"], e["field"]) for e in logs if e["event"] == "feed.field_dropped"]
    assert dropped == [("3:1660003200", "amount"), ("2611:1762128000", "amount")]


def test_fields_the_source_adds_later_are_kept(records):
    records[0]["auditedBy"] = ["someone"]
    assert parse(records)[0].raw["auditedBy"] == ["someone"]


def test_an_empty_list_is_no_hacks():
    assert defillama.parse(b"[]", "defillama") == []


def refused(payload: bytes, *words: str) -> str:
    with pytest.raises(FeedFormatError) as caught:
        defillama.parse(payload, "defillama")
    message = str(caught.value)
    assert message.startswith("defillama: ")
    for word in words:
        assert word in message, message
    return message


def test_not_json_is_refused(payload):
    refused(b"<html><body>502 Bad Gateway</body></html>", "not valid JSON")
    refused(b"", "is empty")
    refused(b" \n", "is empty")
    refused(payload[: len(payload) // 2], "not valid JSON")  # truncated
    refused(b"\xff\xfe\x00garbage", "not valid JSON")
    refused(b'[{"date": NaN, "name": "x"}]', "not valid JSON", "NaN")


def test_wrong_shapes_are_refused(records):
    refused(json.dumps({"hacks": records}).encode(), "must be a JSON array", "an object")
    refused(json.dumps(records[:3] + ["Balancer"]).encode(), "hack 3 must be an object", "a string")
    refused(b"[[1, 2]]", "hack 0 must be an object", "an array")


@pytest.mark.parametrize(("change", "words"), [
    (lambda r: r.pop("date"), ("hack 5 ('Multichain')", "date: Field required")),
    (lambda r: r.update(date="2023-07-07"), ("date:", "'2023-07-07'")),
    (lambda r: r.update(date=True), ("date:", "a boolean")),
    (lambda r: r.update(date=1688688000000), ("date:", "unix seconds")),  # milliseconds
    (lambda r: r.update(date=-1), ("date:", "unix seconds")),
    (lambda r: r.pop("name"), ("hack 5:", "name: Field required")),
    (lambda r: r.update(name="   "), ("name:",)),
    (lambda r: r.update(name="x" * 5000), ("name:", "at most 200 characters")),
    (lambda r: r.update(amount="126000000"), ("amount:", "a string")),
    (lambda r: r.update(chain="BSC"), ("chain:",)),
    (lambda r: r.update(chain=["BSC", 56]), ("chain.1:",)),
    (lambda r: r.update(chain=["Ethereum"] * 1000), ("chain:",)),
    (lambda r: r.update(classification={"kind": "Key Compromise"}), ("classification:",)),
    (lambda r: r.update(defillamaId=True), ("defillamaId:",)),
    (lambda r: r.update(bridgeHack="no"), ("bridgeHack:",)),
    (lambda r: r.update(source="https://" + "a" * 5000), ("source:",)),
])
def test_a_bad_record_refuses_the_whole_payload(records, change, words):
    """All or nothing: seventeen good records and one broken one give no reports at all."""
    change(records[5])
    refused(json.dumps(records).encode(), *words)


def test_deep_nesting_is_refused_not_a_recursion_error():
    refused(b"[" * 100_000 + b"]" * 100_000, "nested too deeply")  # past Python's recursion limit
    nested = b'[{"date": 1693094400, "name": "x", "extra": ' + b"[" * 40 + b"]" * 40 + b"}]"
    refused(nested, f"nested deeper than {json_payloads.MAX_DEPTH}")  # readable, but not this source


def test_huge_numbers_are_refused():
    """Numbers no double holds are not amounts or dates of anything: refused, and glimpsed, not printed."""
    for number in (b"1e999", b"1e400", b"9" * 400, b"-" + b"9" * 5000):
        message = refused(b'[{"date": 1693094400, "name": "x", "amount": ' + number + b"}]", "out of range")
        assert len(message) < 200
    refused(b'[{"date": 1e999, "name": "x"}]', "not valid JSON", "out of range")
    refused(b'[{"date": 1e300, "name": "x"}]', "date:", "unix seconds")  # a double, but no date
