"""The `incidents` table: every stored feed record merged (`merge.merge`) into incidents, each with the fields a
reader is shown and the reasons it is one incident.

Derived data only: `rebuild_incidents` replaces the whole table from `feed_records` inside the caller's
transaction, so the incidents always match the records committed with them. Nothing here fetches or parses a
feed, and nothing else writes the table.

Which record a field comes from:
  * protocol: the record of the highest-priority source (`merge.SOURCE_PRIORITY`, matched against the feed's type
    where the caller knows it, else the source's name); among equals, the earliest record.
  * loss_usd with its loss_text: the highest-priority record that has a loss in USD, so the number and the words
    shown beside it come from one account; with no USD figure anywhere, the best-ranked loss_text.
  * day: the earliest. classification: the earliest record that has one, and technique from that same record
    when it has one (a source's pair belongs to one taxonomy), else the earliest record that has one.
  * chains, addresses, tx_hashes, references: the union, in a stable order (chain ids sorted, then the names the
    registry did not know, as given).
`updated_at` moves only for an incident whose content changed, so a rebuild after an unrelated record changed
leaves every other incident as it was.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Connection, and_, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ..storage.schema import feed_records, findings, incidents
from ..storage.upsert import insert_new
from .merge import SOURCE_PRIORITY, Incident, Record, merge, normalise
from .model import ADVISORY, INCIDENT

_COLUMNS = (feed_records.c.source, feed_records.c.ref, feed_records.c.kind, feed_records.c.protocol,
            feed_records.c.day, feed_records.c.chains, feed_records.c.loss_usd, feed_records.c.loss_text,
            feed_records.c.classification, feed_records.c.technique, feed_records.c.addresses,
            feed_records.c.tx_hashes, feed_records.c.references)  # not `raw`: merging never reads it
_CONTENT = tuple(c.name for c in incidents.c if c.name != "updated_at")


async def rebuild_incidents(conn: AsyncConnection, source_types: Mapping[str, str] | None = None) -> int:
    """Replace the incidents with those the stored records make now; returns how many there are.

    `source_types` maps a feed's name to its type (e.g. {"llama": "defillama"}); a source missing from it is
    ranked by its name. Runs in the caller's transaction: commit it with the record writes."""
    rows = (await conn.execute(select(*_COLUMNS))).all()
    rows += [finding_record(f) for f in await conn.execute(_exploit_findings())]
    previous = {row.id: dict(row._mapping) for row in await conn.execute(select(incidents))}
    fresh = incident_rows(rows, source_types or {}, previous)
    await conn.execute(delete(incidents))
    await insert_new(conn, incidents, fresh, keys=("id",))
    return len(fresh)


def rebuild_incidents_sync(conn: Connection) -> int:
    """`rebuild_incidents` for a migration (a synchronous connection, no feed types known: sources by name)."""
    rows = conn.execute(select(*_COLUMNS)).all()
    rows += [finding_record(f) for f in conn.execute(_exploit_findings())]
    previous = {row.id: dict(row._mapping) for row in conn.execute(select(incidents))}
    fresh = incident_rows(rows, {}, previous)
    conn.execute(delete(incidents))
    if fresh:
        conn.execute(incidents.insert(), fresh)
    return len(fresh)


ONCHAIN = "kamiyo"  # the source name of the daemon's own exploit findings


def _exploit_findings():
    return select(findings).where(and_(findings.c.type == "exploit", findings.c.status == "active"))


def finding_record(finding: Any) -> SimpleNamespace:
    """The daemon's own exploit finding as a feed record, so that it merges with off-chain reports of the same
    attack (a shared transaction, a shared victim). Its evidence may name the protocol and addresses by role."""
    evidence = finding.evidence or {}
    addresses = [{"role": a.get("role", "other"), "chain_id": finding.chain_id, "address": str(a["address"]).lower()}
                 for a in evidence.get("addresses", ()) if isinstance(a, dict) and a.get("address")]
    return SimpleNamespace(
        source=ONCHAIN, ref=finding.fingerprint, kind=INCIDENT,
        protocol=str(evidence.get("protocol") or f"{finding.kind} {finding.subject}"),
        day=finding.created_at.date() if finding.created_at else None, chains=[finding.chain_id],
        loss_usd=evidence.get("loss_usd"), loss_text=None, classification=finding.kind,
        technique=evidence.get("technique"), addresses=addresses,
        tx_hashes=[finding.tx_hash] if finding.tx_hash else [], references=[])


def incident_rows(records: Iterable[Any], source_types: Mapping[str, str],
                  previous: Mapping[str, Mapping[str, Any]] | None = None,
                  now: datetime | None = None) -> list[dict]:
    """Rows of `incidents` for stored feed records (rows with the columns of `feed_records`, `raw` not needed).

    `previous` holds the rows stored so far by id: an incident whose content is unchanged keeps its updated_at."""
    now = now or datetime.now(timezone.utc)
    previous = previous or {}
    stored = {(r.source, r.ref): r for r in records}
    merged = merge(_record(r, source_types.get(r.source, "")) for r in stored.values())
    out = []
    for incident in merged:
        row = _row(incident, [stored[r.key] for r in incident.records])
        out.append(row)
    _relate_advisories(out)
    for row in out:
        before = previous.get(row["id"])
        unchanged = before is not None and all(before.get(c) == row[c] for c in _CONTENT)
        row["updated_at"] = before["updated_at"] if unchanged else now
    return out


MIN_NAME = 5  # a shorter distinctive name ("dex", "ape") is too common to join an advisory by


def _relate_advisories(rows: list[dict]) -> None:
    """Advisories carry no chain or loss, so they never merge; an incident lists those that name its protocol
    (its distinctive name within the advisory's package name) or one of its addresses."""
    advisories = [(a["id"], normalise(a["protocol"]), {x["address"] for x in a["addresses"]})
                  for a in rows if a["kind"] == ADVISORY]
    for row in rows:
        row["advisories"] = []
        if row["kind"] == ADVISORY or not advisories:
            continue
        name, addresses = normalise(row["protocol"]), {x["address"] for x in row["addresses"]}
        row["advisories"] = [aid for aid, package, named in advisories
                             if (len(name) >= MIN_NAME and name in package) or addresses & named]


def _record(row: Any, source_type: str) -> Record:
    addresses = tuple({"role": a.get("role"), "chain_id": a.get("chain_id"), "address": str(a["address"]).lower()}
                      for a in row.addresses or ())
    return Record(source=row.source, ref=row.ref, kind=row.kind, protocol=row.protocol, day=row.day,
                  chains=tuple(row.chains or ()), loss_usd=row.loss_usd, addresses=addresses,
                  tx_hashes=tuple(str(t).lower() for t in row.tx_hashes or ()), source_type=source_type)


def _rank(record: Record) -> int:
    """Place in SOURCE_PRIORITY of the feed's type (or, unknown, its name); unlisted sources come after."""
    who = record.source_type or record.source
    return SOURCE_PRIORITY.index(who) if who in SOURCE_PRIORITY else len(SOURCE_PRIORITY)


def _row(incident: Incident, rows: Sequence[Any]) -> dict:
    """`incident.records` and `rows` are in the same order: earliest first, as merge sorted them."""
    by_priority = sorted(zip(incident.records, rows), key=lambda pair: _rank(pair[0]))  # stable: earliest first
    shown = by_priority[0][1]
    lost = next((row for _r, row in by_priority if row.loss_usd is not None), None)
    if lost is None:
        lost = next((row for _r, row in by_priority if row.loss_text), None)
    days = [row.day for row in rows if row.day is not None]
    classified = next((row for row in rows if row.classification), None)
    technique = classified.technique if classified is not None else None
    return {
        "id": incident.id,
        "kind": INCIDENT if any(row.kind != ADVISORY for row in rows) else ADVISORY,
        "protocol": shown.protocol,
        "day": min(days) if days else None,
        "chains": _chains(rows),
        "loss_usd": lost.loss_usd if lost is not None else None,
        "loss_text": lost.loss_text if lost is not None else None,
        "classification": classified.classification if classified is not None else None,
        "technique": technique or next((row.technique for row in rows if row.technique), None),
        "addresses": _unique(r.addresses for r in incident.records),
        "tx_hashes": _unique(r.tx_hashes for r in incident.records),
        "references": _unique(row.references or () for row in rows),
        "sources": [{"source": row.source, "ref": row.ref} for row in rows],
        "why": list(incident.why),
    }


def _chains(rows: Sequence[Any]) -> list:
    chains = [c for row in rows for c in row.chains or ()]
    ids = sorted({c for c in chains if isinstance(c, int)})
    return ids + _unique([[c for c in chains if not isinstance(c, int)]])


def _unique(groups: Iterable[Iterable[Any]]) -> list:
    """Every item once, in order of first appearance (dicts compared by value: an address is its role, chain and
    address together)."""
    seen, out = set(), []
    for group in groups:
        for item in group:
            key = tuple(sorted(item.items())) if isinstance(item, dict) else item
            if key not in seen:
                seen.add(key)
                out.append(dict(item) if isinstance(item, dict) else item)
    return out
