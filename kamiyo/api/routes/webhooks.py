"""`/v1/webhooks`: the webhooks a key registers for its watchlists (kamiyo/watchlists/webhooks.py).

A webhook's URL is user input: it is refused unless every address its host resolves to passes `[alerts]
allow_networks` (the same check every delivery makes again, alerts/network.py). Its secret is made here and shown
once, in the 201; deliveries are signed with it exactly as a configured webhook's. The tier's `webhooks` quota
bounds how many a key has (403 "quota"; the free tier has none). `POST /v1/webhooks/{id}/test` sends one signed
test delivery now and says what the receiver answered. A read-only server answers 405 to every change.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from pydantic import BaseModel, ConfigDict

from ...alerts.channels import TEST_EVENT, send_to, test_finding
from ...alerts.network import NetworkPolicy, UnsafeDestination, check_destination
from ...alerts.outcome import Dead, Delivered
from ...watchlists import webhooks
from ..bodies import read_body, refuse, writable
from ..context import Route, caller, context
from ..errors import CONFLICT, QUOTA, ApiError, not_found
from ..keys import WATCHLISTS
from ..params import CONTROL, Query

RESOLVE_SECONDS = 5
_CREATING = web.AppKey("kamiyo_api_webhook_lock", asyncio.Lock)


class WebhookBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str
    url: str


def _policy(request: web.Request) -> NetworkPolicy:
    return NetworkPolicy.from_strings(context(request).settings.alerts.allow_networks)


async def _checked(request: web.Request) -> WebhookBody:
    body = await read_body(request, WebhookBody)
    problems = []
    if (why := webhooks.name_problem(body.name)) or CONTROL.search(body.name):
        problems.append({"path": "name", "message": why or "no control characters"})
    if why := webhooks.url_problem(body.url):
        problems.append({"path": "url", "message": why})
    else:
        try:
            async with asyncio.timeout(RESOLVE_SECONDS):
                await check_destination(body.url, _policy(request))
        except UnsafeDestination as exc:
            problems.append({"path": "url", "message": f"refused destination: {exc}"})
        except TimeoutError:
            problems.append({"path": "url", "message": f"the host did not resolve within {RESOLVE_SECONDS} s"})
        except OSError as exc:
            problems.append({"path": "url", "message": f"the host does not resolve: {exc.strerror or exc}"})
    if problems:
        refuse(problems)
    return body


async def create_webhook(request: web.Request) -> web.Response:
    Query(request, ())
    writable(request, "webhooks")
    body = await _checked(request)
    key = caller(request)
    async with request.app[_CREATING], context(request).engine.begin() as conn:
        have = await webhooks.load(conn, key.id)
        allowed = key.quotas.webhooks
        if allowed is not None and len(have) >= allowed:
            raise ApiError(403, QUOTA, f"the {key.tier} tier allows {allowed} webhook(s); key {key.id} has "
                                       f"{len(have)}")
        try:
            hook, secret = await webhooks.create(conn, key.id, body.name, body.url)
        except ValueError as exc:
            raise ApiError(409, CONFLICT, str(exc)) from exc
    return web.json_response({"webhook": hook.public(), "secret": secret}, status=201,
                             headers={"Location": f"/v1/webhooks/{hook.id}"})


async def _own(request: web.Request) -> webhooks.KeyWebhook:
    ident = request.match_info["id"]
    async with context(request).engine.connect() as conn:
        found = [h for h in await webhooks.load(conn, caller(request).id) if h.id == ident]
    if not found:
        raise not_found(f"no webhook {ident[:60]!r} for this key")
    return found[0]


async def list_webhooks(request: web.Request) -> web.Response:
    Query(request, ())
    async with context(request).engine.connect() as conn:
        hooks = await webhooks.load(conn, caller(request).id)
    return web.json_response({"webhooks": [hook.public() for hook in hooks]})


async def get_webhook(request: web.Request) -> web.Response:
    Query(request, ())
    return web.json_response({"webhook": (await _own(request)).public()})


async def delete_webhook(request: web.Request) -> web.Response:
    Query(request, ())
    writable(request, "webhooks")
    async with context(request).engine.begin() as conn:
        removed = await webhooks.remove(conn, request.match_info["id"], caller(request).id)
    if not removed:
        raise not_found(f"no webhook {request.match_info['id'][:60]!r} for this key")
    return web.Response(status=204)


async def test_webhook(request: web.Request) -> web.Response:
    """One signed test delivery now; 200 whatever the receiver said, and what it said."""
    Query(request, ())
    writable(request, "webhooks")
    hook = await _own(request)
    alerts = context(request).settings.alerts
    outcome = await send_to(hook.channel(), TEST_EVENT, test_finding(hook.name), _policy(request),
                            alerts.timeout_seconds)
    if isinstance(outcome, Delivered):
        return web.json_response({"delivered": True, "status": outcome.status, "detail": "delivered"})
    verdict = "refused: it would not be retried" if isinstance(outcome, Dead) else "failed: it would be retried"
    return web.json_response({"delivered": False, "status": None, "detail": f"{verdict} ({outcome.error})"})


def setup(app: web.Application) -> None:
    app[_CREATING] = asyncio.Lock()


ROUTES = [
    Route("GET", "/v1/webhooks", list_webhooks, WATCHLISTS, "listWebhooks"),
    Route("POST", "/v1/webhooks", create_webhook, WATCHLISTS, "createWebhook"),
    Route("GET", "/v1/webhooks/{id}", get_webhook, WATCHLISTS, "getWebhook"),
    Route("DELETE", "/v1/webhooks/{id}", delete_webhook, WATCHLISTS, "deleteWebhook"),
    Route("POST", "/v1/webhooks/{id}/test", test_webhook, WATCHLISTS, "testWebhook"),
]
