"""Suppressions added at run time, kept in the database beside the configuration's `[alerts] suppress`: the
operator's (`kamiyo alerts suppress`), which silence every channel, and an API key's (POST /v1/suppressions),
which silence only that key's own webhooks. The delivery worker reads them at every fan-out, so one added while
the daemon runs silences the next matching finding, and removing it lets the next one through. A rule is read by
the configuration's own model (SuppressionSettings), so a stored rule and a configured one mean the same and are
refused the same way.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import and_, delete, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ..config import SuppressionSettings
from ..storage.schema import suppressions

ID_PREFIX = "sup_"


@dataclass(frozen=True, slots=True)
class Stored:
    id: str
    rule: SuppressionSettings
    created_at: datetime
    owner: str | None  # an API key's id; None: the operator's, for every channel


async def add(conn: AsyncConnection, rule: SuppressionSettings, owner: str | None = None) -> Stored:
    stored = Stored(ID_PREFIX + secrets.token_hex(6), rule, datetime.now(timezone.utc), owner)
    await conn.execute(suppressions.insert().values(
        id=stored.id, fingerprint=rule.fingerprint, kind=rule.kind, address=rule.address, reason=rule.reason,
        created_at=stored.created_at, owner=owner))
    return stored


async def load(conn: AsyncConnection, owner: str | None = None) -> list[Stored]:
    """Every stored suppression, or one key's, oldest first."""
    query = select(suppressions).order_by(suppressions.c.created_at, suppressions.c.id)
    if owner is not None:
        query = query.where(suppressions.c.owner == owner)
    return [Stored(r.id, SuppressionSettings(fingerprint=r.fingerprint, kind=r.kind, address=r.address,
                                             reason=r.reason), r.created_at, r.owner) for r in await conn.execute(query)]


async def count(conn: AsyncConnection, owner: str) -> int:
    return (await conn.execute(select(func.count()).where(suppressions.c.owner == owner))).scalar()


async def remove(conn: AsyncConnection, ident: str, owner: str | None = None) -> bool:
    """Remove one; given an owner, only one of its own (the operator's CLI may remove any)."""
    where = suppressions.c.id == ident if owner is None else and_(suppressions.c.id == ident,
                                                                 suppressions.c.owner == owner)
    return bool((await conn.execute(delete(suppressions).where(where))).rowcount)
