"""The routes about the service itself: liveness, readiness, metrics, the OpenAPI document, and the calling key.

/healthz says only that the process answers. /readyz says whether it can serve: the database answers, and, when
the daemon handed the application its own check (`ready`), whatever that reports. /metrics is Prometheus'
exposition of kamiyo.metrics.REGISTRY and needs an admin key: the API may listen where the world can reach it,
and the counters name chains, feeds and channels (scrape with `authorization: {credentials: kmy_…}`, or use the
unauthenticated `[metrics] listen` endpoint on a private address).
"""

from __future__ import annotations

import asyncio
import functools
import json

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from ... import log, metrics
from ..context import ANY_KEY, PUBLIC, Route, caller, context
from ..errors import NOT_READY
from ..keys import ADMIN
from ..params import Query

READY_TIMEOUT = 5.0  # seconds a readiness check may take before it counts as failed
DOCUMENT = web.AppKey("kamiyo_api_openapi", dict)
_log = log.get("kamiyo.api")
_lenient = functools.partial(json.dumps, default=str)  # what the daemon's check reports is shown, whatever it is


async def healthz(request: web.Request) -> web.Response:
    Query(request, ())
    return web.json_response({"status": "ok"})


async def _database(request: web.Request) -> tuple[bool, dict]:
    async with context(request).engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
    return True, {}


async def _checked(name: str, check) -> tuple[bool, dict]:
    """Run one readiness check: (ok, {"ok": ok, …what it reported, or "error"}). A check that raises or takes
    longer than READY_TIMEOUT is a failed check, never a failed request."""
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            ok, detail = await check()
    except Exception as exc:  # noqa: BLE001 - any failure of a check is an answer: not ready, and why
        reason = "timed out" if isinstance(exc, TimeoutError) else (" ".join(str(exc).split())[:300] or
                                                                   type(exc).__name__)
        _log.warning("api.not_ready", check=name, error=reason)
        return False, {"ok": False, "error": reason}
    return bool(ok), {**detail, "ok": bool(ok)}


async def readyz(request: web.Request) -> web.Response:
    Query(request, ())
    ctx = context(request)
    checks: dict[str, dict] = {}
    ok, checks["database"] = await _checked("database", lambda: _database(request))
    if ctx.ready is not None:
        daemon_ok, checks["daemon"] = await _checked("daemon", ctx.ready)
        ok = ok and daemon_ok
    if ok:
        return web.json_response({"status": "ready", "checks": checks}, dumps=_lenient)
    failing = ", ".join(name for name, result in checks.items() if not result["ok"])
    return web.json_response({"error": NOT_READY, "detail": f"not ready: {failing}", "status": "not_ready",
                              "checks": checks}, status=503, dumps=_lenient)


async def prometheus(request: web.Request) -> web.Response:
    Query(request, ())
    return web.Response(body=generate_latest(metrics.REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def openapi(request: web.Request) -> web.Response:
    Query(request, ())
    return web.json_response(request.app[DOCUMENT])


async def whoami(request: web.Request) -> web.Response:
    Query(request, ())
    return web.json_response({"key": caller(request).public()})


ROUTES = [
    Route("GET", "/healthz", healthz, PUBLIC, "healthz"),
    Route("GET", "/readyz", readyz, PUBLIC, "readyz"),
    Route("GET", "/metrics", prometheus, ADMIN, "metrics"),
    Route("GET", "/v1/openapi.json", openapi, PUBLIC, "getOpenApiDocument"),
    Route("GET", "/v1/me", whoami, ANY_KEY, "getCallingKey"),
]
