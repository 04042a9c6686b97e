"""Suppressions added at run time (`kamiyo alerts suppress`), kept in the database beside the configuration's
`[alerts] suppress`. The delivery worker reads them at every fan-out, so one added while the daemon runs silences
the next matching finding, and removing it lets the next one through. A rule is read by the configuration's own
model (SuppressionSettings), so a stored rule and a configured one mean the same and are refused the same way.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timezone

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ..config import SuppressionSettings
from ..storage.schema import suppressions

ID_PREFIX = "sup_"


async def add(conn: AsyncConnection, rule: SuppressionSettings) -> str:
    ident = ID_PREFIX + secrets.token_hex(6)
    await conn.execute(suppressions.insert().values(
        id=ident, fingerprint=rule.fingerprint, kind=rule.kind, address=rule.address, reason=rule.reason,
        created_at=datetime.now(timezone.utc)))
    return ident


async def load(conn: AsyncConnection) -> list[tuple[str, SuppressionSettings, datetime]]:
    """(id, rule, when it was added), oldest first."""
    rows = await conn.execute(select(suppressions).order_by(suppressions.c.created_at, suppressions.c.id))
    return [(r.id, SuppressionSettings(fingerprint=r.fingerprint, kind=r.kind, address=r.address, reason=r.reason),
             r.created_at) for r in rows]


async def remove(conn: AsyncConnection, ident: str) -> bool:
    return bool((await conn.execute(delete(suppressions).where(suppressions.c.id == ident))).rowcount)
