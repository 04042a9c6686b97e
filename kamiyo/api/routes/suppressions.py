"""`/v1/suppressions`: known noise a key silences on its own webhooks (alerts/suppressions.py), one finding by
fingerprint or an analyzer's findings about (or naming) one address, each with its reason. The delivery worker
reads them at every fan-out. They never touch the operator's channels: the operator silences those with
`kamiyo alerts suppress`. A key keeps at most MAX_PER_KEY (403 "quota"); a read-only server answers 405 to every
change.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError

from ...alerts import suppressions
from ...config import SuppressionSettings
from ...reports.findings import iso_z
from ..bodies import read_body, refuse, writable
from ..context import Route, caller, context
from ..errors import QUOTA, ApiError, not_found
from ..keys import WATCHLISTS
from ..params import CONTROL, Query

MAX_PER_KEY = 1000


class SuppressionBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    fingerprint: str | None = None
    kind: str | None = None
    address: str | None = None
    reason: str


def suppression_json(stored: suppressions.Stored) -> dict:
    rule = stored.rule
    return {"id": stored.id, "fingerprint": rule.fingerprint, "kind": rule.kind, "address": rule.address,
            "reason": rule.reason, "created_at": iso_z(stored.created_at)}


def _rule(body: SuppressionBody) -> SuppressionSettings:
    problems = [{"path": name, "message": "no control characters"}
                for name in ("fingerprint", "kind", "address", "reason")
                if CONTROL.search(getattr(body, name) or "")]
    if problems:
        refuse(problems)
    try:
        return SuppressionSettings(**body.model_dump())
    except ValidationError as exc:
        refuse([{"path": ".".join(map(str, e["loc"])) or "body", "message": e["msg"].removeprefix("Value error, ")}
                for e in exc.errors(include_url=False)])
        raise  # not reached: refuse raised


async def create_suppression(request: web.Request) -> web.Response:
    Query(request, ())
    writable(request, "suppressions")
    rule = _rule(await read_body(request, SuppressionBody))
    owner = caller(request).id
    async with context(request).engine.begin() as conn:
        if await suppressions.count(conn, owner) >= MAX_PER_KEY:
            raise ApiError(403, QUOTA, f"a key keeps at most {MAX_PER_KEY} suppressions; remove one first")
        stored = await suppressions.add(conn, rule, owner)
    return web.json_response({"suppression": suppression_json(stored)}, status=201,
                             headers={"Location": f"/v1/suppressions/{stored.id}"})


async def list_suppressions(request: web.Request) -> web.Response:
    Query(request, ())
    async with context(request).engine.connect() as conn:
        found = await suppressions.load(conn, caller(request).id)
    return web.json_response({"suppressions": [suppression_json(s) for s in found]})


async def delete_suppression(request: web.Request) -> web.Response:
    Query(request, ())
    writable(request, "suppressions")
    ident = request.match_info["id"]
    async with context(request).engine.begin() as conn:
        removed = await suppressions.remove(conn, ident, caller(request).id)
    if not removed:
        raise not_found(f"no suppression {ident[:60]!r} for this key")
    return web.Response(status=204)


ROUTES = [
    Route("GET", "/v1/suppressions", list_suppressions, WATCHLISTS, "listSuppressions"),
    Route("POST", "/v1/suppressions", create_suppression, WATCHLISTS, "createSuppression"),
    Route("DELETE", "/v1/suppressions/{id}", delete_suppression, WATCHLISTS, "deleteSuppression"),
]
