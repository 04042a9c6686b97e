"""Webhooks an API key registers for itself, and which channels an owner's watchlists may name.

A configured channel (`[[channels]]`) is the operator's: the operator's own watchlists (the CLI's) may name every
one, an API key only those whose `keys` grant it. Anything else a key wants delivered goes to webhooks it
registers (POST /v1/webhooks): signed like a configured webhook, with a secret made here and shown once, and
counted against its tier's `webhooks` quota. A key's webhook takes only what its own watchlists route to it.

The delivery worker reads them at every fan-out and send, so a webhook made, removed, or whose key is revoked,
is effective without a restart. A removed webhook's pending deliveries become dead letters with it.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone

from pydantic import HttpUrl, TypeAdapter, ValidationError
from sqlalchemy import and_, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..config import WebhookChannel
from ..storage.schema import api_keys, deliveries, key_webhooks
from .store import OPERATOR

ID_PREFIX, SECRET_PREFIX = "wh_", "whsec_"
MAX_NAME = 100
MAX_URL = 2000
_URL = TypeAdapter(HttpUrl)


@dataclass(frozen=True, slots=True)
class KeyWebhook:
    id: str
    key_id: str
    name: str
    url: str
    secret: str
    created_at: datetime

    def channel(self) -> WebhookChannel:
        """As a channel the worker sends to: recorded under its id, and taking only what watchlists route."""
        return WebhookChannel(type="webhook", name=self.id, url=self.url, secret=self.secret, watchlists_only=True)

    def public(self) -> dict:
        """What its owner is shown of it (never the secret)."""
        return {"id": self.id, "name": self.name, "url": self.url,
                "created_at": self.created_at.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")}


def url_problem(url: str) -> str | None:
    """Why `url` cannot be a webhook's, or None. Where it resolves to is checked apart (alerts.network)."""
    if len(url) > MAX_URL:
        return f"at most {MAX_URL} characters"
    try:
        _URL.validate_python(url)
    except ValidationError as exc:
        return "not an http(s) URL: " + exc.errors(include_url=False)[0]["msg"]
    return None


def name_problem(name: str) -> str | None:
    """Control characters are the API's to refuse (as everywhere in it); here, the length and blankness."""
    if not name.strip() or len(name) > MAX_NAME:
        return f"a name of 1 to {MAX_NAME} characters, not all blank, is needed"
    return None


async def create(conn: AsyncConnection, key_id: str, name: str, url: str) -> tuple[KeyWebhook, str]:
    """A new webhook and its secret (shown once). ValueError when the key has a webhook of that name."""
    taken = await conn.execute(select(key_webhooks.c.id).where(and_(key_webhooks.c.key_id == key_id,
                                                                    key_webhooks.c.name == name)))
    if taken.first() is not None:
        raise ValueError(f"a webhook named {name!r} exists already")
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    hook = KeyWebhook(ID_PREFIX + secrets.token_hex(8), key_id, name, url, secret, datetime.now(timezone.utc))
    await conn.execute(key_webhooks.insert().values(id=hook.id, key_id=key_id, name=name, url=url, secret=secret,
                                                    created_at=hook.created_at))
    return hook, secret


async def load(conn: AsyncConnection, key_id: str | None = None, *, revoked: bool = False) -> list[KeyWebhook]:
    """One key's webhooks, or those of every key that is not revoked (what may be delivered to), oldest first;
    `revoked` adds those of revoked keys to the latter (what the operator audits)."""
    query = select(key_webhooks).order_by(key_webhooks.c.created_at, key_webhooks.c.id)
    if key_id is not None:
        query = query.where(key_webhooks.c.key_id == key_id)
    elif not revoked:
        live = select(api_keys.c.id).where(api_keys.c.revoked_at.is_(None))
        query = query.where(key_webhooks.c.key_id.in_(live))
    return [KeyWebhook(r.id, r.key_id, r.name, r.url, r.secret, r.created_at) for r in await conn.execute(query)]


async def remove(conn: AsyncConnection, ident: str, key_id: str | None) -> bool:
    """Remove one of the key's webhooks (None: anyone's, as the operator may); what was still pending for it
    becomes a dead letter, saying why."""
    where = key_webhooks.c.id == ident
    if key_id is not None:
        where = and_(where, key_webhooks.c.key_id == key_id)
    gone = await conn.execute(delete(key_webhooks).where(where))
    if not gone.rowcount:
        return False
    await conn.execute(update(deliveries).where(and_(deliveries.c.channel == ident, deliveries.c.status == "pending"))
                       .values(status="dead", last_error="the webhook was removed"))
    return True


def nameable(owner: str, channels: Iterable, hooks: Iterable[KeyWebhook]) -> dict[str, str]:
    """What `owner`'s watchlists may name, name → the channel its deliveries go to: the owner's own webhooks
    (they win over a configured channel of the same name), and the configured channels granted to it."""
    out = {c.name: c.name for c in channels if owner == OPERATOR or owner in c.keys}
    out.update({h.name: h.id for h in hooks if h.key_id == owner})
    return out
