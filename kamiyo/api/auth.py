"""Who is calling, and may they: the key from `Authorization: Bearer <secret>` or `X-API-Key: <secret>`, the
route's scope, and the key's request quotas.

Refusals: 401 without a key, with an unknown one or a revoked one; 403 when the key's scopes lack the route's;
429 with Retry-After when the key is over its quota per minute or per UTC day.

Quotas are counted in this process's memory (quotas.py).

Keys are looked up in the database on every request, so a revocation is effective at once.
"""

from __future__ import annotations

import math

from aiohttp import web
from prometheus_client import Counter

from .. import metrics
from . import keys
from .context import ANY_KEY, CALLER, PUBLIC, context
from .errors import FORBIDDEN, RATE_LIMITED, UNAUTHORIZED, ApiError
from .keys import ADMIN, ApiKey

REJECTIONS = Counter("kamiyo_api_rejections", "API requests refused before their handler ran, by reason "
                     "(unauthorized, forbidden, rate_limited)", ["reason"], registry=metrics.REGISTRY)
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="kamiyo"'}


def presented_secret(request: web.Request) -> str | None:
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise _unauthorized("Authorization: expected 'Bearer <API key>'")
        return value.strip()
    value = request.headers.get("X-API-Key", "").strip()
    return value or None


def _unauthorized(detail: str) -> ApiError:
    REJECTIONS.labels("unauthorized").inc()
    return ApiError(401, UNAUTHORIZED, detail, headers=_CHALLENGE)


def route_scope(request: web.Request) -> tuple[bool, str | None]:
    """(whether a route matched, its scope). An unmatched request is left to the router's own 404 or 405."""
    resource = request.match_info.route.resource
    if resource is None:
        return False, None
    method = "GET" if request.method == "HEAD" else request.method
    scopes = context(request).scopes
    return True, scopes.get((method, resource.canonical), ADMIN)  # undeclared: admin only


async def authenticate(request: web.Request, scope: str) -> ApiKey:
    secret = presented_secret(request)
    if secret is None:
        raise _unauthorized("an API key is needed: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'")
    async with context(request).engine.connect() as conn:
        key = await keys.lookup(conn, secret)
    if key is None:
        raise _unauthorized("unknown API key")
    if key.revoked_at is not None:
        raise _unauthorized(f"API key {key.id} was revoked")
    if scope != ANY_KEY and not key.allows(scope):
        REJECTIONS.labels("forbidden").inc()
        raise ApiError(403, FORBIDDEN, f"API key {key.id} lacks the {scope!r} scope this route needs "
                                       f"(it has: {', '.join(sorted(key.scopes))})")
    refusal = await context(request).limiter.admit(key)
    if refusal is not None:
        REJECTIONS.labels("rate_limited").inc()
        wait = max(1, math.ceil(refusal.retry_after))
        raise ApiError(429, RATE_LIMITED, f"API key {key.id} has used its {refusal.limit} requests per "
                                          f"{refusal.window} ({key.tier} tier); retry in {wait} s",
                       headers={"Retry-After": str(wait)}, retry_after=wait)
    return key


@web.middleware
async def auth_middleware(request: web.Request, handler) -> web.StreamResponse:
    matched, scope = route_scope(request)
    if matched and scope is not PUBLIC:
        request[CALLER] = await authenticate(request, scope)
    return await handler(request)
