"""What every handler may reach: the application's context (engine, settings, clock, limiter), the calling key,
and the `Route` record each route module declares its routes with (method, path, handler, scope).

A route's scope is data, declared beside it, so the auth middleware can refuse before the handler runs and the
tests can check every route against the OpenAPI document. A route with no declared scope is not public: it needs
`admin` (fail closed).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from ..config import Settings
from .keys import ApiKey
from .quotas import Limiter

PUBLIC = None  # the scope of a route anyone may call
ANY_KEY = "any"  # the scope of a route any valid key may call, whatever its scopes
Ready = Callable[[], Awaitable[tuple[bool, dict]]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    handler: Handler
    scope: str | None  # a key scope, ANY_KEY or PUBLIC
    name: str  # the operationId in the OpenAPI document


@dataclass(slots=True)
class ApiContext:
    engine: AsyncEngine
    settings: Settings
    read_only: bool
    ready: Ready | None
    limiter: Limiter
    clock: Callable[[], float] = time.time
    scopes: dict[tuple[str, str], str | None] = field(default_factory=dict)  # (method, path) -> scope

    @property
    def chain_names(self) -> dict[int, str]:
        return {chain.chain_id: chain.name for chain in self.settings.chains}

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), timezone.utc)


CONTEXT = web.AppKey("kamiyo_api_context", ApiContext)
CALLER = web.RequestKey("kamiyo_api_key", ApiKey)  # the key that made the request (absent on public routes)


def context(request: web.Request) -> ApiContext:
    return request.app[CONTEXT]


def caller(request: web.Request) -> ApiKey:
    return request[CALLER]


def visible_before(request: web.Request) -> datetime | None:
    """The calling key's data delay as a cutoff: it is shown only findings created before this (None: real time)."""
    delay = caller(request).quotas.delay_seconds
    return context(request).now() - timedelta(seconds=delay) if delay else None
