"""DeFiHackLabs: the real incident lists and derived PoC index (../shared/data, commit b3719ce7) parsed whole and
spot-checked; a small checkout authored here for the PoC-header reader; and the inputs a parser must refuse."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from kamiyo.feeds import defihacklabs as dhl
from kamiyo.feeds.model import FeedFormatError, Report, RoleAddress

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "feeds" / "defihacklabs"
INDEX = DATA / "poc-index.derived.json"
CHECKOUT = Path(__file__).resolve().parent / "fixtures" / "dhl" / "checkout"
OLYMPUS = "src/test/2022-10/OlympusDao_exp.sol"
TX = re.compile(r"0x[0-9a-f]{64}")
ADDRESS = re.compile(r"0x[0-9a-f]{40}")


def _needs_data() -> None:
    if not (DATA / "README.md").is_file() or not INDEX.is_file():
        pytest.skip(f"real DeFiHackLabs data not found at {DATA}")


@pytest.fixture(scope="module")
def readme_reports() -> list[Report]:
    _needs_data()
    return dhl.read_checkout(DATA, "defihacklabs")


@pytest.fixture(scope="module")
def index_reports() -> list[Report]:
    _needs_data()
    return dhl.parse_poc_index(INDEX.read_bytes(), "defihacklabs")


@pytest.fixture(scope="module")
def merged(readme_reports, index_reports) -> list[Report]:
    return dhl.merge_readme_and_index(readme_reports, index_reports)


def _one(reports: list[Report], protocol: str) -> Report:
    found = [r for r in reports if r.protocol == protocol]
    assert len(found) == 1, f"{protocol}: {len(found)} reports"
    return found[0]


def _entry(heading: str, *lines: str) -> str:
    return "\n".join([heading, *lines, "", "---", ""])


# ------------------------------------------------------------------------------------------------- real data


def test_one_report_per_incident_heading_of_every_list(readme_reports):
    files = [DATA / "README.md", *sorted(DATA.glob("past/*/README.md"))]
    headings = sum(len(re.findall(r"^### \d{8}", f.read_text(encoding="utf-8"), re.M)) for f in files)
    assert headings == 857  # what the data README states
    assert len(readme_reports) == headings
    assert len({r.ref for r in readme_reports}) == headings
    days = [r.day for r in readme_reports]
    assert min(days) == date(2017, 7, 19) and max(days) == date(2026, 8, 20)
    assert all(r.source == "defihacklabs" and r.protocol for r in readme_reports)


def test_euler_finance(readme_reports, merged):
    euler = _one(readme_reports, "EulerFinance")
    assert (euler.day, euler.technique) == (date(2023, 3, 13), "Business Logic Flaw")
    assert euler.ref == "src/test/2023-03/Euler_exp.sol"
    assert (euler.loss_text, euler.loss_usd) == ("~$200M", 200_000_000)  # the README says ~$200M, not ~$197M
    assert euler.references[0] == dhl.REPO_BLOB + "src/test/2023-03/Euler_exp.sol"
    assert "https://twitter.com/peckshield/status/1635229594596036608" in euler.references
    assert euler.chains == ()  # the README entry links no explorer: the chain is known only from the PoC
    assert euler.raw["heading"] == "### 20230313 - EulerFinance - Business Logic Flaw"
    whole = _one(merged, "EulerFinance")
    assert whole.chains == (1,)
    assert whole.tx_hashes == ("0xc310a0affe2169d1f6feec1c63dbc7f7c62a887fa48795d327d4d2da2d6b111d",)
    assert whole.loss_usd == 200_000_000 and whole.raw["index"][0]["fork_block"] == "16817995"


def test_ronin_from_its_etherscan_links(readme_reports):
    ronin = _one(readme_reports, "Ronin Network")
    assert (ronin.day, ronin.technique, ronin.loss_usd) == (date(2022, 3, 29), "Bridge", 624_000_000)
    assert ronin.chains == (1,)
    assert ronin.tx_hashes == ("0xc28fad5e8d5e0ce6a2eaf67b6687be5d58113e16be590824d6cfa1a94467d0b7",
                               "0xed2c72ef1a552ddaec6dd1f5cddf0b59a8f37f82bdda5257d9c7c37db7bb9b08")
    assert "https://rekt.news/ronin-rekt/" in ronin.references


def test_bsc_incidents_resolve_to_chain_56(readme_reports):
    aros = _one(readme_reports, "AROS")
    assert aros.chains == (56,) and aros.loss_usd == 295_000
    assert aros.tx_hashes == ("0xe89fe640ec5241edfca7d8dcae77a0a4270dee15e4bbd043fc60e393aabf41e1",)
    # Phalcon's host names no chain; its /tx/bsc/ path does
    transit = _one(readme_reports, "TransitFinance")
    assert transit.chains == (56,)
    assert transit.tx_hashes == ("0x93ae5f0a121d5e1aadae052c36bc5ecf2d406d35222f4c6a5d63fef1d6de1081",)
    est = _one(readme_reports, "EST Token")
    assert est.addresses == (RoleAddress("other", 56, "0xd4524be41cd452576ab9ff7b68a0b89af8498a91"),)


def test_heading_variants(readme_reports):
    mara = _one(readme_reports, "MARA")  # "### 20240924-MARA---price-manipulation"
    assert (mara.day, mara.technique) == (date(2024, 9, 24), "price-manipulation")
    assert mara.ref == "src/test/2024-09/MARA_exp.sol"
    popsicle = _one(readme_reports, "Popsicle")
    assert popsicle.technique == "Repeated Reward Claim - Logic Flaw"
    assert _one(readme_reports, "ParaSpace NFT").day == date(2023, 3, 17)
    # a link to a PoC folder rather than a .sol file is still the PoC
    assert _one(readme_reports, "EverValueCoin").ref == "src/test/2025-08/EverValueCoin"


def test_loss_lines_as_written(readme_reports):
    assert _one(readme_reports, "Bancor Protocol").loss_text is None  # no Lost line at all
    assert _one(readme_reports, "bzx").loss_text is None  # "### Lost: " with nothing after it
    p719 = _one(readme_reports, "P719Token")  # "### Total Lost : …"
    assert (p719.loss_text, p719.loss_usd) == ("547.18 BNB (~$312K USD)", 312_000)
    prxvt = _one(readme_reports, "PRXVT")
    assert (prxvt.loss_text, prxvt.loss_usd) == ("32.8 ETH", None)
    assert sum(r.loss_text is not None for r in readme_reports) == 829


def test_last_entry_stops_before_the_trailing_chapters(readme_reports):
    prxvt = _one(readme_reports, "PRXVT")
    assert prxvt.references == (dhl.REPO_BLOB + "src/test/2026-01/PRXVT_exp.sol",
                                "https://x.com/CertiKAlert/status/2006685174587605315")
    assert not any("View Gas Reports" in line for line in prxvt.raw["lines"])


def test_every_hash_and_address_is_canonical(merged):
    hashes = [h for r in merged for h in r.tx_hashes]
    addresses = [a for r in merged for a in r.addresses]
    assert len(hashes) > 900 and len(addresses) > 1500
    assert all(TX.fullmatch(h) for h in hashes)
    assert all(ADDRESS.fullmatch(a.address) for a in addresses)
    assert all(a.role in {"attacker", "attack_contract", "vulnerable_contract", "victim", "other"} for a in addresses)


def test_poc_index(index_reports):
    assert len(index_reports) == 856  # one fewer than the README: the MARA heading is missing from it
    forked = [r for r in index_reports if r.raw.get("fork_chain")]
    assert len(forked) == 821  # the data README's "821 incidents have a chain": the chain the PoC forks
    assert all(r.chains and r.chains[0] == dhl.resolve_chain(r.raw["fork_chain"]) for r in forked)
    assert sum(1 for r in index_reports if r.chains) == 828  # 7 more known only from their explorer links
    assert sum(1 for r in index_reports if r.tx_hashes) == 737
    olympus = next(r for r in index_reports if r.ref == OLYMPUS)
    assert olympus.addresses == (RoleAddress("attacker", 1, "0x443cf223e209e5a2c08114a2501d8f0f9ec7d9be"),
                                 RoleAddress("attack_contract", 1, "0xa29e4fe451ccfa5e7def35188919ad7077a4de8f"),
                                 RoleAddress("vulnerable_contract", 1, "0x007fe7c498a2cf30971ad8f2cbc36bd14ac51156"))
    assert olympus.raw["fork_block"] == "15794363"
    hct = next(r for r in index_reports if r.ref == "src/test/2023-09/HCT_exp.sol")
    assert hct.chains == (56,) and {a.role for a in hct.addresses} == {"attacker", "attack_contract"}
    # an RPC URL where the chain name should be is not a chain the registry knows: kept as written
    assert ("https://api.zan.top/bsc-mainnet",) in [r.chains[:1] for r in index_reports]


def test_merge_readme_with_index(readme_reports, merged):
    assert len(merged) == 857
    without = [r.ref for r in merged if "index" not in r.raw]
    assert without == ["src/test/2024-09/MARA_exp.sol"]
    bebop = _one(merged, "Bebop")  # the index has no PoC for it: matched on day and name
    assert bebop.raw["index"][0]["poc"] is None and bebop.ref == "src/test/2025-08/Bebop_dex_exp.sol"
    assert sum(1 for r in merged if r.chains) > sum(1 for r in readme_reports if r.chains) + 600


# --------------------------------------------------------------------------------------- authored checkout


def test_checkout_with_poc_header():
    [report] = dhl.read_checkout(CHECKOUT, "dhl")
    assert (report.ref, report.protocol, report.day) == (OLYMPUS, "OlympusDAO", date(2022, 10, 21))
    assert (report.loss_text, report.loss_usd, report.chains) == ("~$292K (30500 OHM)", 292_000, (1,))
    assert report.addresses == (RoleAddress("attacker", 1, "0x443cf223e209e5a2c08114a2501d8f0f9ec7d9be"),
                                RoleAddress("attack_contract", 1, "0xa29e4fe451ccfa5e7def35188919ad7077a4de8f"),
                                RoleAddress("vulnerable_contract", 1, "0x007fe7c498a2cf30971ad8f2cbc36bd14ac51156"))
    assert report.tx_hashes == ("0x3ed75df83d907412af874b7998d911fdf990704da87c2b1a8cf95ca5d21504cf",)
    assert not any("Audius" in u for u in report.references)  # the trailing chapter's link is no PoC of it
    [header] = report.raw["index"]
    assert (header["fork_chain"], header["fork_block"]) == ("mainnet", "15794363")  # 15_794_364 - 1, live call
    assert header["lost"] == "~$292K (30,437 OHM)"
    assert not any("Twitter Guy" in line for line in header["key_info"])  # @Analysis ends the key info
    assert "0x64aa3364f17a4d01c6f1751fd97c2bd3d7e7f1d5" not in header["addresses"]  # OHM, from the code


def test_header_reader_matches_the_derived_index():
    _needs_data()
    [derived] = [e for e in json.loads(INDEX.read_bytes()) if e["poc"] == OLYMPUS]
    [report] = dhl.read_checkout(CHECKOUT, "dhl")
    header = report.raw["index"][0]
    for key in ("key_info", "tx_hashes", "fork_chain", "fork_block"):
        assert header[key] == derived[key], key
    assert sorted(header["addresses"]) == sorted(derived["addresses"])


def test_header_wins_over_the_index_for_its_poc():
    _needs_data()
    reports = dhl.read_checkout(CHECKOUT, "dhl", poc_index=INDEX)
    olympus = [r for r in reports if r.ref == OLYMPUS]
    assert len(olympus) == 1 and [e.get("file") for e in olympus[0].raw["index"]] == [OLYMPUS]
    assert len(reports) == 856  # the fixture's one incident and the index's 855 others, appended unmatched


# ------------------------------------------------------------------------------------------ README details


def test_roles_from_the_words_before_explorer_links():
    text = _entry(
        "### 20240101 Foo - Access Control",
        "### Lost: ~44 ETH",
        "[Foo_exp.sol](../../src/test/2024-01/Foo_exp.sol)",
        "- Attacker: https://bscscan.com/address/0x" + "AB" * 20,
        "- Attack Contract : https://bscscan.com/address/0x" + "cd" * 20,
        "- Vulnerable Contract: https://bscscan.com/address/0x" + "ef" * 20 + "#code",
        "- Victim pair: https://bscscan.com/address/0x" + "12" * 20,
        "Attack summary: the attacker used https://bscscan.com/address/0x" + "34" * 20,
        "- Attack Tx: https://app.blocksec.com/explorer/tx/bsc/0x" + "5A" * 32,
        "```sh",
        "https://etherscan.io/tx/0x" + "99" * 32 + "  <- in a code fence: not the entry's",
        "```",
    )
    [foo] = dhl.parse_readme(text, "t")
    assert [(a.role, a.chain_id, a.address[:6]) for a in foo.addresses] == [
        ("attacker", 56, "0xabab"), ("attack_contract", 56, "0xcdcd"), ("vulnerable_contract", 56, "0xefef"),
        ("victim", 56, "0x1212"), ("other", 56, "0x3434")]
    assert foo.tx_hashes == ("0x" + "5a" * 32,) and foo.chains == (56,)
    assert (foo.ref, foo.loss_text, foo.loss_usd) == ("src/test/2024-01/Foo_exp.sol", "~44 ETH", None)
    assert foo.raw == {"heading": "### 20240101 Foo - Access Control", "lines": text.splitlines()[1:-1]}


@pytest.mark.parametrize(("lost", "usd"), [
    ("~$197M", 197e6), ("$1.2 M USD", 1.2e6), ("~44 ETH", None), ("200k USDT (~$200k)", 200e3),
    ("~578K USDT", 578e3), ("~9464USDT", 9464), ("153,037 ETH (~$30M)", 30e6), ("2.60 ETH, 4,477.72 USDC", None),
    ("~81M", None), ("$~11M", 11e6), ("All funds returned", None),
])
def test_loss_amounts(lost, usd):
    [report] = dhl.parse_readme(_entry("### 20240101 Foo - Bar", f"### Lost: {lost}"), "t")
    assert report.loss_text == lost
    assert report.loss_usd == (pytest.approx(usd) if usd is not None else None)


def test_entry_without_poc_or_attack_type():
    [report] = dhl.parse_readme(_entry("### 20240101 Foo", "[x](../../src/test/../../../etc/passwd)"), "t")
    assert (report.ref, report.technique, report.references) == ("2024-01-01:Foo", None, ())


# ---------------------------------------------------------------------------------------------- bad inputs


def test_one_impossible_date_is_logged_and_skipped():
    text = _entry("### 20231345 Bad - Typo") + _entry("### 20231201 Good - Flaw") + _entry("### 20231130 Also")
    with capture_logs() as logs:
        reports = dhl.parse_readme(text, "t")
    assert [r.protocol for r in reports] == ["Good", "Also"]
    [warning] = [e for e in logs if e["event"] == "defihacklabs.heading_skipped"]
    assert (warning["log_level"], warning["line"], warning["heading"]) == ("warning", 1, "### 20231345 Bad - Typo")
    assert "20231345 is not a date" in warning["reason"]


@pytest.mark.parametrize("text", [
    "",
    "# Some project\n\n### Install\n\npip install it\n",
    _entry("### 20231345 Bad - Typo"),  # nothing readable left
    _entry("### 20231345 A - x") + _entry("### 2023-12-01 B - y") + _entry("### 20231201 C - z"),  # mostly unreadable
    "\x00\x01\x02\xff" * 1000,
    "x" * (50 << 20),
])
def test_not_a_defihacklabs_readme(text):
    with pytest.raises(FeedFormatError):
        dhl.parse_readme(text, "t")


def test_checkout_with_binary_or_huge_readme(tmp_path):
    (tmp_path / "README.md").write_bytes(bytes(range(256)) * 64)
    with pytest.raises(FeedFormatError, match="not UTF-8"):
        dhl.read_checkout(tmp_path, "t")
    with (tmp_path / "README.md").open("wb") as fh:
        fh.truncate(50 << 20)
    with pytest.raises(FeedFormatError, match="limit"):
        dhl.read_checkout(tmp_path, "t")
    with pytest.raises(FeedFormatError, match="no README.md"):
        dhl.read_checkout(tmp_path / "nowhere", "t")


GOOD_ENTRY = {"date": "2024-01-01", "name": "Foo", "attack_type": "Flaw", "lost": "$1M", "poc": None}


@pytest.mark.parametrize("payload", [
    b"",
    b"\x89PNG\r\n\x1a\n\x00\x00garbage",
    b"[]",
    json.dumps({"entries": [GOOD_ENTRY]}).encode(),
    json.dumps([GOOD_ENTRY, {**GOOD_ENTRY, "date": "2024-13-45"}]).encode(),
    json.dumps([GOOD_ENTRY, {**GOOD_ENTRY, "date": 1704067200}]).encode(),
    json.dumps([GOOD_ENTRY, {**GOOD_ENTRY, "tx_hashes": ["0x1234"]}]).encode(),
    json.dumps([GOOD_ENTRY, {**GOOD_ENTRY, "addresses": ["not an address"]}]).encode(),
    json.dumps([GOOD_ENTRY, {**GOOD_ENTRY, "name": ""}]).encode(),
    b" " * (50 << 20),
])
def test_not_a_poc_index(payload):
    with pytest.raises(FeedFormatError):
        dhl.parse_poc_index(payload, "t")


# ------------------------------------------------------------------------------------------------- merging


def test_merge_rules():
    poc = dhl.REPO_BLOB + "src/test/2024-01/Foo_exp.sol"
    readme = [
        Report("t", "src/test/2024-01/Foo_exp.sol", "Foo", date(2024, 1, 1), loss_text="~$1M", loss_usd=1e6,
               references=(poc,), raw={"heading": "h1"}),
        Report("t", "2024-01-02:Bar Finance", "Bar Finance", date(2024, 1, 2), raw={"heading": "h2"}),
        Report("t", "2024-01-03:Twin", "Twin", date(2024, 1, 3), raw={"heading": "h3"}),
        Report("t", "2024-01-03:Twin2", "Twin", date(2024, 1, 3), raw={"heading": "h4"}),
    ]
    victim = RoleAddress("victim", 1, "0x" + "11" * 20)
    index = [
        Report("t", "src/test/2024-01/Foo_exp.sol", "Foo renamed", date(2024, 1, 1), chains=(1,),
               addresses=(victim, RoleAddress("other", 1, victim.address)), tx_hashes=("0x" + "22" * 32,),
               references=(poc, "https://etherscan.io/tx/0x" + "22" * 32), raw={"n": 1}),
        Report("t", "2024-01-02:BarFinance", "BarFinance", date(2024, 1, 2), loss_text="5 ETH", raw={"n": 2}),
        Report("t", "2024-01-03:Twin", "Twin", date(2024, 1, 3), raw={"n": 3}),  # two README candidates
    ]
    foo, bar, *twins, unmatched = dhl.merge_readme_and_index(readme, index)
    assert (foo.protocol, foo.loss_usd, foo.chains, foo.addresses) == ("Foo", 1e6, (1,), (victim,))
    assert foo.references == (poc, "https://etherscan.io/tx/0x" + "22" * 32)
    assert foo.raw == {"readme": {"heading": "h1"}, "index": [{"n": 1}]}
    assert (bar.protocol, bar.loss_text, bar.raw["index"]) == ("Bar Finance", "5 ETH", [{"n": 2}])
    assert [t.raw for t in twins] == [{"heading": "h3"}, {"heading": "h4"}]
    assert unmatched is index[2]
