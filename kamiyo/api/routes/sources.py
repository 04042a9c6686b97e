"""`/v1/sources`: the configured feeds' health, as `kamiyo sources` shows it: records stored, incidents each
contributes to, last success, and the last error with its time (which may be older than the last success)."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import func, select

from ...reports.findings import iso_z
from ...reports.incidents import source_counts
from ...storage.schema import feed_records, feed_state
from ..context import Route, context
from ..keys import READ
from ..params import Query


async def list_sources(request: web.Request) -> web.Response:
    Query(request, ())
    ctx = context(request)
    async with ctx.engine.connect() as conn:
        records = dict((await conn.execute(select(feed_records.c.source, func.count())
                                           .group_by(feed_records.c.source))).all())
        states = {row.source: row for row in await conn.execute(select(feed_state))}
    merged = await source_counts(ctx.engine)
    shown = []
    for feed in ctx.settings.feeds:
        state = states.get(feed.name)
        failed = state is not None and state.last_error_at is not None
        shown.append({
            "name": feed.name, "type": feed.type, "records": records.get(feed.name, 0),
            "incidents": merged["per_source"].get(feed.name, 0),
            "last_success": iso_z(state.last_success) if state is not None and state.last_success else None,
            "last_error": state.last_error if failed else None,
            "last_error_at": iso_z(state.last_error_at) if failed else None,
        })
    return web.json_response({"sources": shown, "incidents": {"total": merged["incidents"],
                                                              "single_source": merged["single_source"]}})


ROUTES = [Route("GET", "/v1/sources", list_sources, READ, "listSources")]
