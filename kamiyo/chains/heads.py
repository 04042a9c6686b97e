"""Head tracking by WebSocket subscription: `eth_subscribe` ["newHeads"] on one of an ordered list of ws:// or
wss:// URLs, reported as plain block numbers, and `HeadSignal`, which turns those reports into a wake-up for a
follower loop.

A subscription only says "there is something new, the head is N". It fetches no blocks and never decides what
is processed: the follower catches up over HTTP from its checkpoint, so blocks produced while the socket was
down are filled in on that side. For that to work the follower must look once after every (re)connect, so each
connection reports the node's current head (`eth_blockNumber`, asked on the same socket right after the
subscription is confirmed) before or among its first notifications.

A connection is dropped when it closes or errors, when a WebSocket ping gets no pong (`heartbeat`), or when no
head arrives within `idle_timeout` (pongs do not count: a subscription can die on a node while the socket lives).
Then the next URL is tried after an exponential, jittered backoff that grows with consecutive failures and is
reset by a connection that delivered a notification. It never gives up; it ends on cancellation or a stop event.
URLs are logged only redacted."""

from __future__ import annotations

import asyncio
import json
import math
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiohttp

from kamiyo import log
from kamiyo.errors import InputError, KamiyoError

from .mappers import MalformedNodeAnswer, quantity
from .rpc import Sleep, redact_url, scrub_url

_log = log.get("kamiyo.heads")

OnHead = Callable[[int], None]

_SUBSCRIBE_ID, _HEAD_ID = 1, 2  # request ids on a fresh socket: nothing else is ever asked on it


class SubscriptionDropped(KamiyoError, ConnectionError):
    """A head subscription's connection failed or ended; the subscription reconnects by itself."""

    retryable = True


class WsHeadSubscription:
    """Head numbers from `eth_subscribe` ["newHeads"], as the module docstring says. Use as
    `await WsHeadSubscription(urls).run(on_head, stop)`. A session passed in is borrowed, not closed.

    Counters, for metrics: `drops` (failed attempts and ended connections, one `heads.disconnected` each),
    `reconnects` (subscriptions re-established after the first, one `heads.reconnected` each), `malformed`
    (messages skipped). `sleep` and `rng` are injectable so tests control the backoff."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        heartbeat: float | None = 15.0,
        idle_timeout: float | None = 120.0,
        answer_timeout: float = 10.0,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        session: aiohttp.ClientSession | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if not urls:
            raise InputError("WsHeadSubscription needs at least one ws:// or wss:// URL")
        for name, value in (("answer_timeout", answer_timeout), ("backoff_base", backoff_base),
                            ("backoff_cap", backoff_cap), ("heartbeat", heartbeat), ("idle_timeout", idle_timeout)):
            if value is not None and not value > 0:
                raise InputError(f"{name} must be positive, got {value!r}")
        self.urls = tuple(urls)
        self.heartbeat = heartbeat
        self.idle_timeout = idle_timeout
        self.answer_timeout = answer_timeout
        self._backoff = (backoff_base, backoff_cap)
        self._session = session
        self._sleep, self._rng = sleep, rng
        self._index = 0
        self._failures = 0  # consecutive; the attempt number in log lines
        self._connected_once = False
        self.drops = 0
        self.reconnects = 0
        self.malformed = 0

    @property
    def endpoint(self) -> str:
        """The redacted URL in use or tried next."""
        return redact_url(self.urls[self._index])

    async def run(self, on_head: OnHead, stop: asyncio.Event | None = None) -> None:
        """Call `on_head(number)` for the current head on every (re)connect and for every new head after it, in
        arrival order (a reorg may report a number again or a lower one). `on_head` runs on the event loop and
        must not block; what it raises ends `run`. Returns once `stop` is set; cancellation also ends it cleanly."""
        session = self._session or aiohttp.ClientSession()
        try:
            await _until(stop, self._forever(session, on_head))
        finally:
            if session is not self._session:
                await session.close()

    async def _forever(self, session: aiohttp.ClientSession, on_head: OnHead) -> None:
        while True:
            url = self.urls[self._index]
            try:
                await self._connection(session, url, on_head)
            except SubscriptionDropped as exc:
                self._failures += 1
                self.drops += 1
                self._index = (self._index + 1) % len(self.urls)
                base, cap = self._backoff
                delay = min(cap, base * 2 ** (self._failures - 1)) * (0.5 + self._rng() / 2)
                _log.warning("heads.disconnected", endpoint=redact_url(url), attempt=self._failures,
                             error=exc.message, next_endpoint=self.endpoint, retry_in=round(delay, 3))
                await self._sleep(delay)

    async def _connection(self, session: aiohttp.ClientSession, url: str, on_head: OnHead) -> None:
        """One connection's life, from connecting to the SubscriptionDropped that always ends it."""
        try:
            async with asyncio.timeout(self.answer_timeout):
                # ws_close bounds the goodbye on a dropped connection, where the peer may never answer it.
                ws = await session.ws_connect(url, heartbeat=self.heartbeat, autoping=True,
                                              timeout=aiohttp.ClientWSTimeout(ws_close=self.answer_timeout))
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise _dropped(url, "could not connect", exc) from exc
        try:
            await self._follow(_Socket(ws, url, self._skip), on_head)
        finally:
            await ws.close()

    async def _follow(self, sock: _Socket, on_head: OnHead) -> None:
        loop = asyncio.get_running_loop()
        await sock.send(_SUBSCRIBE_ID, "eth_subscribe", ["newHeads"])
        subscription = await sock.answer(_SUBSCRIBE_ID, "eth_subscribe", loop.time() + self.answer_timeout)
        if not isinstance(subscription, str) or not subscription:
            raise SubscriptionDropped(f"eth_subscribe answered {subscription!r:.80} instead of a subscription id")
        self._announce(sock.url)
        # Asked only once the subscription is confirmed, so no block falls between the answer and the first
        # notification: this answer is the "(re)connected, look now" report.
        await sock.send(_HEAD_ID, "eth_blockNumber", [])
        answer_at = loop.time() + self.answer_timeout
        idle_at = math.inf if self.idle_timeout is None else loop.time() + self.idle_timeout
        while True:
            doc = await sock.receive(min(answer_at, idle_at), "no answer to eth_blockNumber" if answer_at < idle_at
                                     else f"no new head within idle_timeout {self.idle_timeout}s")
            if answer_at < math.inf and doc.get("id") == _HEAD_ID:
                number = _quantity_or_drop(_result(doc, "eth_blockNumber"), "eth_blockNumber")
                answer_at = math.inf
            elif doc.get("method") == "eth_subscription":
                number = self._notified(doc, subscription, sock.url)
                if number is None:
                    continue
                self._failures = 0  # a notification proves the whole path works: the backoff starts over
            else:
                self._skip(sock.url, "neither a notification nor an expected answer", doc)
                continue
            if self.idle_timeout is not None:
                idle_at = loop.time() + self.idle_timeout
            on_head(number)

    def _announce(self, url: str) -> None:
        attempt = self._failures + 1
        if self._connected_once:
            self.reconnects += 1
            _log.info("heads.reconnected", endpoint=redact_url(url), attempt=attempt, reconnects=self.reconnects)
        else:
            self._connected_once = True
            _log.info("heads.connected", endpoint=redact_url(url), attempt=attempt)

    def _notified(self, doc: dict, subscription: str, url: str) -> int | None:
        """The head number of a newHeads notification, or None (logged) when it is not one of ours or malformed."""
        params = doc.get("params")
        if not isinstance(params, dict) or params.get("subscription") != subscription:
            self._skip(url, "notification without params or for another subscription", doc)
            return None
        head = params.get("result")
        try:
            return quantity(head.get("number") if isinstance(head, dict) else None, "newHeads.number")
        except MalformedNodeAnswer as exc:
            self._skip(url, exc.message, doc)
            return None

    def _skip(self, url: str, why: str, doc: Any) -> None:
        self.malformed += 1
        _log.warning("heads.malformed", endpoint=redact_url(url), reason=why, message=f"{doc!r:.200}")


class _Socket:
    """One WebSocket as JSON-RPC messages: every way it can fail becomes SubscriptionDropped; a frame that is not a
    JSON object goes to `skip` (which logs and counts it) and is passed over."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, url: str, skip: Callable[[str, str, Any], None]) -> None:
        self.ws, self.url, self.skip = ws, url, skip

    async def send(self, request_id: int, method: str, params: list) -> None:
        try:
            await self.ws.send_str(json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method,
                                               "params": params}))
        except (aiohttp.ClientError, OSError) as exc:
            raise _dropped(self.url, f"could not send {method}", exc) from exc

    async def answer(self, request_id: int, method: str, deadline: float) -> Any:
        """The result answering `request_id`; skips anything else that arrives first."""
        while True:
            doc = await self.receive(deadline, f"no answer to {method}")
            if doc.get("id") == request_id:
                return _result(doc, method)

    async def receive(self, deadline: float, silence: str) -> dict:
        """The next JSON object from the socket, by the loop time `deadline` (math.inf: none) or dropped with
        `silence` as the reason."""
        while True:
            try:
                async with asyncio.timeout_at(None if deadline == math.inf else deadline):
                    msg = await self.ws.receive()
            except TimeoutError as exc:
                raise SubscriptionDropped(silence) from exc
            if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                raise _closed(self.url, self.ws, msg)
            try:
                doc = json.loads(msg.data)
            except ValueError:  # also UnicodeDecodeError
                doc = None
            if isinstance(doc, dict):
                return doc
            self.skip(self.url, "not a JSON object", msg.data)


def _result(doc: dict, method: str) -> Any:
    error = doc.get("error")
    if error is not None:
        raise SubscriptionDropped(f"{method} refused by the node: {error!r:.200}", error=error)
    if "result" not in doc:
        raise SubscriptionDropped(f"{method} answered with neither result nor error")
    return doc["result"]


def _quantity_or_drop(value: Any, what: str) -> int:
    try:
        return quantity(value, what)
    except MalformedNodeAnswer as exc:
        raise SubscriptionDropped(exc.message) from exc


def _closed(url: str, ws: aiohttp.ClientWebSocketResponse, msg: aiohttp.WSMessage) -> SubscriptionDropped:
    cause = ws.exception() or (msg.data if isinstance(msg.data, BaseException) else None)
    if cause is not None:  # a missed pong arrives here as ServerTimeoutError("No PONG received ...")
        return _dropped(url, "connection failed", cause)
    return SubscriptionDropped(f"connection closed ({msg.type.name.lower()}, code {ws.close_code})")


def _dropped(url: str, what: str, exc: BaseException) -> SubscriptionDropped:
    return SubscriptionDropped(scrub_url(url, f"{what}: {type(exc).__name__}: {exc}"))


async def _until(stop: asyncio.Event | None, work: Awaitable[None]) -> None:
    """Await `work` until `stop` is set, then cancel it; what `work` raises is raised."""
    if stop is None:
        await work
        return
    task, stopped = asyncio.ensure_future(work), asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in (task, stopped):
            pending.cancel()
        await asyncio.gather(task, stopped, return_exceptions=True)
    if not task.cancelled() and task.exception() is not None:
        raise task.exception()


class HeadSignal:
    """The newest head reported and a wake-up for the one follower loop that waits on it. A report that comes
    while the follower is busy is not lost: the flag stays set until the next `wait` takes it."""

    def __init__(self) -> None:
        self.latest: int | None = None
        self._flag = asyncio.Event()

    def notify(self, number: int) -> None:
        """An `on_head` for WsHeadSubscription.run."""
        self.latest = number
        self._flag.set()

    async def wait(self, timeout: float | None = None, stop: asyncio.Event | None = None) -> bool:
        """True when a head was reported since the last wait (at once if one already was); False when `timeout`
        seconds passed or `stop` was set first."""
        waiters = [asyncio.ensure_future(self._flag.wait())]
        if stop is not None:
            waiters.append(asyncio.ensure_future(stop.wait()))
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)
        if self._flag.is_set():
            self._flag.clear()
            return True
        return False
