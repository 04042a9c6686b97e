"""`/v1/findings`: stored findings, oldest first, in the shape alerts carry (`storage.findings.finding_payload`).

Pages are keyed on (created_at, fingerprint), the order the table is indexed in: a finding committed between two
pages with a later created_at than the cursor shows on a later page, and nothing already shown is shown again. A
finding committed with a created_at before the cursor (a chain that caught up late) is not seen by a walk that
has passed it; `/v1/stream` is the way to miss nothing. A key with a data delay sees only findings created before
now minus its delay, here and by id.

A page is read, shaped and encoded to its body in one call of `storage.engine.reads` (one step of the event loop
over SQLite), with a statement made once per combination of filters.
"""

from __future__ import annotations

import functools
import json
from datetime import datetime

from aiohttp import web
from sqlalchemy import Connection, Integer, and_, bindparam, or_, select

from ...findings import ACTIVE, RETRACTED, FindingType, Severity
from ...reports.findings import utc
from ...storage.engine import reads
from ...storage.findings import finding_payload
from ...storage.schema import findings
from ..context import Route, context, visible_before
from ..errors import BadParameter, not_found
from ..keys import READ
from ..params import Query, encode_cursor

ALL = "all"
STATUSES = (ACTIVE, RETRACTED, ALL)
LIST = "findings"
COLUMNS = [column for column in findings.c if column.name != "updated_at"]  # what finding_payload shows
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


_c = findings.c
# Each filter's conditions, its values bound by name when the query runs. A new cursor's row is after the last one
# sent in (created_at, fingerprint) order; the range on created_at alone lets the index seek to it (an OR alone
# made SQLite scan the index from its first row: 15 ms for a page deep in 24,000 findings).
_FILTERS = {
    "chain": lambda: [_c.chain_id == bindparam("chain")],
    "kind": lambda: [_c.kind == bindparam("kind")],
    "type": lambda: [_c.type == bindparam("type")],
    "status": lambda: [_c.status == bindparam("status")],
    "since": lambda: [_c.created_at >= bindparam("since")],
    "until": lambda: [_c.created_at < bindparam("until")],
    "cutoff": lambda: [_c.created_at < bindparam("cutoff")],
    "after": lambda: [_c.created_at >= bindparam("after"),
                      or_(_c.created_at > bindparam("after"), _c.fingerprint > bindparam("after_id"))],
}


@functools.cache
def _statement(filters: tuple[str, ...], floor: int | None):
    """The page query with these `_FILTERS` and this severity floor, made once per combination (at most a few
    thousand): building and keying a statement anew was a tenth of what a request cost."""
    conditions = [condition for name in filters for condition in _FILTERS[name]()]
    if floor is not None:
        conditions.append(_c.severity.in_([s.value for s in Severity if s.rank >= floor]))
    query = select(*COLUMNS).order_by(_c.created_at, _c.fingerprint).limit(bindparam("limit", type_=Integer))
    return query.where(and_(*conditions)) if conditions else query


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

    values = {"chain": chain, "kind": kind, "type": kind_of, "status": None if status == ALL else status,
              "since": since, "until": until, "cutoff": visible_before(request)}
    if after is not None:
        values["after"], values["after_id"] = _after(after)
    bound = {name: value for name, value in values.items() if value is not None}
    floor = Severity(min_severity).rank if min_severity is not None else None
    statement = _statement(tuple(name for name in _FILTERS if name in bound), floor)
    body = await reads(context(request).engine).run(_page, statement, bound | {"limit": limit + 1}, limit)
    return web.Response(body=body, content_type="application/json", charset="utf-8")


def _page(conn: Connection, statement, values: dict, limit: int) -> bytes:
    """The page as the response's body: read, shaped and encoded in one step of the event loop (reads)."""
    rows = conn.execute(statement, values).all()
    cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        cursor = encode_cursor(LIST, [utc(rows[-1].created_at).isoformat(), rows[-1].fingerprint])
    page = {"findings": [finding_payload(row._mapping) for row in rows], "next_cursor": cursor}
    return json.dumps(page).encode()


def _one(conn: Connection, query) -> bytes | None:
    row = conn.execute(query).first()
    return None if row is None else json.dumps({"finding": finding_payload(row._mapping)}).encode()


async def get_finding(request: web.Request) -> web.Response:
    ident = request.match_info["id"]
    query = select(*COLUMNS).where(findings.c.fingerprint == ident.lower())
    if (cutoff := visible_before(request)) is not None:
        query = query.where(findings.c.created_at < cutoff)
    body = await reads(context(request).engine).run(_one, query)
    if body is None:
        raise not_found(f"no finding {ident[:80]!r}" + (" (or not yet: this key's data is delayed)" if cutoff else ""))
    return web.Response(body=body, content_type="application/json", charset="utf-8")


ROUTES = [
    Route("GET", "/v1/findings", list_findings, READ, "listFindings"),
    Route("GET", "/v1/findings/{id}", get_finding, READ, "getFinding"),
]
