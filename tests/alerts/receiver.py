"""A real webhook receiver for tests: an aiohttp server on loopback that checks signatures as a receiver should
(kamiyo.alerts.webhook.verify: fresh timestamp, HMAC over timestamp and raw body), records what arrived, and can
be told to fail for a while (500, or 429 with Retry-After) or to answer slowly."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

from aiohttp import web

from kamiyo.alerts.webhook import verify


@dataclass
class Received:
    delivery_id: str
    event: str
    finding: dict
    signed: bool


@dataclass
class Receiver:
    secret: str
    fail_first: int = 0  # answer this many requests with `fail_status` first
    fail_status: int = 500
    retry_after: str | None = None
    delay: float = 0.0
    requests: int = 0
    received: list[Received] = field(default_factory=list)  # accepted (2xx) deliveries, in order
    arrived: dict[str, float] = field(default_factory=dict)  # delivery id -> wall time it was first accepted
    url: str = ""
    _runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        body = await request.read()
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.requests <= self.fail_first:
            headers = {"Retry-After": self.retry_after} if self.retry_after else {}
            return web.Response(status=self.fail_status, headers=headers)
        signed = verify(self.secret, request.headers, body)
        if not signed:
            return web.Response(status=401, text="bad signature")
        doc = json.loads(body)
        self.received.append(Received(request.headers["X-Kamiyo-Delivery-Id"], doc["event"], doc["finding"], signed))
        self.arrived.setdefault(self.received[-1].delivery_id, time.time())
        return web.Response(status=204)

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/hook"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
