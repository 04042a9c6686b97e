"""Who is calling, and may they: the key from `Authorization: Bearer <secret>` or `X-API-Key: <secret>`, the
route's scope, and the key's request quotas.

Refusals: 401 without a key, with an unknown one or a revoked one; 403 when the key's scopes lack the route's;
429 with Retry-After when the key is over its quota per minute or per UTC day.

Quotas: a key's day is shared by every process on the database, its minute bucket is this process's (quotas.py).

A key read from the database is kept for KEY_TTL (1 s by the application's clock), then read again: a revocation,
by `kamiyo apikey revoke` in another process or by anything else that writes the database, is refused from at
most 1 s after its commit on. (Reading the key for every request was one of the two queries a page of findings
cost.) Only keys that exist are kept, by the sha256 of their secret, never the secret itself: an unknown secret is
looked up every time, so a key made a moment ago works at once. Each application keeps its own.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable

from aiohttp import web
from prometheus_client import Counter

from .. import metrics
from ..storage.engine import reads
from . import keys
from .context import ANY_KEY, CALLER, PUBLIC, context
from .errors import FORBIDDEN, RATE_LIMITED, UNAUTHORIZED, ApiError
from .keys import ADMIN, ApiKey

KEY_TTL = 1.0  # seconds: the bound on how long a revoked key may still be admitted
MAX_KEYS = 10_000  # keys kept at once; past this the cache starts again (keys are few, secrets unguessable)
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


class KeyCache:
    """Keys by the sha256 of their secret, each with when (by `clock`) it was read from the database."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._keys: dict[str, tuple[float, ApiKey]] = {}

    async def lookup(self, request: web.Request, secret: str) -> ApiKey | None:
        digest = keys.hash_secret(secret)
        now = self._clock()
        kept = self._keys.get(digest)
        if kept is not None and 0 <= now - kept[0] < KEY_TTL:  # a clock set back is no reason to trust longer
            return kept[1]
        # `now` is from before the read: an entry is never trusted past KEY_TTL from when its row was read
        key = await reads(context(request).engine).run(keys.lookup_sync, secret)
        if key is None:
            self._keys.pop(digest, None)
            return None
        if len(self._keys) >= MAX_KEYS:
            self._keys.clear()
        self._keys[digest] = (now, key)
        return key


_CACHES: weakref.WeakKeyDictionary[web.Application, KeyCache] = weakref.WeakKeyDictionary()


def _cache(request: web.Request) -> KeyCache:
    found = _CACHES.get(request.app)
    if found is None:  # one per application, as its clock and database are
        found = _CACHES[request.app] = KeyCache(context(request).clock)
    return found


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
    key = await _cache(request).lookup(request, secret)
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
