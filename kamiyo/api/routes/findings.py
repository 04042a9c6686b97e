"""`/v1/findings`: stored findings, oldest first, in the shape alerts carry (`storage.findings.finding_payload`).

Pages are keyed on (created_at, fingerprint), the order the table is indexed in: a finding committed between two
pages with a later created_at than the cursor shows on a later page, and nothing already shown is shown again. A
finding committed with a created_at before the cursor (a chain that caught up late) is not seen by a walk that
has passed it; `/v1/stream` is the way to miss nothing. A key with a data delay sees only findings created before
now minus its delay, here and by id.
"""

from __future__ import annotations

from datetime import datetime

from aiohttp import web
from sqlalchemy import and_, or_, select

from ...findings import ACTIVE, RETRACTED, FindingType, Severity
from ...reports.findings import utc
from ...storage.findings import finding_payload
from ...storage.schema import findings
from ..context import Route, context, visible_before
from ..errors import BadParameter, not_found
from ..keys import READ
from ..params import Query, encode_cursor

ALL = "all"
STATUSES = (ACTIVE, RETRACTED, ALL)
LIST = "findings"
PARAMETERS = ("chain", "kind", "min_severity", "type", "status", "since", "until", "limit", "cursor")


def _after(key: list) -> tuple[datetime, str]:
    created, fingerprint = key
    try:
        moment = datetime.fromisoformat(created) if isinstance(created, str) else None
    except ValueError:
        moment = None
    if moment is None or not isinstance(fingerprint, str) or len(fingerprint) > 66:
        raise BadParameter("cursor", "not a cursor this list gave out (pass next_cursor back as it was)")
    return utc(moment), fingerprint


async def list_findings(request: web.Request) -> web.Response:
    q = Query(request, PARAMETERS)
    chain = q.integer("chain", minimum=1)
    kind = q.text("kind", max_length=40)
    min_severity = q.text("min_severity", choices=[s.value for s in Severity])
    kind_of = q.text("type", choices=[t.value for t in FindingType])
    status = q.text("status", choices=STATUSES, default=ACTIVE)
    since, until = q.moment("since"), q.moment("until")
    limit = q.limit()
    after = q.cursor(LIST, 2)

    c = findings.c
    query = select(findings).order_by(c.created_at, c.fingerprint).limit(limit + 1)
    conditions = []
    if chain is not None:
        conditions.append(c.chain_id == chain)
    if kind is not None:
        conditions.append(c.kind == kind)
    if min_severity is not None:
        floor = Severity(min_severity).rank
        conditions.append(c.severity.in_([s.value for s in Severity if s.rank >= floor]))
    if kind_of is not None:
        conditions.append(c.type == kind_of)
    if status != ALL:
        conditions.append(c.status == status)
    if since is not None:
        conditions.append(c.created_at >= since)
    if until is not None:
        conditions.append(c.created_at < until)
    if (cutoff := visible_before(request)) is not None:
        conditions.append(c.created_at < cutoff)
    if after is not None:
        moment, fingerprint = _after(after)
        conditions.append(or_(c.created_at > moment, and_(c.created_at == moment, c.fingerprint > fingerprint)))
    if conditions:
        query = query.where(and_(*conditions))
    async with context(request).engine.connect() as conn:
        rows = [dict(r._mapping) for r in await conn.execute(query)]
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = None
    if more:
        last = rows[-1]
        cursor = encode_cursor(LIST, [utc(last["created_at"]).isoformat(), last["fingerprint"]])
    return web.json_response({"findings": [finding_payload(row) for row in rows], "next_cursor": cursor})


async def get_finding(request: web.Request) -> web.Response:
    ident = request.match_info["id"]
    query = select(findings).where(findings.c.fingerprint == ident.lower())
    if (cutoff := visible_before(request)) is not None:
        query = query.where(findings.c.created_at < cutoff)
    async with context(request).engine.connect() as conn:
        row = (await conn.execute(query)).first()
    if row is None:
        raise not_found(f"no finding {ident[:80]!r}" + (" (or not yet: this key's data is delayed)" if cutoff else ""))
    return web.json_response({"finding": finding_payload(dict(row._mapping))})


ROUTES = [
    Route("GET", "/v1/findings", list_findings, READ, "listFindings"),
    Route("GET", "/v1/findings/{id}", get_finding, READ, "getFinding"),
]
