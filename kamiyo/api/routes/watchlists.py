"""`/v1/watchlists`: a key's own watchlists, made, listed, shown and removed through watchlists/store.py, so the
API refuses what `kamiyo watchlist add` refuses, in the same words. The delivery worker reads them at every
fan-out, so a watchlist made here routes the next finding.

A key sees only its own: another owner's id is a 404, exactly as an id that does not exist. Its tier bounds how
many watchlists it has (403 "quota"). A watchlist names the key's own webhooks (routes/webhooks.py) and the
configured channels granted to the key (`[[channels]] keys`); `/v1/channels` lists them. Creations are one at a
time in this process, so two requests at once cannot both take the last place of a quota. A read-only server
(`kamiyo api`) answers 405 to every change.
"""

from __future__ import annotations

import asyncio
import re

from aiohttp import web
from pydantic import BaseModel, ConfigDict

from ...errors import InputError
from ...reports.findings import iso_z
from ...watchlists import store, webhooks
from ..bodies import read_body, refuse, writable
from ..context import Route, caller, context
from ..errors import CONFLICT, QUOTA, ApiError, not_found
from ..keys import WATCHLISTS
from ..params import CONTROL, Query

MAX_ENTRY = 309  # "protocol:" and a name that fits the 300 characters of watchlist_entries.protocol
CHAIN_ID = re.compile(r"[1-9][0-9]{0,17}\Z")
_CREATING = web.AppKey("kamiyo_api_watchlist_lock", asyncio.Lock)


class WatchlistBody(BaseModel):
    """The JSON a POST carries. Types are checked here; what the values may be, by store.check and
    store.parse_entry, as for the CLI."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str
    entries: list[str]
    kinds: list[str] = []
    min_severity: str = "info"  # a watchlist is narrow already: its forks (info) are news
    channels: list[str] = []


def watchlist_json(watchlist: store.Watchlist) -> dict:
    return {"id": watchlist.id, "name": watchlist.name, "entries": [e.text() for e in watchlist.entries],
            "kinds": list(watchlist.kinds), "min_severity": watchlist.min_severity,
            "channels": list(watchlist.channels), "created_at": iso_z(watchlist.created_at)}


async def _body(request: web.Request) -> tuple[WatchlistBody, list[store.Entry]]:
    """The parsed body and its entries, or a 400 that lists every problem."""
    body = await read_body(request, WatchlistBody)
    settings = context(request).settings
    owner = caller(request).id
    async with context(request).engine.connect() as conn:
        nameable = webhooks.nameable(owner, settings.channels, await webhooks.load(conn, owner))
    chains = {c.name: c.chain_id for c in settings.chains}
    entries, problems = [], []
    if CONTROL.search(body.name):
        problems.append({"path": "name", "message": "no control characters"})
    problems += [{"path": f"kinds[{i}]", "message": "no control characters"} for i, kind in enumerate(body.kinds)
                 if CONTROL.search(kind)]
    for position, text in enumerate(body.entries):
        try:
            entries.append(_entry(text, chains))
        except InputError as exc:
            problems.append({"path": f"entries[{position}]", "message": str(exc)})
    # check() counts entries: hand it as many as were given, readable or not, so a bad one is not also "missing"
    counted = entries if len(entries) == len(body.entries) else [store.Entry()] * len(body.entries)
    try:
        store.check(body.name, counted, body.min_severity, body.channels, set(nameable), body.kinds)
    except InputError as exc:
        problems.append({"path": "body", "message": str(exc).removeprefix("watchlist: ")})
    if problems:
        refuse(problems)
    return body, entries


def _entry(text: str, chains: dict[str, int]) -> store.Entry:
    """store.parse_entry, behind the bounds the database needs: a protocol name fits its column, a chain id its
    BIGINT, and no control character gets in."""
    if len(text) > MAX_ENTRY or CONTROL.search(text):
        raise InputError(f"entry {text[:60]!r}: at most {MAX_ENTRY} characters, none of them a control character")
    where = text.strip().partition(":")[0]
    if where.isdigit() and not CHAIN_ID.match(where):  # isdigit() also takes "²", which int() refuses
        raise InputError(f"entry {text[:60]!r}: a chain id is 1 to 18 decimal digits")
    return store.parse_entry(text, chains)


def _within_quota(request: web.Request, lists: list[store.Watchlist]) -> None:
    key = caller(request)
    allowed = key.quotas.watchlists
    if allowed is not None and len(lists) >= allowed:
        raise ApiError(403, QUOTA, f"the {key.tier} tier allows {allowed} watchlist(s); key {key.id} has "
                                   f"{len(lists)}")


async def create_watchlist(request: web.Request) -> web.Response:
    Query(request, ())
    writable(request, "watchlists")
    body, entries = await _body(request)
    owner = caller(request).id
    async with request.app[_CREATING], context(request).engine.begin() as conn:
        _within_quota(request, await store.load(conn, owner))
        try:
            ident = await store.create(conn, owner, body.name, entries, kinds=body.kinds,
                                       min_severity=body.min_severity, channels=body.channels)
        except InputError as exc:  # the one thing create refuses: the name is taken
            raise ApiError(409, CONFLICT, str(exc)) from exc
        made = next(w for w in await store.load(conn, owner) if w.id == ident)
    return web.json_response({"watchlist": watchlist_json(made)}, status=201,
                             headers={"Location": f"/v1/watchlists/{ident}"})


async def list_watchlists(request: web.Request) -> web.Response:
    Query(request, ())
    async with context(request).engine.connect() as conn:
        lists = await store.load(conn, caller(request).id)
    return web.json_response({"watchlists": [watchlist_json(w) for w in lists]})


async def get_watchlist(request: web.Request) -> web.Response:
    Query(request, ())
    ident = request.match_info["id"]
    async with context(request).engine.connect() as conn:
        found = [w for w in await store.load(conn, caller(request).id) if w.id == ident]
    if not found:
        raise not_found(f"no watchlist {ident[:60]!r} for this key")
    return web.json_response({"watchlist": watchlist_json(found[0])})


async def delete_watchlist(request: web.Request) -> web.Response:
    Query(request, ())
    writable(request, "watchlists")
    ident = request.match_info["id"]
    async with context(request).engine.begin() as conn:
        removed = await store.remove(conn, ident, caller(request).id)
    if not removed:
        raise not_found(f"no watchlist {ident[:60]!r} for this key")
    return web.Response(status=204)


async def list_channels(request: web.Request) -> web.Response:
    """What the key's watchlists may name: its own webhooks, and the configured channels granted to it."""
    Query(request, ())
    owner = caller(request).id
    async with context(request).engine.connect() as conn:
        own = await webhooks.load(conn, owner)
    taken = {hook.name for hook in own}
    granted = [{"name": c.name, "type": c.type, "min_severity": c.min_severity, "kinds": list(c.kinds),
                "watchlists_only": c.watchlists_only, "owned": False}
               for c in context(request).settings.channels if owner in c.keys and c.name not in taken]
    mine = [{"name": hook.name, "type": "webhook", "min_severity": "info", "kinds": [], "watchlists_only": True,
             "owned": True} for hook in own]
    return web.json_response({"channels": mine + granted})


def setup(app: web.Application) -> None:
    app[_CREATING] = asyncio.Lock()


ROUTES = [
    Route("GET", "/v1/watchlists", list_watchlists, WATCHLISTS, "listWatchlists"),
    Route("POST", "/v1/watchlists", create_watchlist, WATCHLISTS, "createWatchlist"),
    Route("GET", "/v1/watchlists/{id}", get_watchlist, WATCHLISTS, "getWatchlist"),
    Route("DELETE", "/v1/watchlists/{id}", delete_watchlist, WATCHLISTS, "deleteWatchlist"),
    Route("GET", "/v1/channels", list_channels, WATCHLISTS, "listChannels"),
]
