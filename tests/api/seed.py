"""A database for the API tests, written through the daemon's own writers: findings by `record_finding`, feed
records by `pull.record_row` and incidents by `rebuild_incidents` (as a pull does), deployments as rows of the
deployments table. Times are relative to when it is seeded, so the free tier's 24-hour delay has something on
each side of it.

  findings   30 fork-detected (eth and bsc, 3 days to 43 hours old, severities and types cycling; two share
             a created_at), one of them retracted; an old flash-loan exploit (3 days) and a fresh large-outflow
             exploit (1 hour old): both become incidents of source `kamiyo`
  feeds      llama (defillama): Alpha Protocol, Beta Finance, Gamma (on "Solana"); rekt (rss): Alpha Protocol
             again, a day later (so one incident from two sources, with its reason); rekt last failed
  deploys    12 on eth, blocks 100..111; 3 on bsc
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import update

from kamiyo.config import StorageSettings
from kamiyo.feeds.incidents import rebuild_incidents
from kamiyo.feeds.model import Report, RoleAddress
from kamiyo.feeds.pull import record_row
from kamiyo.findings import RETRACTED, Finding, FindingType, Severity, fingerprint
from kamiyo.storage.engine import create_engine
from kamiyo.storage.findings import record_finding
from kamiyo.storage.migrations import upgrade
from kamiyo.storage.schema import deployments, feed_records, feed_state, findings
from kamiyo.storage.upsert import insert_new, upsert

ETH, BSC = 1, 56
SOURCE_TYPES = {"llama": "defillama", "rekt": "rss"}
VICTIM = "0x" + "ab" * 20
OLD_VICTIM = "0x" + "cd" * 20


def address(n: int) -> str:
    return "0x" + f"{n:040x}"


@dataclass
class Seeded:
    db: Path
    seeded_at: datetime
    fingerprints: list[str] = field(default_factory=list)  # every finding, oldest first
    retracted: str = ""
    fresh_exploit: str = ""
    old_exploit: str = ""


def fork_finding(n: int, created: datetime, chain_id: int | None = None) -> Finding:
    severities, types = list(Severity), [FindingType.INFO, FindingType.SUSPICIOUS]
    return Finding(kind="fork-detected", severity=severities[n % len(severities)], type=types[n % 2],
                   chain_id=chain_id if chain_id is not None else (ETH if n % 3 else BSC), subject=address(n),
                   block=1000 + n, tx_hash="0x" + f"{n:064x}", fingerprint=fingerprint("fork-detected", n, created),
                   evidence={"origin": address(9000 + n), "labels": [{"entity": address(n), "label": "fork"}]},
                   created_at=created)


def exploit(kind: str, victim: str, created: datetime, protocol: str, tx: str) -> Finding:
    return Finding(kind=kind, severity=Severity.HIGH, type=FindingType.EXPLOIT, chain_id=ETH, subject=victim,
                   block=5000, tx_hash=tx, fingerprint=fingerprint(kind, victim, tx),
                   evidence={"protocol": protocol, "addresses": [{"role": "victim", "address": victim}],
                             "loss_usd": 1_000_000.0}, created_at=created)


def reports() -> list[Report]:
    return [
        Report("llama", "llama-1", "Alpha Protocol", date(2024, 3, 1), chains=(ETH,), loss_usd=5e6,
               classification="Protocol Logic", addresses=(RoleAddress("victim", ETH, address(0xA1FA)),),
               references=("https://example.org/alpha",), raw={"name": "Alpha Protocol", "amount": 5e6}),
        Report("llama", "llama-2", "Beta Finance", date(2024, 3, 5), chains=(BSC,), loss_usd=2e5,
               raw={"name": "Beta Finance"}),
        Report("llama", "llama-3", "Gamma", date(2024, 3, 7), chains=("Solana",), loss_usd=1e4, raw={"name": "Gamma"}),
        Report("rekt", "https://rekt.news/alpha", "Alpha Protocol - REKT", date(2024, 3, 2), chains=(ETH,),
               loss_text="$5M", raw={"title": "Alpha Protocol - REKT"}),
    ]


def deployment(chain_id: int, block: int, n: int) -> dict:
    return {"chain_id": chain_id, "address": address(0xD000 + n), "block_number": block,
            "tx_hash": "0x" + f"{block:064x}", "creator": address(7), "deployer": address(7), "internal": n % 2 == 1,
            "code_hash": "0x" + f"{n:064x}", "size": 100 + n, "kind": "contract", "implementation": None,
            "skeleton_hash": "0x" + f"{n:032x}", "origin": address(7), "block_timestamp": 1_700_000_000 + block}


async def seed(db: Path) -> Seeded:
    now = datetime.now(timezone.utc)
    world = Seeded(db, now)
    engine = create_engine(StorageSettings(url=f"sqlite:///{db}"))
    try:
        await upgrade(engine)
        async with engine.begin() as conn:
            start = now - timedelta(days=3)
            for n in range(30):
                created = start + timedelta(hours=n) if n != 11 else start + timedelta(hours=10)  # a tie
                finding = fork_finding(n, created)
                assert await record_finding(conn, finding)
                world.fingerprints.append(finding.fingerprint)
            world.retracted = world.fingerprints[5]
            await conn.execute(update(findings).where(findings.c.fingerprint == world.retracted)
                               .values(status=RETRACTED))
            old = exploit("flash-loan", OLD_VICTIM, start, "OldProto", "0x" + "e1" * 32)
            fresh = exploit("large-outflow", VICTIM, now - timedelta(hours=1), "FreshProto", "0x" + "f1" * 32)
            for finding in (old, fresh):
                assert await record_finding(conn, finding)
            world.old_exploit, world.fresh_exploit = old.fingerprint, fresh.fingerprint
            await insert_new(conn, feed_records, [record_row(r, now) for r in reports()], keys=("source", "ref"))
            await rebuild_incidents(conn, SOURCE_TYPES)
            await upsert(conn, feed_state, [
                {"source": "llama", "items": 3, "last_success": now, "updated_at": now},
                {"source": "rekt", "items": 1, "last_success": now - timedelta(hours=2), "updated_at": now,
                 "last_error": "rekt: HTTP 503", "last_error_at": now - timedelta(hours=1)},
            ], keys=("source",))
            rows = [deployment(ETH, 100 + n, n) for n in range(12)] + [deployment(BSC, 7, 100 + n) for n in range(3)]
            await insert_new(conn, deployments, rows, keys=("chain_id", "address"))
    finally:
        await engine.dispose()
    return world


def config_text(db: Path, *, listen: str = "127.0.0.1:8080", api: bool = True, extra: str = "") -> str:
    text = f"""
[storage]
url = "sqlite:///{db}"

[[chains]]
name = "eth"
chain_id = 1
rpc = ["http://127.0.0.1:9"]

[[chains]]
name = "bsc"
chain_id = 56
rpc = ["http://127.0.0.1:9"]

[[feeds]]
name = "llama"
type = "defillama"

[[feeds]]
name = "rekt"
type = "rss"
url = "https://rekt.news/feed"

[alerts]
allow_networks = ["127.0.0.0/8"]  # the tests' webhook receivers

[[channels]]
name = "ops"
type = "webhook"

url = "https://hooks.example.org/kamiyo"
secret = "not-a-real-secret"

[[channels]]
name = "oncall"
type = "slack"
url = "https://hooks.slack.com/services/T/B/x"
{extra}"""
    if api:
        text += f'\n[api]\nlisten = "{listen}"\ndefault_tier = "pro"\n'
    return text
