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
    rows += finding_records(list(await conn.execute(_exploit_findings())))
    previous = {row.id: dict(row._mapping) for row in await conn.execute(select(incidents))}
    fresh = incident_rows(rows, source_types or {}, previous)
    await conn.execute(delete(incidents))
    await insert_new(conn, incidents, fresh, keys=("id",))
    return len(fresh)


def rebuild_incidents_sync(conn: Connection) -> int:
    """`rebuild_incidents` for a migration (a synchronous connection, no feed types known: sources by name)."""
    rows = conn.execute(select(*_COLUMNS)).all()
    rows += finding_records(list(conn.execute(_exploit_findings())))
    previous = {row.id: dict(row._mapping) for row in conn.execute(select(incidents))}
    fresh = incident_rows(rows, {}, previous)
    conn.execute(delete(incidents))
    if fresh:
        conn.execute(incidents.insert(), fresh)
    return len(fresh)


ONCHAIN = "kamiyo"  # the source name of the daemon's own exploit findings


def _exploit_findings():
    return select(findings).where(and_(findings.c.type == "exploit", findings.c.status == "active"))


def finding_records(found: list[Any]) -> list[SimpleNamespace]:
    """The daemon's own exploit findings as feed records, one per attack, so that they merge with off-chain
    reports of it (a shared transaction, a shared victim). Several analyzers report one attack, and an attack
    may take several transactions; since one source's records never merge with each other, findings are
    grouped here: those sharing a transaction, or a subject on one chain within a day, are one record."""
    groups = _Groups(len(found))
    first_by: dict[tuple, int] = {}
    for i, f in enumerate(found):
        keys = [("tx", f.chain_id, f.tx_hash)] if f.tx_hash else []
        day = f.created_at.date() if f.created_at else None
        keys.append(("subject", f.chain_id, f.subject, day))
        for key in keys:
            if key in first_by:
                groups.join(first_by[key], i)
            else:
                first_by[key] = i
    members: dict[int, list[Any]] = {}
    for i, f in enumerate(found):
        members.setdefault(groups.root(i), []).append(f)
    return [_attack_record(sorted(group, key=lambda f: f.fingerprint)) for group in members.values()]


class _Groups:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def root(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def join(self, a: int, b: int) -> None:
        self.parent[self.root(a)] = self.root(b)


def _attack_record(group: list[Any]) -> SimpleNamespace:
    first = group[0]
    addresses, seen = [], set()
    for f in group:
        for a in (f.evidence or {}).get("addresses", ()):
            if isinstance(a, dict) and a.get("address"):
                entry = (a.get("role", "other"), str(a["address"]).lower())
                if entry not in seen:
                    seen.add(entry)
                    addresses.append({"role": entry[0], "chain_id": f.chain_id, "address": entry[1]})
    protocol = next((str(f.evidence["protocol"]) for f in group if (f.evidence or {}).get("protocol")), None)
    days = [f.created_at.date() for f in group if f.created_at]
    return SimpleNamespace(
        source=ONCHAIN, ref=first.fingerprint, kind=INCIDENT,
        protocol=protocol or f"{first.kind} {first.subject}",
        day=min(days) if days else None, chains=sorted({f.chain_id for f in group}),
        loss_usd=next((f.evidence.get("loss_usd") for f in group if (f.evidence or {}).get("loss_usd")), None),
        loss_text=None, classification=", ".join(sorted({f.kind for f in group})),
        technique=next((f.evidence.get("technique") for f in group if (f.evidence or {}).get("technique")), None),
        addresses=addresses, tx_hashes=sorted({f.tx_hash for f in group if f.tx_hash}), references=[])


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
