"""Watchlists in the database: created, listed, shown and removed by the CLI (and the API), read by the delivery
worker on every fan-out, so a change is effective without a restart.

An entry is written `CHAIN:ADDRESS` (a configured chain's name, or a chain id) or `protocol:NAME`. Input is
checked here, with one clear error per problem, so that the CLI and the API refuse the same things the same way.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import and_, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ..errors import InputError
from ..findings import Severity
from ..storage.schema import watchlist_entries, watchlists

OPERATOR = "operator"  # the owner of watchlists made on the command line
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}\Z")
_CHAIN_ID = re.compile(r"[1-9][0-9]{0,17}\Z")  # ASCII digits only, and within a 64-bit column
MAX_ENTRIES = 1000


@dataclass(frozen=True, slots=True)
class Entry:
    chain_id: int | None = None
    address: str | None = None
    protocol: str | None = None

    def text(self, chain_names: dict[int, str] | None = None) -> str:
        if self.protocol is not None:
            return f"protocol:{self.protocol}"
        return f"{(chain_names or {}).get(self.chain_id, self.chain_id)}:{self.address}"


@dataclass(frozen=True, slots=True)
class Watchlist:
    id: str
    owner: str
    name: str
    entries: tuple[Entry, ...]
    kinds: tuple[str, ...]
    min_severity: str
    channels: tuple[str, ...]
    created_at: datetime

    def wants(self, finding: dict) -> bool:
        if Severity(finding["severity"]).rank < Severity(self.min_severity).rank:
            return False
        return not self.kinds or finding["kind"] in self.kinds


def parse_entry(text: str, chains: dict[str, int]) -> Entry:
    """`CHAIN:ADDRESS` or `protocol:NAME`; `chains` maps configured chain names to ids."""
    where, sep, what = text.strip().partition(":")
    if not sep or not what.strip():
        raise InputError(f"entry {text!r}: expected CHAIN:ADDRESS or protocol:NAME")
    if where == "protocol":
        name = " ".join(what.split())
        if len(name) < 3:
            raise InputError(f"entry {text!r}: a protocol name needs at least 3 characters")
        return Entry(protocol=name)
    if not _ADDRESS.match(what):
        raise InputError(f"entry {text!r}: expected an address, 0x and 40 hex digits")
    if where in chains:
        return Entry(chains[where], what.lower())
    if _CHAIN_ID.match(where):
        return Entry(int(where), what.lower())
    known = ", ".join(sorted(chains)) or "none configured"
    raise InputError(f"entry {text!r}: unknown chain {where!r} (configured: {known}; or give a chain id)")


def check(name: str, entries: list[Entry], min_severity: str, channels: list[str], nameable: set[str],
          kinds: list[str] | None = None) -> None:
    """Every problem at once. `nameable`: the channels this owner may name (webhooks.nameable)."""
    problems = []
    if not name.strip() or len(name) > 200:
        problems.append("a name of 1 to 200 characters is needed")
    if not entries or len(entries) > MAX_ENTRIES:
        problems.append(f"between 1 and {MAX_ENTRIES} entries are needed")
    if min_severity not in {s.value for s in Severity}:
        problems.append(f"min severity {min_severity!r} is not one of {', '.join(s.value for s in Severity)}")
    unknown = sorted(set(channels) - nameable)
    if unknown:
        known = ", ".join(sorted(nameable)) or "none"
        problems.append(f"unknown channel(s) {', '.join(unknown)} (this owner may name: {known}; a key names "
                        f"its own webhooks and the configured channels that grant it)")
    if kinds is not None and any(not k or len(k) > 40 for k in kinds):
        problems.append("a finding kind is 1 to 40 characters")
    if problems:
        raise InputError("watchlist: " + "; ".join(problems))


async def create(conn: AsyncConnection, owner: str, name: str, entries: list[Entry], *, kinds: list[str],
                 min_severity: str, channels: list[str]) -> str:
    existing = await conn.execute(select(watchlists.c.id).where(and_(watchlists.c.owner == owner,
                                                                    watchlists.c.name == name)))
    if existing.first() is not None:
        raise InputError(f"a watchlist named {name!r} exists already")
    ident = "wl_" + secrets.token_hex(8)
    await conn.execute(watchlists.insert().values(
        id=ident, owner=owner, name=name, kinds=sorted(set(kinds)), min_severity=min_severity,
        channels=sorted(set(channels)), created_at=datetime.now(timezone.utc)))
    await conn.execute(watchlist_entries.insert(), [
        {"watchlist_id": ident, "position": i, "chain_id": e.chain_id, "address": e.address, "protocol": e.protocol}
        for i, e in enumerate(dict.fromkeys(entries))])
    return ident


async def load(conn: AsyncConnection, owner: str | None = None) -> list[Watchlist]:
    """Every watchlist (or one owner's), with its entries, oldest first."""
    query = select(watchlists).order_by(watchlists.c.created_at, watchlists.c.id)
    if owner is not None:
        query = query.where(watchlists.c.owner == owner)
    heads = (await conn.execute(query)).all()
    rows = (await conn.execute(select(watchlist_entries).order_by(watchlist_entries.c.watchlist_id,
                                                                   watchlist_entries.c.position))).all()
    entries: dict[str, list[Entry]] = {}
    for r in rows:
        entries.setdefault(r.watchlist_id, []).append(Entry(r.chain_id, r.address, r.protocol))
    return [Watchlist(h.id, h.owner, h.name, tuple(entries.get(h.id, ())), tuple(h.kinds), h.min_severity,
                      tuple(h.channels), h.created_at) for h in heads]


async def remove(conn: AsyncConnection, ident: str, owner: str | None = None) -> bool:
    where = watchlists.c.id == ident if owner is None else and_(watchlists.c.id == ident, watchlists.c.owner == owner)
    found = (await conn.execute(select(watchlists.c.id).where(where))).first()
    if found is None:
        return False
    await conn.execute(delete(watchlist_entries).where(watchlist_entries.c.watchlist_id == ident))
    await conn.execute(delete(watchlists).where(watchlists.c.id == ident))
    return True
