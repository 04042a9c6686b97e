"""`/v1/stream`: findings as they are committed, over a WebSocket, resumable from a cursor.

One hub per application tails the outbox (woken at once by a commit in the same process, else every
`POLL_SECONDS`) and hands each new event to every subscriber's bounded queue; a subscriber's own task filters and
sends. The cursor is the outbox id: every frame carries the last one sent, and a client that reconnects with
`?cursor=N` is first sent what it missed from the table (in pages), then joins the live feed without a gap or a
repeat. Events that arrive while a subscriber is busy are sent together in one frame (frames may batch).

Frame: `{"type": "events", "cursor": N, "events": [{"cursor", "event", "finding"}, …]}`; errors are
`{"type": "error", "error", "detail"}` followed by a close. A subscriber whose queue overflows (it reads slower
than findings arrive for `QUEUE_LIMIT` events) is closed with 1013 and told the cursor to resume from, never
silently skipped ahead. Filters: `chain`, `kind`, `min_severity`, and `watchlists=mine` (only what the key's own
watchlists concern).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import WSCloseCode, web
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from .. import log
from ..findings import Severity
from ..storage.schema import outbox

POLL_SECONDS = 0.05
QUEUE_LIMIT = 10_000
REPLAY_PAGE = 500
BATCH_WINDOW = 0.01  # seconds a subscriber waits for more events to join a frame
_log = log.get("kamiyo.api.stream")


@dataclass(frozen=True, slots=True)
class StreamEvent:
    cursor: int
    event: str
    finding: dict
    text: str  # the frame item as JSON, serialised once for every subscriber that is sent it


def _event(cursor: int, event: str, finding: dict) -> StreamEvent:
    item = json.dumps({"cursor": cursor, "event": event, "finding": finding}, separators=(",", ":"))
    return StreamEvent(cursor, event, finding, item)


@dataclass
class Filter:
    chain: int | None = None
    kind: str | None = None
    min_severity: Severity = Severity.INFO
    watchlist_match: Callable[[dict], bool] | None = None  # watchlists=mine

    def wants(self, event: StreamEvent) -> bool:
        f = event.finding
        if self.chain is not None and f["chain_id"] != self.chain:
            return False
        if self.kind is not None and f["kind"] != self.kind:
            return False
        if Severity(f["severity"]).rank < self.min_severity.rank:
            return False
        return self.watchlist_match is None or self.watchlist_match(f)


@dataclass(eq=False)
class _Subscriber:
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(QUEUE_LIMIT))
    overflowed: bool = False


class Hub:
    """Tails the outbox and fans each event out to the subscribers' queues."""

    def __init__(self, engine: AsyncEngine, wake: asyncio.Event | None = None) -> None:
        self.engine = engine
        self.wake = wake  # set when this process committed outbox events (OUTBOX_WRITTEN); else it polls
        self.subscribers: set[_Subscriber] = set()
        self.last = 0  # the newest outbox id handed out
        self.ready = asyncio.Event()  # set once `last` is known: the outbox was read once
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        """Start tailing; the outbox's end is read by the task, so a database that does not answer yet delays
        the stream's subscribers, never the application's start."""
        self._task = asyncio.create_task(self._run(), name="api.stream.hub")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            try:
                if not self.ready.is_set():
                    async with self.engine.connect() as conn:
                        self.last = (await conn.execute(select(func.coalesce(func.max(outbox.c.id), 0)))).scalar()
                    self.ready.set()
                if self.wake is not None:
                    self.wake.clear()  # before the tail: a commit during it wakes the next wait
                await self._tail()
            except Exception as exc:  # noqa: BLE001 - the database busy: try again; subscribers keep waiting
                _log.warning("stream.tail_failed", error=str(exc)[:300])
                await asyncio.sleep(1.0)
            if self.wake is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), POLL_SECONDS)
            else:
                await asyncio.sleep(POLL_SECONDS)

    async def _tail(self) -> None:
        while True:
            events = await read_events(self.engine, self.last, REPLAY_PAGE)
            if not events:
                return
            for subscriber in list(self.subscribers):
                for event in events:
                    try:
                        subscriber.queue.put_nowait(event)
                    except asyncio.QueueFull:
                        subscriber.overflowed = True
                        break
            self.last = events[-1].cursor


async def read_events(engine: AsyncEngine, after: int, limit: int) -> list[StreamEvent]:
    async with engine.connect() as conn:
        rows = (await conn.execute(select(outbox.c.id, outbox.c.event, outbox.c.finding).where(outbox.c.id > after)
                                   .order_by(outbox.c.id).limit(limit))).all()
    return [_event(r.id, r.event, r.finding) for r in rows]


def parse_filter(query, watchlist_match: Callable[[dict], bool] | None) -> tuple[Filter, int | None]:
    """The subscriber's filter and resume cursor from the query string; ValueError names a bad parameter."""
    def integer(name: str) -> int | None:
        value = query.get(name)
        if value is None:
            return None
        if not value.isdigit():
            raise ValueError(f"{name}: expected a non-negative integer, got {value!r}")
        return int(value)

    severity = query.get("min_severity", "info")
    if severity not in {s.value for s in Severity}:
        raise ValueError(f"min_severity: expected one of {', '.join(s.value for s in Severity)}")
    mine = query.get("watchlists")
    if mine not in (None, "mine"):
        raise ValueError("watchlists: the only value is 'mine'")
    return Filter(integer("chain"), query.get("kind"), Severity(severity),
                  watchlist_match if mine == "mine" else None), integer("cursor")


async def serve_subscriber(request: web.Request, hub: Hub, engine: AsyncEngine, flt: Filter,
                           cursor: int | None) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(heartbeat=30)
    await ws.prepare(request)
    await hub.ready.wait()
    subscriber = _Subscriber()
    hub.subscribers.add(subscriber)  # joined before the replay: nothing committed meanwhile is missed
    sent = cursor if cursor is not None else hub.last
    try:
        while cursor is not None and sent < hub.last:  # what it missed, from the table
            page = await read_events(engine, sent, REPLAY_PAGE)
            if not page:
                break
            sent = await _send(ws, [e for e in page if e.cursor <= hub.last], flt, sent)
        reader = asyncio.create_task(ws.receive())  # a close from the client ends the stream
        while not ws.closed:
            getter = asyncio.create_task(subscriber.queue.get())
            done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
            if reader in done:
                getter.cancel()
                break
            batch = [getter.result()]
            await asyncio.sleep(BATCH_WINDOW)
            while not subscriber.queue.empty():
                batch.append(subscriber.queue.get_nowait())
            sent = await _send(ws, [e for e in batch if e.cursor > sent], flt, sent)
            if subscriber.overflowed and subscriber.queue.empty():
                await ws.send_json({"type": "error", "error": "too_slow", "cursor": sent,
                                    "detail": f"more than {QUEUE_LIMIT} events waited; reconnect with cursor={sent}"})
                await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"too slow; resume from the cursor")
        reader.cancel()
    finally:
        hub.subscribers.discard(subscriber)
    return ws


async def _send(ws: web.WebSocketResponse, events: list[StreamEvent], flt: Filter, sent: int) -> int:
    """Send the wanted ones in one frame; returns the new cursor (the last event looked at, wanted or not)."""
    if not events:
        return sent
    wanted = [e.text for e in events if flt.wants(e)]
    last = events[-1].cursor
    if wanted:
        await ws.send_str(f'{{"type":"events","cursor":{last},"sent_at":{time.time():.6f},"events":['
                          + ",".join(wanted) + "]}")
    return last


Authorizer = Callable[[web.Request], Awaitable[Callable[[dict], bool] | None]]
