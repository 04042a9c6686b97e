"""`kamiyo findings`: stored findings, oldest first, filtered by time, kind, chain and status.

Times are UTC throughout: a filter given without an offset is taken as UTC, and every time shown ends in Z.
SQLite keeps no offset, and the daemon writes UTC, so a naive time read back is UTC.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy.ext.asyncio import AsyncEngine

from ..findings import ACTIVE, RETRACTED
from ..storage.findings import findings_query
from ..storage.schema import findings
from . import ChainNames, chain_name
from .table import render_table

ALL = "all"
STATUSES = (ACTIVE, RETRACTED, ALL)
DEFAULT_LIMIT = 1000


def utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def iso_z(moment: datetime) -> str:
    """ISO 8601 in UTC with Z, microseconds kept when there are any (so a time shown can be given back to --since)."""
    return utc(moment).isoformat().replace("+00:00", "Z")


async def findings_report(engine: AsyncEngine, names: ChainNames, since: datetime | None = None,
                          kind: str | None = None, chain_id: int | None = None, status: str = ACTIVE,
                          limit: int | None = DEFAULT_LIMIT) -> dict:
    """The first `limit` matching findings (None: all), oldest first."""
    query = findings_query(since=utc(since) if since else None, kind=kind, chain_id=chain_id)
    if status != ALL:
        query = query.where(findings.c.status == status)
    if limit is not None:
        query = query.limit(limit)
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return {"findings": [{
        "id": row.fingerprint, "kind": row.kind, "severity": row.severity, "type": row.type,
        "chain": chain_name(names, row.chain_id), "subject": row.subject, "block": row.block_number,
        "tx_hash": row.tx_hash, "status": row.status,
        "labels": (row.evidence or {}).get("labels", []),  # Forta's labels, kept in the evidence
        "evidence": row.evidence, "created_at": iso_z(row.created_at),
    } for row in rows]}


def render_text(report: dict) -> str:
    if not report["findings"]:
        return "no findings match\n"
    rows = [(f["created_at"][:19] + "Z", f["severity"], f["type"], f["kind"], f["chain"], f["subject"],
             f["block"], f["status"]) for f in report["findings"]]
    return render_table(("created_at", "severity", "type", "kind", "chain", "subject", "block", "status"), rows,
                        right={6})
