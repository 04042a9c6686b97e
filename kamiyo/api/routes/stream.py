"""`GET /v1/stream`: the WebSocket of findings as they commit (kamiyo/api/stream.py), for keys with `read`.

It is real time by nature, so a key whose tier delays data is refused (403) rather than streamed a delayed
copy. `watchlists=mine` narrows it to what the key's own watchlists concern, matched as the delivery worker
matches (the watchlists are read when the stream opens).
"""

from __future__ import annotations

from aiohttp import web

from ...signals import OUTBOX_WRITTEN
from ...watchlists import store
from ...watchlists.match import Matcher
from .. import stream
from ..context import Route, caller, context
from ..errors import BAD_PARAMETER, FORBIDDEN, UPGRADE_REQUIRED, ApiError
from ..keys import READ

HUB = web.AppKey("kamiyo_api_stream_hub", stream.Hub)


async def open_stream(request: web.Request) -> web.StreamResponse:
    key, ctx = caller(request), context(request)
    if key.quotas.delay_seconds:
        raise ApiError(403, FORBIDDEN, f"the stream is real time; this key's tier ({key.tier}) sees data "
                                       f"{key.quotas.delay_seconds} s late: use /v1/findings")
    match = None
    if request.query.get("watchlists") == "mine":
        async with ctx.engine.connect() as conn:
            matcher = await Matcher.build(conn, await store.load(conn, key.id), None)
        match = lambda finding: bool(matcher.watchlists_for(finding))  # noqa: E731
    try:
        flt, cursor = stream.parse_filter(request.query, match)
    except ValueError as exc:
        raise ApiError(400, BAD_PARAMETER, str(exc)) from exc
    if request.headers.get("Upgrade", "").lower() != "websocket":
        raise ApiError(426, UPGRADE_REQUIRED, "this route is a WebSocket: connect with an Upgrade: websocket request",
                       headers={"Upgrade": "websocket", "Connection": "Upgrade"})
    return await stream.serve_subscriber(request, request.app[HUB], ctx.engine, flt, cursor)


def setup(app: web.Application) -> None:
    async def start(app: web.Application) -> None:
        app[HUB] = stream.Hub(app_engine(app), OUTBOX_WRITTEN.listener())
        await app[HUB].start()

    async def stop(app: web.Application) -> None:
        await app[HUB].stop()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)


def app_engine(app: web.Application):
    from ..context import CONTEXT

    return app[CONTEXT].engine


ROUTES = [Route("GET", "/v1/stream", open_stream, READ, "streamFindings")]
