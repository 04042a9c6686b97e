"""Incidents merged from the real shared payloads, read in place: DeFiLlama's recorded hacks served by a local HTTP
server, the DeFiHackLabs checkout with its PoC index, and the Rekt RSS fixture, pulled with `kamiyo feeds pull`.

The feeds are named "llama" and "dhl", not after their types, so that an incident showing DeFiLlama's protocol
name proves sources are ranked by their configured type."""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from kamiyo.cli import main

REPO = Path(__file__).resolve().parents[2]
FEEDS = REPO.parent / "shared" / "data" / "feeds"
LLAMA = FEEDS / "defillama-hacks-subset.json"
REKT = REPO / "tests" / "feeds" / "fixtures" / "rekt-rss.xml"
EULER_TX = "0xc310a0affe2169d1f6feec1c63dbc7f7c62a887fa48795d327d4d2da2d6b111d"


class Hacks:
    """DeFiLlama's /hacks on a free local port, answering whatever `body` holds now."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        hacks = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(hacks.body)))
                self.end_headers()
                self.wfile.write(hacks.body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hacks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def write_config(root: Path, url: str) -> Path:
    config = root / "k.toml"
    config.write_text(f"""
[storage]
url = "sqlite:///{root / 'k.db'}"

[[feeds]]
name = "llama"
type = "defillama"
url = "{url}"

[[feeds]]
name = "dhl"
type = "defihacklabs"
path = "{FEEDS / 'defihacklabs'}"
poc_index = "{FEEDS / 'defihacklabs' / 'poc-index.derived.json'}"

[[feeds]]
name = "rekt"
type = "rss"
path = "{REKT}"
""")
    return config


def pull(config: Path) -> int:
    return main(["feeds", "pull", "--config", str(config)])


@pytest.fixture
def hacks():
    if not FEEDS.exists():
        pytest.skip(f"{FEEDS} is not here")
    server = Hacks(LLAMA.read_bytes())
    yield server
    server.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """One pulled database for the tests that only read it."""
    if not FEEDS.exists():
        pytest.skip(f"{FEEDS} is not here")
    server = Hacks(LLAMA.read_bytes())
    try:
        config = write_config(tmp_path_factory.mktemp("incidents"), server.url)
        assert pull(config) == 0
    finally:
        server.close()
    return config


def run(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def listed(config: Path, capsys, *options: str) -> list[dict]:
    code, out, err = run(capsys, "incidents", "--config", str(config), "--format", "json", *options)
    assert code == 0, err
    return json.loads(out)["incidents"]


def shown(config: Path, capsys, incident_id: str) -> dict:
    code, out, err = run(capsys, "incidents", "show", incident_id, "--config", str(config), "--format", "json")
    assert code == 0, err
    return json.loads(out)["incident"]


def the_one(incidents: list[dict], day: str, source: str) -> dict:
    found = [i for i in incidents if i["date"] == day and any(s["source"] == source for s in i["sources"])]
    assert len(found) == 1, found
    return found[0]


def source_names(incident: dict) -> list[str]:
    return sorted(s["source"] for s in incident["sources"])


def table(db: Path, sql: str = "SELECT * FROM incidents ORDER BY id") -> list[tuple]:
    with sqlite3.connect(db) as con:
        return con.execute(sql).fetchall()


def test_euler_is_one_incident_from_three_sources_and_show_says_why(world, capsys):
    euler = the_one(listed(world, capsys), "2023-03-13", "llama")
    assert source_names(euler) == ["dhl", "llama", "rekt"]
    # DeFiLlama's name and loss, by the feed's type: the earliest record is DeFiHackLabs' "EulerFinance", $200M
    assert (euler["protocol"], euler["loss_usd"], euler["chains"]) == ("Euler V1", 197_000_000, ["ethereum"])
    assert EULER_TX in euler["tx_hashes"]
    assert euler["classification"] == "Token & Share Accounting"  # DeFiHackLabs has none; DeFiLlama's pair

    detail = shown(world, capsys, euler["id"])
    assert detail["technique"] == "Donation Attack"  # not DeFiHackLabs' earlier "Business Logic Flaw"
    assert [(r["source"], r["protocol"]) for r in detail["records"]] == [
        ("dhl", "EulerFinance"), ("llama", "Euler V1"), ("rekt", "Euler Finance")]
    assert detail["records"][1]["raw"]["name"] == "Euler V1" and detail["records"][1]["raw"]["amount"] == 197000000
    assert all(r["raw"] for r in detail["records"])
    assert len(detail["why"]) == 2
    assert any(w.endswith(f"shared transaction {EULER_TX}") and "rekt:" in w for w in detail["why"])
    name_merge = next(w for w in detail["why"] if "names" in w)
    assert "'EulerFinance' ~ 'Euler V1' (1.00)" in name_merge and "shared chain 1" in name_merge
    assert re.search(r"-> \d\.\d\d$", name_merge)  # the score its parts add up to

    code, text, _ = run(capsys, "incidents", "show", euler["id"], "--config", str(world))
    assert code == 0 and text.startswith(f"{euler['id']}  Euler V1  2023-03-13")
    assert "Why one incident (3 record(s) from 3 source(s): dhl, llama, rekt):" in text
    assert f"shared transaction {EULER_TX}" in text and "'EulerFinance' ~ 'Euler V1'" in text
    assert '"name": "Euler V1"' in text  # the raw records


def test_ronin_2022_merges_across_three_sources_and_ronin_2024_stays_apart(world, capsys):
    incidents = listed(world, capsys)
    ronin = the_one(incidents, "2022-03-23", "llama")
    assert source_names(ronin) == ["dhl", "llama", "rekt"] and ronin["protocol"] == "Ronin Bridge"
    later = the_one(incidents, "2024-08-06", "llama")
    assert later["sources"] == [{"source": "llama", "ref": "4440:1722902400"}] and later["id"] != ronin["id"]
    assert shown(world, capsys, later["id"])["why"] == []


def test_balancers_multi_source_hacks_merge_and_its_frontend_attack_stays_alone(world, capsys):
    incidents = listed(world, capsys)
    assert source_names(the_one(incidents, "2023-08-27", "llama")) == ["dhl", "llama"]
    assert source_names(the_one(incidents, "2025-11-03", "llama")) == ["dhl", "llama", "rekt"]
    frontend = the_one(incidents, "2023-09-19", "llama")
    assert frontend["sources"] == [{"source": "llama", "ref": "2611:1695081600"}]
    assert (frontend["protocol"], frontend["classification"]) == ("Balancer V2", "Frontend & Infrastructure")


def test_multichains_defillama_records_are_separate_incidents(world, capsys):
    multichain = {i["date"]: i for i in listed(world, capsys)
                  if any(s["source"] == "llama" and s["ref"].startswith("591:") for s in i["sources"])}
    assert sorted(multichain) == ["2021-07-10", "2022-01-18", "2023-02-15", "2023-07-07"]
    assert len({i["id"] for i in multichain.values()}) == 4
    for incident in multichain.values():
        assert [s for s in incident["sources"] if s["source"] == "llama"] == [
            s for s in incident["sources"] if s["ref"].startswith("591:")] and len(incident["sources"]) <= 2
    assert multichain["2023-07-07"]["chains"] == ["bsc", "fantom", "moonriver"]  # ids sorted: 56, 250, 1285


def test_since_and_chain_filter_and_limit(world, capsys):
    recent = listed(world, capsys, "--since", "2025-01-01")
    on_ethereum = listed(world, capsys, "--since", "2025-01-01", "--chain", "ethereum")
    assert on_ethereum and all(i["date"] >= "2025-01-01" and "ethereum" in i["chains"] for i in on_ethereum)
    assert [i for i in recent if "ethereum" in i["chains"]] == on_ethereum  # the same order: oldest first
    assert len(on_ethereum) < len(recent)  # there are 2025 incidents elsewhere, and they were left out
    assert [i["date"] for i in on_ethereum] == sorted(i["date"] for i in on_ethereum)
    assert {"2025-02-21", "2025-11-03"} <= {i["date"] for i in on_ethereum if "llama" in source_names(i)}
    assert listed(world, capsys, "--since", "2025-01-01", "--chain", "1") == on_ethereum
    solana = listed(world, capsys, "--chain", "solana")  # a name the registry does not know, as the feed wrote it
    assert [(i["protocol"], i["chains"]) for i in solana] == [("Mango Markets V3", ["Solana"])]

    code, out, err = run(capsys, "incidents", "--config", str(world), "--since", "2025-01-01", "--chain",
                         "ethereum", "--limit", "2", "--format", "text")
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["date", "protocol", "chains", "loss", "sources", "id"]
    assert [line.split()[-1] for line in lines[2:]] == [i["id"] for i in on_ethereum[:2]]
    assert "more incidents match than the 2 shown" in err


def test_user_mistakes_are_one_line_and_exit_2(world, capsys):
    for argv, words in ((["incidents", "--since", "2025-13-01"], "--since '2025-13-01'"),
                        (["incidents", "--chain", "etherium"], "--chain 'etherium'"),
                        (["incidents", "--limit", "ten"], "--limit 'ten'"),
                        (["incidents", "show", "inc-0000000000000000"], "no incident 'inc-0000000000000000'")):
        code, out, err = run(capsys, *argv, "--config", str(world))
        assert (code, out) == (2, ""), err
        assert len(err.splitlines()) == 1 and err.startswith("kamiyo: error: ") and words in err, err


def test_sources_counts_incidents_per_source_and_the_single_source_share(world, capsys):
    code, out, _ = run(capsys, "sources", "--config", str(world))
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:4] == ["source", "type", "records", "incidents"]
    per_source: dict[str, int] = {}
    single = 0
    stored = table(world.parent / "k.db", "SELECT sources FROM incidents")
    for (sources,) in stored:
        names = {s["source"] for s in json.loads(sources)}
        single += len(names) == 1
        for name in names:
            per_source[name] = per_source.get(name, 0) + 1
    rows = {line.split()[0]: line.split() for line in lines[2:-1]}
    assert {name: int(row[3]) for name, row in rows.items()} == per_source
    assert per_source["llama"] == 18 and per_source["rekt"] == 4  # no source's own records merged by name
    assert lines[-1] == (f"incidents: {len(stored)}; known from one source only: {single} "
                         f"({100 * single / len(stored):.1f}%)")
    assert 0 < single < len(stored)


def test_a_repeated_pull_leaves_incidents_identical_and_a_change_touches_only_its_incident(tmp_path, hacks, capsys):
    config = write_config(tmp_path, hacks.url)
    db = tmp_path / "k.db"
    assert pull(config) == 0
    before = table(db)
    assert len(before) > 800

    capsys.readouterr()
    assert pull(config) == 0
    statuses = [line.split()[1] for line in capsys.readouterr().out.splitlines()[2:] if line.strip()]
    assert statuses == ["unchanged"] * 3
    assert table(db) == before

    payload = json.loads(LLAMA.read_bytes())
    euler = next(h for h in payload if h["name"] == "Euler V1")
    euler["amount"] = 196_000_000
    hacks.body = json.dumps(payload).encode()
    assert pull(config) == 0
    after = table(db)
    changed = [(old, new) for old, new in zip(before, after) if old != new]
    assert [r[0] for r in before] == [r[0] for r in after] and len(changed) == 1  # the same ids; one row differs
    (old, new), = changed
    columns = [c for (_, c, *_rest) in table(db, "PRAGMA table_info(incidents)")]
    assert [c for c, a, b in zip(columns, old, new) if a != b] == ["loss_usd", "why", "updated_at"]
    assert new[columns.index("loss_usd")] == 196_000_000
    assert "(200,000,000 vs 196,000,000 USD)" in new[columns.index("why")]  # the name merge's loss evidence


def test_upgrading_a_database_that_holds_records_derives_its_incidents(tmp_path, hacks, capsys):
    config = write_config(tmp_path, hacks.url)
    db = tmp_path / "k.db"
    assert pull(config) == 0
    columns = "id, kind, day, chains, addresses, tx_hashes, sources, why"
    pulled = table(db, f"SELECT {columns} FROM incidents ORDER BY id")
    with sqlite3.connect(db) as con:  # the database as version 4 left it, records already stored
        con.execute("DROP TABLE incidents")
        con.execute("DELETE FROM schema_migrations WHERE version = 5")
    assert run(capsys, "incidents", "--config", str(config))[0] == 2  # a reader refuses the old schema
    assert main(["db", "upgrade", "--config", str(config)]) == 0
    assert table(db, f"SELECT {columns} FROM incidents ORDER BY id") == pulled
    # no configuration in a migration: sources ranked by name, and neither "llama" nor "dhl" is in the priority
    # list, so the earliest record names Euler until a pull that changes records rebuilds with the types
    (protocol,), = table(db, "SELECT protocol FROM incidents WHERE day = '2023-03-13' AND sources LIKE '%llama%'")
    assert protocol == "EulerFinance"


def test_an_advisory_naming_an_incidents_protocol_or_address_is_listed_with_it():
    from datetime import date
    from types import SimpleNamespace

    from kamiyo.feeds.incidents import incident_rows

    def row(source, ref, kind, protocol, addresses=()):
        return SimpleNamespace(source=source, ref=ref, kind=kind, protocol=protocol, day=date(2024, 5, 1),
                               chains=[1] if kind == "incident" else [], loss_usd=None, loss_text=None,
                               classification=None, technique=None, addresses=list(addresses), tx_hashes=[],
                               references=[])

    victim = {"role": "victim", "chain_id": 1, "address": "0x" + "aa" * 20}
    rows = incident_rows([row("defillama", "1", "incident", "Cosmos SDK Bridge"),
                          row("defillama", "2", "incident", "Sturdy", [victim]),
                          row("defillama", "3", "incident", "Ape"),
                          row("osv", "GHSA-1", "advisory", "github.com/cosmos/cosmos-sdk (Go)"),
                          row("osv", "GHSA-2", "advisory", "some-lib (npm)", [{**victim, "role": "other"}]),
                          row("osv", "GHSA-3", "advisory", "grape-js (npm)")], {})
    by_protocol = {r["protocol"]: r["advisories"] for r in rows if r["kind"] == "incident"}
    ids = {r["protocol"]: r["id"] for r in rows}
    assert by_protocol["Cosmos SDK Bridge"] == [ids["github.com/cosmos/cosmos-sdk (Go)"]]
    assert by_protocol["Sturdy"] == [ids["some-lib (npm)"]]  # it names the incident's address
    assert by_protocol["Ape"] == []  # too short a name to join by


def test_the_daemons_own_exploit_finding_merges_with_the_off_chain_report_of_the_same_attack():
    from datetime import date, datetime, timezone
    from types import SimpleNamespace

    from kamiyo.feeds.incidents import ONCHAIN, finding_records, incident_rows

    tx = "0x" + "c3" * 32
    report = SimpleNamespace(source="rekt", ref="https://rekt.news/x", kind="incident", protocol="Xyz Finance",
                             day=date(2026, 11, 30), chains=[1], loss_usd=5e6, loss_text="$5M",
                             classification=None, technique=None, addresses=[], tx_hashes=[tx], references=[])
    finding = SimpleNamespace(fingerprint="0x" + "f0" * 32, kind="reentrancy", type="exploit", chain_id=1,
                              subject="0x" + "aa" * 20, tx_hash=tx, created_at=datetime(2026, 11, 30, tzinfo=timezone.utc),
                              evidence={"addresses": [{"role": "victim", "address": "0x" + "AA" * 20}]})
    rows = incident_rows([report, *finding_records([finding])], {})
    assert len(rows) == 1 and {s["source"] for s in rows[0]["sources"]} == {"rekt", ONCHAIN}
    assert any("shared transaction" in why for why in rows[0]["why"])
    assert {"role": "victim", "chain_id": 1, "address": "0x" + "aa" * 20} in rows[0]["addresses"]


def test_several_findings_of_one_attack_are_one_incident_and_unrelated_attacks_are_not():
    from datetime import datetime, timezone
    from types import SimpleNamespace

    from kamiyo.feeds.incidents import finding_records, incident_rows

    day = datetime(2026, 11, 30, tzinfo=timezone.utc)

    def found(n, kind, subject, tx, when=day):
        return SimpleNamespace(fingerprint=f"0x{n:064x}", kind=kind, type="exploit", chain_id=1, subject=subject,
                               tx_hash=tx, created_at=when, evidence={"addresses": [
                                   {"role": "victim", "address": subject}]})

    vault, pool, other = "0x" + "aa" * 20, "0x" + "bb" * 20, "0x" + "cc" * 20
    attack = [found(1, "reentrancy", vault, "0x01"), found(2, "large-outflow", vault, "0x01"),
              found(3, "flash-loan", pool, "0x01"),  # the same transaction, another subject
              found(4, "large-outflow", vault, "0x02")]  # the same victim, a second transaction that day
    unrelated = [found(5, "large-outflow", other, "0x03"),
                 found(6, "large-outflow", vault, "0x04", datetime(2026, 12, 5, tzinfo=timezone.utc))]
    records = finding_records(attack + unrelated)
    assert sorted(len(r.tx_hashes) for r in records) == [1, 1, 2]
    [whole] = [r for r in records if len(r.tx_hashes) == 2]
    assert (whole.classification, whole.tx_hashes) == ("flash-loan, large-outflow, reentrancy", ["0x01", "0x02"])
    assert {a["address"] for a in whole.addresses} == {vault, pool}
    assert len(incident_rows(records, {})) == 3


async def test_rebuilding_reads_active_exploit_findings_from_the_database(tmp_path):
    from sqlalchemy import select

    from kamiyo.config import StorageSettings
    from kamiyo.feeds.incidents import ONCHAIN, rebuild_incidents
    from kamiyo.findings import Finding, FindingType, Severity
    from kamiyo.storage.engine import create_engine
    from kamiyo.storage.findings import record_finding
    from kamiyo.storage.migrations import upgrade
    from kamiyo.storage.schema import incidents

    engine = create_engine(StorageSettings(url=f"sqlite:///{tmp_path / 'k.db'}"))
    try:
        await upgrade(engine)
        async with engine.begin() as conn:
            for n, kind in enumerate((FindingType.EXPLOIT, FindingType.SUSPICIOUS)):
                await record_finding(conn, Finding("flash-loan", Severity.HIGH, kind, 1, "0x" + "aa" * 20, 7,
                                                   "0x" + f"{n:02x}" * 32, "0x" + f"{n:02x}" * 32,
                                                   {"protocol": "Victim Protocol"}))
            assert await rebuild_incidents(conn) == 1  # the exploit finding only
            (row,) = (await conn.execute(select(incidents))).all()
    finally:
        await engine.dispose()
    assert row.protocol == "Victim Protocol" and row.sources[0]["source"] == ONCHAIN
