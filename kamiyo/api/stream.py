"""`/v1/stream`: findings as they are committed, over a WebSocket, resumable from a cursor.

One hub per application tails the outbox (woken at once by a commit in the same process, else every
`POLL_SECONDS`, or `IDLE_POLL_SECONDS` while nobody subscribes) and reads what is new as one batch. For each
distinct filter among the subscribers it builds the batch's frame once, from the events already serialised, and
writes those same bytes to every subscriber of that filter that keeps up: no task, queue or wake-up per
subscriber, only the send. A subscriber that does not keep up (its socket holds unsent bytes), or is still being
replayed what it missed, gets the batch appended to its backlog instead, which a task of its own drains. The hub
must never wait on one subscriber: it writes to a socket only when nothing is buffered for it, when a write
cannot pause on flow control.

The cursor is the outbox id: every frame carries the last one looked at for that subscriber, and a client that
reconnects with `?cursor=N` is first sent what it missed from the table (in pages), then joins the live feed
without a gap or a repeat. Events committed between two reads share a frame (frames may batch).

Frame: `{"type": "events", "cursor": N, "sent_at": T, "events": [{"cursor", "event", "finding"}, …]}`; errors
are `{"type": "error", "error", "detail"}` followed by a close. A subscriber whose backlog overflows (it reads
slower than findings arrive, until more than `QUEUE_LIMIT` events wait for it) is sent its backlog, then closed
with 1013 and told the cursor to resume from, never silently skipped ahead. Filters: `chain`, `kind`,
`min_severity`, and `watchlists=mine` (only what the key's own watchlists concern).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import WSCloseCode, WSMsgType, web
from sqlalchemy import Connection, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from .. import log
from ..findings import Severity
from ..storage.engine import reads
from ..storage.schema import outbox

POLL_SECONDS = 0.02  # when no commit in this process wakes the hub (`kamiyo api`): one indexed read per poll
IDLE_POLL_SECONDS = 0.5  # while nobody subscribes: it only keeps the outbox's end; a join wakes it
QUEUE_LIMIT = 10_000
REPLAY_PAGE = 500
FRAME_BYTES = 32 * 1024  # a live batch is cut into frames of about this much, under a socket's high-water mark
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


@dataclass(frozen=True)
class Filter:
    """What a subscriber wants; hashable, so that subscribers with equal filters share a frame."""

    chain: int | None = None
    kind: str | None = None
    min_severity: Severity = Severity.INFO
    watchlist_match: Callable[[dict], bool] | None = None  # watchlists=mine: one per subscriber

    def wants(self, event: StreamEvent) -> bool:
        f = event.finding
        if self.chain is not None and f["chain_id"] != self.chain:
            return False
        if self.kind is not None and f["kind"] != self.kind:
            return False
        if Severity(f["severity"]).rank < self.min_severity.rank:
            return False
        return self.watchlist_match is None or self.watchlist_match(f)


def _frame(events: list[StreamEvent], flt: Filter) -> bytes | None:
    """One frame of the events `flt` wants, its cursor the last event's (wanted or not); None if it wants none."""
    wanted = [e.text for e in events if flt.wants(e)]
    if not wanted:
        return None
    return (f'{{"type":"events","cursor":{events[-1].cursor},"sent_at":{time.time():.6f},"events":['
            + ",".join(wanted) + "]}").encode()


class _Batch:
    """Events read together, in cursor order, and their frame per filter, built on first use."""

    __slots__ = ("events", "last", "_frames")

    def __init__(self, events: list[StreamEvent]) -> None:
        self.events = events
        self.last = events[-1].cursor
        self._frames: dict[Filter, bytes | None] = {}

    def frame(self, flt: Filter) -> bytes | None:
        try:
            return self._frames[flt]
        except KeyError:
            built = self._frames[flt] = _frame(self.events, flt)
            return built


def _batches(events: list[StreamEvent]) -> list[_Batch]:
    """`events` in batches of about FRAME_BYTES of text (at least one event each): a catch-up of many events is
    still written straight to the sockets that keep up, rather than left to every subscriber's drainer."""
    batches, start, size = [], 0, 0
    for i, e in enumerate(events):
        if size and size + len(e.text) > FRAME_BYTES:
            batches.append(_Batch(events[start:i]))
            start, size = i, 0
        size += len(e.text)
    batches.append(_Batch(events[start:]))
    return batches


@dataclass(eq=False)
class _Subscriber:
    ws: web.WebSocketResponse
    transport: asyncio.Transport
    flt: Filter
    sent: int  # the cursor of the last event sent to it or passed over (not wanted)
    live: bool = False  # what it missed is replayed: the hub may write to it
    backlog: deque[_Batch] = field(default_factory=deque)
    waiting: int = 0  # events in the backlog
    overflowed: bool = False
    drainer: asyncio.Task | None = None  # its own task sending the backlog, while there is one
    high: int = field(init=False)  # the socket's high-water mark: a frame above it could pause a write

    def __post_init__(self) -> None:
        self.high = self.transport.get_write_buffer_limits()[1]


class Hub:
    """Tails the outbox and fans each batch of events out to the subscribers."""

    def __init__(self, engine: AsyncEngine, wake: asyncio.Event | None = None) -> None:
        self.engine = engine
        # set when this process committed outbox events (OUTBOX_WRITTEN), and by a join; else it polls
        self.wake = wake if wake is not None else asyncio.Event()
        self.groups: dict[Filter, set[_Subscriber]] = {}  # the subscribers by filter: a frame per filter
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
        loop = asyncio.get_running_loop()
        while True:
            began = loop.time()
            try:
                if not self.ready.is_set():
                    self.last = await outbox_end(self.engine)
                    self.ready.set()
                self.wake.clear()  # before the tail: a commit during it wakes the next wait
                await self._tail()
            except Exception as exc:  # noqa: BLE001 - the database busy: try again; subscribers keep waiting
                _log.warning("stream.tail_failed", error=str(exc)[:300])
                await asyncio.sleep(1.0)
            # a poll every POLL_SECONDS from the start of the last one: a long fan-out is not added to the wait
            period = POLL_SECONDS if self.groups else IDLE_POLL_SECONDS
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), max(0.0, began + period - loop.time()))

    async def _tail(self) -> None:
        while True:
            events = await read_events(self.engine, self.last, REPLAY_PAGE)
            if not events:
                return
            # `last` first: a subscriber joining during the fan-out starts after these events, or replays them
            self.last = events[-1].cursor
            for batch in _batches(events):
                await self._fan_out(batch)

    def join(self, sub: _Subscriber) -> None:
        if not self.groups:
            self.wake.set()  # it was polling at the idle pace
        self.groups.setdefault(sub.flt, set()).add(sub)

    def leave(self, sub: _Subscriber) -> None:
        group = self.groups.get(sub.flt)
        if group is not None:
            group.discard(sub)
            if not group:
                del self.groups[sub.flt]

    async def _fan_out(self, batch: _Batch) -> None:
        first, last = batch.events[0].cursor, batch.last
        for flt, group in list(self.groups.items()):
            frame = batch.frame(flt)
            size = len(frame) if frame is not None else 0
            for sub in list(group):
                if sub.overflowed or sub.ws.closed:
                    continue
                # (a batch starting at or before its cursor overlaps what it was sent: the drainer trims it)
                if sub.live and sub.drainer is None and not sub.backlog and first > sub.sent:
                    if frame is None:
                        sub.sent = last
                        continue
                    # Nothing buffered for it and a frame under the high-water mark: the write cannot pause on
                    # flow control, so this await returns without yielding and no subscriber holds the hub up.
                    if size <= sub.high and not sub.transport.get_write_buffer_size():
                        try:
                            await sub.ws.send_frame(frame, WSMsgType.TEXT)
                        except ConnectionError:
                            pass  # it went: its handler ends it
                        sub.sent = last
                        continue
                self._queue(sub, batch)

    def _queue(self, sub: _Subscriber, batch: _Batch) -> None:
        if sub.waiting + len(batch.events) > QUEUE_LIMIT:
            sub.overflowed = True  # it is told to resume after what its backlog holds
        else:
            sub.backlog.append(batch)
            sub.waiting += len(batch.events)
        self.kick(sub)

    def kick(self, sub: _Subscriber) -> None:
        """Start the subscriber's drainer if it is live and has a backlog (or must be told it overflowed)."""
        if sub.live and sub.drainer is None and (sub.backlog or sub.overflowed):
            sub.drainer = asyncio.create_task(_drain(sub), name="api.stream.drain")


async def _drain(sub: _Subscriber) -> None:
    """Send the backlog, a frame per batch, waiting on the socket as it needs; then, if it overflowed, the error
    with the cursor to resume from, and the close."""
    try:
        while sub.backlog:
            batch = sub.backlog.popleft()
            sub.waiting -= len(batch.events)
            if batch.last <= sub.sent:  # the replay sent it all
                continue
            if batch.events[0].cursor > sub.sent:
                frame = batch.frame(sub.flt)  # the frame its live peers were sent
            else:  # overlaps what the replay sent
                frame = _frame([e for e in batch.events if e.cursor > sub.sent], sub.flt)
            if frame is not None:
                await sub.ws.send_frame(frame, WSMsgType.TEXT)
            sub.sent = batch.last
        if sub.overflowed:
            await sub.ws.send_json({"type": "error", "error": "too_slow", "cursor": sub.sent,
                                    "detail": f"more than {QUEUE_LIMIT} events waited; reconnect with "
                                              f"cursor={sub.sent}"})
            await sub.ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"too slow; resume from the cursor")
    except ConnectionError:  # the client went: its handler ends
        pass
    finally:
        sub.drainer = None


# Through storage.engine.reads: a poll is one step of the event loop (over aiosqlite it was five trips to a
# thread and back, about 1 ms of CPU, and the hub polls 50 times a second while anyone subscribes).
_END = select(func.coalesce(func.max(outbox.c.id), 0))
_AFTER = (select(outbox.c.id, outbox.c.event, outbox.c.finding).where(outbox.c.id > bindparam("after"))
          .order_by(outbox.c.id).limit(bindparam("limit")))


async def outbox_end(engine: AsyncEngine) -> int:
    return await reads(engine).run(lambda conn: conn.execute(_END).scalar())


async def read_events(engine: AsyncEngine, after: int, limit: int) -> list[StreamEvent]:
    return await reads(engine).run(_read_events, after, limit)


def _read_events(conn: Connection, after: int, limit: int) -> list[StreamEvent]:
    rows = conn.execute(_AFTER, {"after": after, "limit": limit}).all()
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
    # No per-message deflate: a frame is built once and the same bytes go to every subscriber, where deflate
    # would compress it again per subscriber and keep a compressor (~256 KiB) per connection.
    if cursor is None and not hub.groups:
        # The hub polls at the idle pace, so its end may be stale: start from the table's, read before the
        # handshake, so that whatever commits after it is sent (replayed, as to a resuming client, if need be).
        cursor = await outbox_end(engine)
    ws = web.WebSocketResponse(heartbeat=30, compress=False)
    await ws.prepare(request)
    await hub.ready.wait()
    if request.transport is None:  # the client went already
        return ws
    sub = _Subscriber(ws, request.transport, flt, cursor if cursor is not None else hub.last)
    hub.join(sub)  # joined before the replay: what is committed meanwhile waits in its backlog
    try:
        while cursor is not None and sub.sent < hub.last:  # what it missed, from the table
            page = await read_events(engine, sub.sent, REPLAY_PAGE)
            if not page:
                break
            sub.sent = await _send(ws, [e for e in page if e.cursor <= hub.last], flt, sub.sent)
        sub.live = True
        hub.kick(sub)  # what arrived during the replay
        async for _message in ws:  # until the client closes, or the drainer does (too slow)
            pass
    finally:
        hub.leave(sub)
        if sub.drainer is not None:
            sub.drainer.cancel()
            await asyncio.gather(sub.drainer, return_exceptions=True)
    return ws


async def _send(ws: web.WebSocketResponse, events: list[StreamEvent], flt: Filter, sent: int) -> int:
    """Send the wanted ones in one frame; returns the new cursor (the last event looked at, wanted or not)."""
    if not events:
        return sent
    frame = _frame(events, flt)
    if frame is not None:
        await ws.send_frame(frame, WSMsgType.TEXT)
    return events[-1].cursor


Authorizer = Callable[[web.Request], Awaitable[Callable[[dict], bool] | None]]
