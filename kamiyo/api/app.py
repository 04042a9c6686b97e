"""The aiohttp application: routes from kamiyo.api.routes, their scopes, and the middlewares every request goes
through, outermost first:

  observe   one log line and the request metrics per request (never the key's secret, nor the query's values)
  cors      the configured origins' headers, and preflight answers
  errors    every refusal and every unexpected exception as `{"error", "detail"}` with its status; never a traceback
  auth      the key, its scope and its quotas (auth.py)

The application does not own the engine: whoever made it (the daemon, `kamiyo api`) disposes of it.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable

from aiohttp import web
from prometheus_client import Counter, Histogram
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from .. import log, metrics
from ..config import Settings
from ..errors import InputError, KamiyoError
from ..storage.reading import DatabaseUnavailable
from . import errors
from .auth import auth_middleware
from .context import CALLER, CONTEXT, ApiContext, Ready
from .errors import ApiError, error_response
from .openapi import document
from .quotas import Limiter
from .routes import MODULES, ROUTES
from .routes.service import DOCUMENT

MAX_BODY = 256 * 1024  # a watchlist of 1,000 entries is well under this
_log = log.get("kamiyo.api")
REQUESTS = Counter("kamiyo_api_requests", "API requests answered, by method, route and status",
                   ["method", "route", "status"], registry=metrics.REGISTRY)
SECONDS = Histogram("kamiyo_api_request_seconds", "Time to answer an API request, by route", ["route"],
                    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
                    registry=metrics.REGISTRY)
_HTTP_CODES = {400: errors.BAD_REQUEST, 404: errors.NOT_FOUND, 405: errors.METHOD_NOT_ALLOWED,
               413: errors.TOO_LARGE}
_METHODS = {"GET", "HEAD", "POST", "DELETE", "OPTIONS"}  # any other is counted as "other": labels stay bounded
_QUIET = {"/healthz", "/readyz", "/metrics"}  # probes and scrapes: logged at debug


def _route_label(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def observe_middleware(request: web.Request, handler) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    finally:
        elapsed = time.perf_counter() - started
        route = _route_label(request)
        REQUESTS.labels(request.method if request.method in _METHODS else "other", route, str(status)).inc()
        SECONDS.labels(route).observe(elapsed)
        key = request.get(CALLER)
        emit = _log.debug if route in _QUIET else _log.info
        emit("api.request", method=request.method, route=route, status=status, key=key.id if key else None,
             ms=round(elapsed * 1000, 1))


def _http_error(exc: web.HTTPException) -> web.Response:
    headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
    detail = {404: "no such route", 405: f"method not allowed here (allowed: {exc.headers.get('Allow', '')})",
              413: f"the body is larger than {MAX_BODY} bytes"}.get(exc.status, exc.reason)
    return error_response(exc.status, _HTTP_CODES.get(exc.status, errors.HTTP_ERROR), detail, headers=headers)


@web.middleware
async def error_middleware(request: web.Request, handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _http_error(exc)
    except (DatabaseUnavailable, SQLAlchemyError) as exc:
        reason = " ".join(str(getattr(exc, "orig", None) or exc).split())[:200]
        _log.error("api.database_failed", route=_route_label(request), error=reason)
        return error_response(503, errors.UNAVAILABLE, "the database does not answer; try again later",
                              headers={"Retry-After": "5"})
    except InputError as exc:  # a report refused what it was handed: the caller's mistake
        return error_response(400, errors.BAD_PARAMETER, str(exc))
    except KamiyoError as exc:
        _log.error("api.failed", route=_route_label(request), error=str(exc)[:300])
        return error_response(500, errors.INTERNAL, "the server could not answer this request")
    except Exception as exc:  # noqa: BLE001 - the last line of defence: logged with where, answered in one line
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        _log.error("api.crashed", route=_route_label(request), error=repr(exc)[:300],
                   at=f"{frame.filename}:{frame.lineno} {frame.name}")
        return error_response(500, errors.INTERNAL, "the server could not answer this request")


def _cors(origins: list[str]):
    allowed = set(origins)

    def permitted(origin: str | None) -> str | None:
        if origin is None:
            return None
        return "*" if "*" in allowed else (origin if origin in allowed else None)

    @web.middleware
    async def cors_middleware(request: web.Request, handler) -> web.StreamResponse:
        origin = permitted(request.headers.get("Origin"))
        if origin is None:
            return await handler(request)
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            return web.Response(status=204, headers={
                "Access-Control-Allow-Origin": origin, "Vary": "Origin",
                "Access-Control-Allow-Methods": "GET, POST, DELETE",
                "Access-Control-Allow-Headers": "Authorization, X-API-Key, Content-Type",
                "Access-Control-Max-Age": "600"})
        response = await handler(request)
        if response.prepared:  # a WebSocket or a stream has sent its headers already
            return response
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"
        response.headers["Access-Control-Expose-Headers"] = "Retry-After, Location"
        return response

    return cors_middleware


def create_app(engine: AsyncEngine, settings: Settings, *, read_only: bool, ready: Ready | None = None,
               clock: Callable[[], float] = time.time) -> web.Application:
    """The API over `engine`. `read_only` refuses every change (405); `ready` is the daemon's own readiness
    check for /readyz; `clock` is wall time in seconds (quotas and data delays read it)."""
    middlewares = [observe_middleware]
    if settings.api is not None and settings.api.cors_origins:
        middlewares.append(_cors(settings.api.cors_origins))
    middlewares += [error_middleware, auth_middleware]
    app = web.Application(middlewares=middlewares, client_max_size=MAX_BODY)
    ctx = ApiContext(engine, settings, read_only, ready, Limiter(clock, engine), clock)
    app[CONTEXT] = ctx
    app.cleanup_ctx.append(ctx.limiter.sync_forever)  # the day quotas, shared through the database
    for route in ROUTES:
        if route.method == "GET":
            app.router.add_get(route.path, route.handler)
        else:
            app.router.add_route(route.method, route.path, route.handler)
        ctx.scopes[(route.method, route.path)] = route.scope
    for module in MODULES:
        if hasattr(module, "setup"):
            module.setup(app)
    app[DOCUMENT] = document()
    return app


async def start(app: web.Application, host: str, port: int, *, shutdown_timeout: float = 10.0,
                reuse_port: bool = False) -> web.AppRunner:
    """Listen on host:port (beside other processes on it with `reuse_port`); the caller cleans the runner up
    (which waits up to `shutdown_timeout` for requests in flight)."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, reuse_port=reuse_port or None).start()
    except OSError as exc:
        await runner.cleanup()
        raise KamiyoError(f"[api] listen: cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    _log.info("api.listening", addresses=[f"{a[0]}:{a[1]}" for a in runner.addresses])
    return runner
