"""API keys: made, listed, looked up and revoked here; the tiers and what each allows.

A key has a public id (`key_…`, shown in lists and logs, and the owner of its watchlists) and a secret (`kmy_…`)
that is shown once, when the key is made. Only sha256(secret) is stored, so a copy of the database lets nobody
call the API. The secret is 256 random bits, so an unsalted hash is enough: there is nothing to guess.

A key's quotas are written with it, from its tier as the tier was then; changing a tier here does not change the
keys already made (make a new key, or revoke and re-issue).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone

from sqlalchemy import Connection, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..errors import InputError
from ..reports.findings import iso_z
from ..storage.schema import api_keys

READ, WATCHLISTS, ADMIN = "read", "watchlists", "admin"
SCOPES = (READ, WATCHLISTS, ADMIN)
SECRET_PREFIX, ID_PREFIX = "kmy_", "key_"


@dataclass(frozen=True, slots=True)
class Quotas:
    """What a key may do. None is unlimited. `webhooks` counts the webhooks it registers (POST /v1/webhooks)."""

    requests_per_day: int | None
    requests_per_minute: int | None
    watchlists: int | None
    webhooks: int | None
    delay_seconds: int  # findings are shown only once they are this old

    def as_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Quotas:
        return cls(**{name: data.get(name) for name in cls.__dataclass_fields__})


DAY = 24 * 3600
TIERS: dict[str, Quotas] = {
    "free": Quotas(requests_per_day=100, requests_per_minute=10, watchlists=1, webhooks=0, delay_seconds=DAY),
    "pro": Quotas(requests_per_day=50_000, requests_per_minute=600, watchlists=20, webhooks=5, delay_seconds=0),
    "team": Quotas(requests_per_day=500_000, requests_per_minute=3000, watchlists=100, webhooks=25, delay_seconds=0),
    "enterprise": Quotas(requests_per_day=None, requests_per_minute=None, watchlists=None, webhooks=None,
                         delay_seconds=0),
}


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    name: str
    tier: str
    scopes: frozenset[str]
    quotas: Quotas
    created_at: datetime
    revoked_at: datetime | None = None

    def allows(self, scope: str) -> bool:
        return ADMIN in self.scopes or scope in self.scopes

    def public(self) -> dict:
        """The key as it shows itself (never the secret, nor its hash)."""
        return {"id": self.id, "name": self.name, "tier": self.tier, "scopes": sorted(self.scopes),
                "quotas": self.quotas.as_json(), "created_at": iso_z(self.created_at),
                "revoked_at": iso_z(self.revoked_at) if self.revoked_at else None}


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _row_key(row) -> ApiKey:
    return ApiKey(row.id, row.name, row.tier, frozenset(row.scopes), Quotas.from_json(row.quotas), row.created_at,
                  row.revoked_at)


def check_request(name: str, tier: str, scopes: list[str]) -> None:
    problems = []
    if not name.strip() or len(name) > 200 or not name.isprintable():
        problems.append("a name of 1 to 200 printable characters is needed")
    if tier not in TIERS:
        problems.append(f"tier {tier!r} is not one of {', '.join(TIERS)}")
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        problems.append(f"unknown scope(s) {', '.join(unknown)} (known: {', '.join(SCOPES)})")
    if not scopes:
        problems.append("at least one scope is needed")
    if problems:
        raise InputError("api key: " + "; ".join(problems))


async def create(conn: AsyncConnection, name: str, *, tier: str, scopes: list[str]) -> tuple[ApiKey, str]:
    """A new key and its secret. The secret exists only in what this returns: show it once and drop it."""
    check_request(name, tier, scopes)
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(ID_PREFIX + secrets.token_hex(8), name.strip(), tier, frozenset(scopes), TIERS[tier],
                 datetime.now(timezone.utc))
    await conn.execute(api_keys.insert().values(
        id=key.id, name=key.name, secret_hash=hash_secret(secret), scopes=sorted(key.scopes), tier=tier,
        quotas=key.quotas.as_json(), created_at=key.created_at))
    return key, secret


async def lookup(conn: AsyncConnection, secret: str) -> ApiKey | None:
    """The key this secret belongs to, revoked or not (the caller tells those apart); None for no key."""
    return await conn.run_sync(lookup_sync, secret)


def lookup_sync(conn: Connection, secret: str) -> ApiKey | None:
    """`lookup` on a synchronous connection (as the API reads: storage.engine.reads)."""
    if not secret.startswith(SECRET_PREFIX) or len(secret) > 200:
        return None
    row = conn.execute(select(api_keys).where(api_keys.c.secret_hash == hash_secret(secret))).first()
    return _row_key(row) if row is not None else None


async def list_keys(conn: AsyncConnection) -> list[ApiKey]:
    rows = await conn.execute(select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id))
    return [_row_key(row) for row in rows]


async def revoke(conn: AsyncConnection, ident: str) -> ApiKey:
    """Revoke a key by id; revoking a revoked key is harmless (its first revocation time stays)."""
    row = (await conn.execute(select(api_keys).where(api_keys.c.id == ident))).first()
    if row is None:
        raise InputError(f"no API key {ident!r} (see `kamiyo apikey list`)", key=ident)
    if row.revoked_at is None:
        now = datetime.now(timezone.utc)
        await conn.execute(update(api_keys).where(api_keys.c.id == ident).values(revoked_at=now))
        return replace(_row_key(row), revoked_at=now)
    return _row_key(row)
