"""`kamiyo incidents`, `kamiyo incidents show` and the incident counts of `kamiyo sources`, read from the
`incidents` table that feeds/incidents.py derives from the stored feed records.

Chains are shown by name: a configured chain by its slug in the configuration, another chain the registry knows
by the registry's slug, any other id in decimal; a name the registry did not resolve when the record was stored
is shown as the source wrote it. Addresses keep their numeric chain_id, as stored. Nothing here writes.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import date

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from ..chains.registry import by_id
from ..errors import InputError
from ..storage.schema import feed_records, incidents
from . import ChainNames
from .findings import iso_z
from .table import render_table

DEFAULT_LIMIT = 1000
ChainFilter = int | str  # a chain id, or a name the registry does not know (compared ignoring case)


def chain_label(names: ChainNames, chain: int | str) -> str:
    if isinstance(chain, int):
        known = by_id(chain)
        return names.get(chain) or (known.slug if known else str(chain))
    return chain


def _has_chain(chains: list, wanted: ChainFilter) -> bool:
    if isinstance(wanted, int):
        return wanted in chains
    return any(isinstance(c, str) and c.casefold() == wanted.casefold() for c in chains)


def _ordered(query):
    """Oldest first, incidents without a day last; the id breaks ties (as merge orders them)."""
    return query.order_by(incidents.c.day.is_(None), incidents.c.day, incidents.c.id)


async def incidents_report(engine: AsyncEngine, names: ChainNames, since: date | None = None,
                           chain: ChainFilter | None = None, limit: int | None = DEFAULT_LIMIT) -> dict:
    """The first `limit` incidents (None: all) on or after `since` that name `chain`, oldest first.

    A chain given by a name that no incident carries is a mistake (a typo, or a chain the registry knows by
    another name) and raises InputError rather than answering an empty list."""
    query = _ordered(select(incidents))
    if since is not None:
        query = query.where(incidents.c.day >= since)
    async with engine.connect() as conn:
        if isinstance(chain, str):
            stored = {c.casefold() for (chains,) in await conn.execute(select(incidents.c.chains))
                      for c in chains if isinstance(c, str)}
            if chain.casefold() not in stored:
                raise InputError(f"--chain {chain!r}: neither a configured chain, a chain the registry knows, nor "
                                 "a chain name any stored incident carries", chain=chain)
        rows = (await conn.execute(query)).all()
    if chain is not None:
        rows = [row for row in rows if _has_chain(row.chains, chain)]
    if limit is not None:
        rows = rows[:limit]
    return {"incidents": [_summary(row, names) for row in rows]}


def _summary(row, names: ChainNames) -> dict:
    return {"id": row.id, "kind": row.kind, "protocol": row.protocol,
            "date": row.day.isoformat() if row.day else None,
            "chains": [chain_label(names, c) for c in row.chains], "loss_usd": row.loss_usd,
            "classification": row.classification, "addresses": row.addresses, "tx_hashes": row.tx_hashes,
            "sources": [{"source": s["source"], "ref": s["ref"]} for s in row.sources],
            "advisories": list(row.advisories or ())}


async def incident_detail(engine: AsyncEngine, names: ChainNames, incident_id: str) -> dict | None:
    """Everything about one incident: its fields, why its records are one incident, and every record whole."""
    async with engine.connect() as conn:
        row = (await conn.execute(select(incidents).where(incidents.c.id == incident_id))).first()
        if row is None:
            return None
        keys = [(s["source"], s["ref"]) for s in row.sources]
        stored = {(r.source, r.ref): r for r in await conn.execute(select(feed_records).where(
            or_(*(and_(feed_records.c.source == source, feed_records.c.ref == ref) for source, ref in keys))))}
    detail = {**_summary(row, names), "loss_text": row.loss_text, "technique": row.technique,
              "references": row.references, "why": row.why, "updated_at": iso_z(row.updated_at),
              "records": [_record(stored[key], names) for key in keys if key in stored]}
    return {"incident": detail}


def _record(row, names: ChainNames) -> dict:
    return {"source": row.source, "ref": row.ref, "kind": row.kind, "protocol": row.protocol,
            "date": row.day.isoformat() if row.day else None, "chains": [chain_label(names, c) for c in row.chains],
            "loss_usd": row.loss_usd, "loss_text": row.loss_text, "classification": row.classification,
            "technique": row.technique, "addresses": row.addresses, "tx_hashes": row.tx_hashes,
            "references": row.references, "first_seen": iso_z(row.first_seen), "last_seen": iso_z(row.last_seen),
            "raw": row.raw}


async def source_counts(engine: AsyncEngine) -> dict:
    """How many incidents each source contributes to, how many there are, and how many one source alone knows."""
    per_source: Counter[str] = Counter()
    total = single = 0
    async with engine.connect() as conn:
        for (sources,) in await conn.execute(select(incidents.c.sources)):
            names = {s["source"] for s in sources}
            per_source.update(names)
            total += 1
            single += len(names) == 1
    return {"per_source": dict(per_source), "incidents": total, "single_source": single}


def summary_line(counts: dict) -> str:
    total, single = counts["incidents"], counts["single_source"]
    if not total:
        return "incidents: 0"
    return f"incidents: {total}; known from one source only: {single} ({100 * single / total:.1f}%)"


def _loss(usd: float | None, text: str | None) -> str | None:
    return f"${usd:,.0f}" if usd is not None else text


def render_text(report: dict) -> str:
    if not report["incidents"]:
        return "no incidents match\n"
    rows = [(i["date"], i["protocol"], ",".join(i["chains"]) or None, _loss(i["loss_usd"], None),
             len({s["source"] for s in i["sources"]}), i["id"]) for i in report["incidents"]]
    return render_table(("date", "protocol", "chains", "loss", "sources", "id"), rows, right={3, 4})


def _fields(pairs: list[tuple[str, object]], indent: str) -> list[str]:
    """`name  value` lines, values aligned; a list value gets one line per item."""
    width = max(len(name) for name, _ in pairs)
    out = []
    for name, value in pairs:
        items = value if isinstance(value, list) else [value]
        items = [("-" if v is None else str(v)) for v in items] or ["-"]
        out.append(f"{indent}{name:<{width}}  {items[0]}".rstrip())
        out.extend(f"{indent}{'':<{width}}  {more}".rstrip() for more in items[1:])
    return out


def _addresses(addresses: list[dict]) -> list[str]:
    return [f"{a['role']} {a['chain_id'] if a['chain_id'] is not None else '?'} {a['address']}" for a in addresses]


def render_detail(detail: dict) -> str:
    i = detail["incident"]
    lines = [f"{i['id']}  {i['protocol']}  {i['date'] or 'date unknown'}  ({i['kind']})"]
    lines += _fields([("chains", ", ".join(i["chains"]) or None), ("loss", _loss(i["loss_usd"], i["loss_text"])),
                      ("classification", i["classification"]), ("technique", i["technique"]),
                      ("addresses", _addresses(i["addresses"])), ("tx hashes", i["tx_hashes"]),
                      ("references", i["references"]), ("advisories", i["advisories"] or None),
                      ("updated", i["updated_at"])], "  ")
    sources = sorted({s["source"] for s in i["sources"]})
    lines += ["", f"Why one incident ({len(i['records'])} record(s) from {len(sources)} source(s): "
                  f"{', '.join(sources)}):"]
    lines += [f"  {why}" for why in i["why"]] or ["  one record: nothing was merged into it"]
    lines += ["", "Records, earliest first:"]
    for n, r in enumerate(i["records"], 1):
        lines += ["", f"  [{n}] {r['source']}  {r['ref']}"]
        lines += _fields([("protocol", r["protocol"]), ("date", r["date"]), ("kind", r["kind"]),
                          ("chains", ", ".join(r["chains"]) or None), ("loss", _loss(r["loss_usd"], r["loss_text"])),
                          ("loss text", r["loss_text"]), ("classification", r["classification"]),
                          ("technique", r["technique"]), ("addresses", _addresses(r["addresses"])),
                          ("tx hashes", r["tx_hashes"]), ("references", r["references"]),
                          ("first seen", r["first_seen"]), ("last seen", r["last_seen"])], "      ")
        lines.append("      raw")
        lines += ["        " + line for line in json.dumps(r["raw"], indent=2, ensure_ascii=False).splitlines()]
    return "\n".join(lines) + "\n"
