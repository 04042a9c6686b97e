"""Findings in the database: written once per fingerprint, retracted when their block is rolled back, made active
again when the new branch produces them anew. Each of those is also an event in the outbox, in the same
transaction: what the alert worker sends can never be lost between the commit and the send."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone

from sqlalchemy import and_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from ..findings import ACTIVE, RETRACTED, Finding
from .schema import findings, outbox


async def record_finding(conn: AsyncConnection, finding: Finding) -> bool:
    """Insert, or re-activate a retracted one; True when the finding is news (its row was written)."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    row = finding.row()
    statement = dialect.insert(findings).values(**row)
    statement = statement.on_conflict_do_update(
        index_elements=["fingerprint"],
        set_={k: statement.excluded[k] for k in ("status", "block_number", "subject", "tx_hash", "evidence",
                                                 "updated_at")},
        where=findings.c.status == RETRACTED,
    ).returning(findings.c.fingerprint)
    news = (await conn.execute(statement)).first() is not None
    if news:
        await enqueue(conn, CREATED, row)
    return news


async def retract_findings(conn: AsyncConnection, chain_id: int, first_dropped: int) -> list[str]:
    """Mark the active findings of dropped blocks retracted; returns their fingerprints."""
    statement = (
        update(findings)
        .where(and_(findings.c.chain_id == chain_id, findings.c.block_number >= first_dropped,
                    findings.c.status == ACTIVE))
        .values(status=RETRACTED, updated_at=datetime.now(timezone.utc))
        .returning(*findings.c)
    )
    rows = [dict(r._mapping) for r in await conn.execute(statement)]
    for row in rows:
        await enqueue(conn, RETRACTED_EVENT, row)
    return [row["fingerprint"] for row in rows]


CREATED, RETRACTED_EVENT = "finding.created", "finding.retracted"


def finding_payload(row: Mapping) -> dict:
    """A finding as alerts and the API show it (JSON-ready): the stored row (a dict, or a result row's
    `_mapping`; `updated_at` is not read), its labels lifted out of the evidence (Forta's shape)."""
    created = row["created_at"]
    # SQLite keeps no offset (the daemon writes UTC): naive is UTC. Formatting a naive time is half the cost of
    # an aware one, and the API shapes a page of these per request.
    stamp = created.isoformat() + "Z" if created.tzinfo is None else created.isoformat().replace("+00:00", "Z")
    evidence = row["evidence"] or {}
    return {"id": row["fingerprint"], "kind": row["kind"], "severity": str(row["severity"]), "type": str(row["type"]),
            "chain_id": row["chain_id"], "subject": row["subject"], "block": row["block_number"],
            "tx_hash": row["tx_hash"], "status": row["status"], "labels": evidence.get("labels", []),
            "evidence": evidence, "created_at": stamp}


async def enqueue(conn: AsyncConnection, event: str, row: dict) -> None:
    await conn.execute(outbox.insert().values(fingerprint=row["fingerprint"], event=event,
                                              finding=finding_payload(row), created_at=datetime.now(timezone.utc)))


def findings_query(since: datetime | None = None, kind: str | None = None, chain_id: int | None = None,
                   limit: int | None = None):
    query = select(findings).order_by(findings.c.created_at, findings.c.fingerprint)
    if since is not None:
        query = query.where(findings.c.created_at >= since)
    if kind is not None:
        query = query.where(findings.c.kind == kind)
    if chain_id is not None:
        query = query.where(findings.c.chain_id == chain_id)
    return query.limit(limit) if limit else query
