"""`/v1/incidents`: the merged incidents `kamiyo incidents` lists, and one with its records and why they are one
(`kamiyo incidents show`), both from reports/incidents.py.

Pages follow the report's order (by day, incidents without one last, then id) and are keyed on it. The incidents
table is rebuilt whole after a pull, but an incident's id and day stay while its earliest record does, so a
cursor stays meaningful across rebuilds.

A key with a data delay must not learn of the daemon's own exploit findings through incidents before it may see
the findings: a record of source `kamiyo` whose finding is newer than the key's cutoff is left out, and so is an
incident that only such records make.
"""

from __future__ import annotations

from datetime import datetime

from aiohttp import web
from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from ...chains.registry import chain_id_of
from ...errors import InputError
from ...feeds.incidents import ONCHAIN
from ...reports.incidents import incident_detail, incidents_report
from ...storage.reading import chunks
from ...storage.schema import findings
from ..context import Route, context, visible_before
from ..errors import BadParameter, not_found
from ..keys import READ
from ..params import Query, encode_cursor

LIST = "incidents"
PARAMETERS = ("since", "chain", "limit", "cursor")


def _chain(text: str | None) -> int | str | None:
    """A decimal chain id, a name the chain registry knows, else the name as feeds wrote it ("Solana")."""
    if text is None:
        return None
    if text.isascii() and text.isdigit():
        return int(text)
    found = chain_id_of(text)
    return found if found is not None else text


def _order(incident: dict) -> tuple:
    return (incident["date"] is None, incident["date"] or "", incident["id"])


async def _embargoed(engine: AsyncEngine, refs: set[str], cutoff: datetime) -> set[str]:
    """Of the fingerprints behind `kamiyo` records, those of findings the key may not see yet."""
    fresh: set[str] = set()
    async with engine.connect() as conn:
        for part in chunks(sorted(refs)):
            fresh.update(await conn.scalars(select(findings.c.fingerprint).where(and_(
                findings.c.fingerprint.in_(part), findings.c.created_at >= cutoff))))
    return fresh


async def _withhold(request: web.Request, incidents: list[dict]) -> list[dict]:
    """Drop the `kamiyo` sources the caller may not see yet, and the incidents left with none."""
    cutoff = visible_before(request)
    if cutoff is None:
        return incidents
    refs = {s["ref"] for i in incidents for s in i["sources"] if s["source"] == ONCHAIN}
    fresh = await _embargoed(context(request).engine, refs, cutoff) if refs else set()
    if not fresh:
        return incidents
    kept = []
    for incident in incidents:
        sources = [s for s in incident["sources"] if not (s["source"] == ONCHAIN and s["ref"] in fresh)]
        if sources:
            kept.append({**incident, "sources": sources})
    return kept


async def list_incidents(request: web.Request) -> web.Response:
    q = Query(request, PARAMETERS)
    since, chain, limit = q.day("since"), _chain(q.text("chain", max_length=100)), q.limit()
    after = q.cursor(LIST, 3)
    if after is not None and not (isinstance(after[0], bool) and isinstance(after[1], str)
                                  and isinstance(after[2], str)):
        raise BadParameter("cursor", "not a cursor this list gave out (pass next_cursor back as it was)")
    ctx = context(request)
    try:
        rows = (await incidents_report(ctx.engine, ctx.chain_names, since=since, chain=chain,
                                       limit=None))["incidents"]
    except InputError:  # a chain name no incident carries: the CLI calls that a typo, a filter matches nothing
        rows = []
    if after is not None:
        rows = [i for i in rows if _order(i) > tuple(after)]
    rows = await _withhold(request, rows)
    page = rows[:limit]
    cursor = encode_cursor(LIST, list(_order(page[-1]))) if len(rows) > limit else None
    return web.json_response({"incidents": page, "next_cursor": cursor})


async def get_incident(request: web.Request) -> web.Response:
    ident = request.match_info["id"]
    ctx = context(request)
    detail = await incident_detail(ctx.engine, ctx.chain_names, ident) if len(ident) <= 40 else None
    shown = await _withhold(request, [detail["incident"]]) if detail is not None else []
    if not shown:
        raise not_found(f"no incident {ident[:80]!r}")
    incident = shown[0]
    keep = {(s["source"], s["ref"]) for s in incident["sources"]}
    incident["records"] = [r for r in incident["records"] if (r["source"], r["ref"]) in keep]
    return web.json_response({"incident": incident})


ROUTES = [
    Route("GET", "/v1/incidents", list_incidents, READ, "listIncidents"),
    Route("GET", "/v1/incidents/{id}", get_incident, READ, "getIncident"),
]
