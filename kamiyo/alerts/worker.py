"""The delivery worker: outbox events fanned out to channels, sent with retries, dead-lettered after a limit.

Durability comes from the tables, not from memory: the outbox row was written with the finding; fanning it out
writes one `deliveries` row per matching channel and moves the `fanned_out` cursor in one transaction; a
delivery's outcome is written after its send. A crash therefore loses nothing: at worst a delivery that was sent
but not yet marked is sent again, under the same `X-Kamiyo-Delivery-Id`, which receivers drop as a repeat.

Per channel: a token bucket (`rate_per_minute`) paces sends (waiting for a token is not an attempt); the same
finding and event delivered within `cooldown_seconds` is recorded `suppressed`, not sent again. A retried send
waits the backoff (doubling from `backoff_seconds`, jittered, capped) or the receiver's Retry-After, whichever is
longer; after `max_attempts` it is `dead`, kept for `kamiyo alerts redrive`. One channel failing never delays
another: each due channel is sent to concurrently.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import datetime, timedelta, timezone

from sqlalchemy import and_, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from .. import log
from ..config import Settings, WebhookChannel
from ..findings import Severity
from ..metrics import DELIVERIES
from ..signals import OUTBOX_WRITTEN
from ..storage.schema import alert_state, deliveries, outbox
from ..storage.upsert import insert_new, upsert
from ..watchlists import store as watchlist_store
from ..watchlists import webhooks as key_webhooks
from ..watchlists.match import Matcher
from . import suppressions
from .channels import send_to
from .network import NetworkPolicy
from .outcome import Dead, Delivered, Outcome, Retry, backoff

PENDING, DELIVERED, DEAD, SUPPRESSED = "pending", "delivered", "dead", "suppressed"
FAN_OUT_BATCH = 500
SEND_BATCH = 200
IDLE_POLL = 1.0  # seconds between looks at the outbox when nobody signals a commit


_log = log.get("kamiyo.alerts")


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


def wants(channel, finding: dict) -> bool:
    """Whether a channel's filter takes this finding: at least its minimum severity, one of its kinds (if any)."""
    severity = Severity(finding["severity"])
    if severity.rank < Severity(channel.min_severity).rank:
        return False
    return not channel.kinds or finding["kind"] in channel.kinds


def _suppressed(rules, finding: dict) -> str | None:
    """The reason of the first rule that matches: the finding's fingerprint, or its kind and an address it is
    about or names."""
    evidence = finding.get("evidence") or {}
    named = {finding["subject"]} | {str(a.get("address", "")).lower() for a in evidence.get("addresses", ())
                                    if isinstance(a, dict)}
    for rule in rules:
        if rule.fingerprint == finding["id"] or (rule.kind == finding["kind"] and rule.address in named):
            return f"suppressed: {rule.reason}"
    return None


class _Bucket:
    def __init__(self, per_minute: float) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, per_minute / 60.0 * 10)  # up to ten seconds' worth at once
        self.tokens = self.capacity
        self.at = time.monotonic()

    def take(self) -> float:
        """0 when a token was taken, else the seconds until one is there."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class DeliveryWorker:
    def __init__(self, engine: AsyncEngine, settings: Settings, send=None, lineage=None) -> None:
        self.engine = engine
        self.lineage = lineage  # the daemon's, for watchlists' fork families; None: contracts matched directly
        self.alerts = settings.alerts
        self.channels = {c.name: c for c in settings.channels}
        self.hooks: dict[str, WebhookChannel] = {}  # API keys' own webhooks, by id: read again at every fan-out and send
        self._hooks_of: list[key_webhooks.KeyWebhook] = []
        self._owner_of: dict[str, str] = {}  # webhook id -> its key
        self.policy = NetworkPolicy.from_strings(settings.alerts.allow_networks)
        self.rules = list(settings.alerts.suppress)  # and, read at every fan-out, those added at run time
        self.buckets: dict[str, _Bucket] = {}
        self._send = send or self._send_to_channel

    async def _read_hooks(self, conn) -> None:
        self._hooks_of = await key_webhooks.load(conn)
        self.hooks = {hook.id: hook.channel() for hook in self._hooks_of}
        self._owner_of = {hook.id: hook.key_id for hook in self._hooks_of}

    def _bucket(self, name: str, channel) -> _Bucket:
        if name not in self.buckets:
            self.buckets[name] = _Bucket(channel.rate_per_minute)
        return self.buckets[name]

    async def step(self) -> int:
        """Fan out what is new, send what is due; the number of sends attempted."""
        await self.fan_out()
        return await self.send_due()

    async def fan_out(self) -> int:
        async with self.engine.begin() as conn:
            cursor = (await conn.execute(select(alert_state.c.value).where(alert_state.c.key == "fanned_out"))
                      ).scalar() or 0
            events = (await conn.execute(select(outbox).where(outbox.c.id > cursor).order_by(outbox.c.id)
                                         .limit(FAN_OUT_BATCH))).all()
            if not events:
                return 0
            now, rows = _now(), []
            await self._read_hooks(conn)
            stored = await suppressions.load(conn)
            self.rules = self.alerts.suppress + [s.rule for s in stored if s.owner is None]
            owned: dict[str, list] = {}  # a key's own rules, for its own webhooks only
            for s in stored:
                if s.owner is not None:
                    owned.setdefault(s.owner, []).append(s.rule)
            names: dict[str, dict[str, str]] = {}  # owner -> what its watchlists' channel names route to
            matcher = await Matcher.build(conn, await watchlist_store.load(conn), self.lineage,
                                          {(e.finding["chain_id"], e.finding["subject"]) for e in events})
            for event in events:
                silenced = self.silenced(event.finding)
                for name in sorted(self._targets(matcher, event.finding, names)):
                    hook = self._owner_of.get(name)
                    reason = silenced or (_suppressed(owned.get(hook, ()), event.finding) if hook else None)
                    cooling = reason is None and await self._cooling(conn, name, event, now)
                    reason = reason or ("the same event was delivered within the cooldown" if cooling else None)
                    rows.append({"outbox_id": event.id, "channel": name, "fingerprint": event.fingerprint,
                                 "event": event.event, "status": SUPPRESSED if reason else PENDING, "attempts": 0,
                                 "next_attempt_at": now, "last_error": reason, "created_at": now,
                                 "delivered_at": None})
            await insert_new(conn, deliveries, rows, keys=("outbox_id", "channel"))
            await upsert(conn, alert_state, [{"key": "fanned_out", "value": events[-1].id}], keys=("key",))
        for row in rows:
            if row["status"] == SUPPRESSED:
                DELIVERIES.labels(row["channel"], SUPPRESSED).inc()
        return len(rows)

    def silenced(self, finding: dict) -> str | None:
        """Why known noise is not sent on any channel (a suppression's reason, or the allowlist), or None."""
        if reason := _suppressed(self.rules, finding):
            return reason
        evidence = finding.get("evidence") or {}
        allowed = set(self.alerts.allowlist)
        if allowed:
            senders = {a["address"] for a in evidence.get("addresses", ())
                       if isinstance(a, dict) and a.get("role") == "tx_sender"}
            attackers = {label.get("entity") for label in finding.get("labels", ()) if label.get("label") == "attacker"}
            if senders & allowed or (attackers and attackers <= allowed):
                return "allowlisted: the transaction's sender or its only attacker is on [alerts] allowlist"
        return None

    def _targets(self, matcher: Matcher, finding: dict, names: dict[str, dict[str, str]]) -> set[str]:
        """The channels an event goes to: those taking every finding their filter wants, and those of the
        watchlists it concerns (each watchlist's own kinds and minimum severity) that its owner may name."""
        out = {name for name, channel in self.channels.items()
               if not channel.watchlists_only and wants(channel, finding)}
        for watchlist in matcher.watchlists_for(finding):
            if watchlist.wants(finding):
                if watchlist.owner not in names:
                    names[watchlist.owner] = key_webhooks.nameable(watchlist.owner, self.channels.values(),
                                                                   self._hooks_of)
                routes = names[watchlist.owner]
                out |= {routes[name] for name in watchlist.channels if name in routes}
        return out

    async def _cooling(self, conn, channel: str, event, now: datetime) -> bool:
        if not self.alerts.cooldown_seconds:
            return False
        recent = await conn.execute(select(func.count()).select_from(deliveries).where(and_(
            deliveries.c.channel == channel, deliveries.c.fingerprint == event.fingerprint,
            deliveries.c.event == event.event, deliveries.c.status == DELIVERED,
            deliveries.c.delivered_at >= now - timedelta(seconds=self.alerts.cooldown_seconds))))
        return recent.scalar() > 0

    async def _next_due(self) -> float:
        async with self.engine.connect() as conn:
            due = (await conn.execute(select(func.min(deliveries.c.next_attempt_at))
                                      .where(deliveries.c.status == PENDING))).scalar()
        return IDLE_POLL if due is None else max(0.0, (_utc(due) - _now()).total_seconds())

    async def send_due(self) -> int:
        async with self.engine.connect() as conn:
            due = (await conn.execute(
                select(deliveries, outbox.c.finding).join(outbox, outbox.c.id == deliveries.c.outbox_id)
                .where(and_(deliveries.c.status == PENDING, deliveries.c.next_attempt_at <= _now()))
                .order_by(deliveries.c.next_attempt_at, deliveries.c.id).limit(SEND_BATCH))).all()
            if any(row.channel.startswith(key_webhooks.ID_PREFIX) for row in due):  # as they are now
                await self._read_hooks(conn)
        by_channel: dict[str, list] = {}
        for row in due:
            by_channel.setdefault(row.channel, []).append(row)
        counts = await asyncio.gather(*(self._send_channel(name, rows) for name, rows in by_channel.items()))
        return sum(counts)

    async def _send_channel(self, name: str, rows: list) -> int:
        """One channel's due deliveries, in order; stops at the first that must wait (rate, or the receiver)."""
        channel = self.channels.get(name) or self.hooks.get(name)
        sent = 0
        for row in rows:
            if channel is None and name.startswith(key_webhooks.ID_PREFIX):  # it will not come back
                await self._record(row, Dead("the webhook was removed, or its API key revoked"))
                continue
            if channel is None:  # removed from the configuration: kept pending until it is back, or redriven
                return sent
            wait = self._bucket(name, channel).take()
            if wait:
                await self._postpone(row.id, wait)
                return sent
            outcome = await self._send(channel, row.event, row.finding)
            sent += 1
            await self._record(row, outcome)
            if isinstance(outcome, Retry):
                return sent  # the receiver is struggling: the rest of its queue waits too
        return sent

    async def _send_to_channel(self, channel, event: str, finding: dict) -> Outcome:
        return await send_to(channel, event, finding, self.policy, self.alerts.timeout_seconds)

    async def _postpone(self, delivery: int, seconds: float) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(update(deliveries).where(deliveries.c.id == delivery)
                               .values(next_attempt_at=_now() + timedelta(seconds=seconds)))

    async def _record(self, row, outcome: Outcome) -> None:
        attempts, now = row.attempts + 1, _now()
        values: dict = {"attempts": attempts}
        if isinstance(outcome, Delivered):
            values |= {"status": DELIVERED, "delivered_at": now, "last_error": None}
        elif isinstance(outcome, Dead) or attempts >= self.alerts.max_attempts:
            values |= {"status": DEAD, "last_error": outcome.error}
        else:
            delay = max(outcome.after or 0.0, backoff(attempts, self.alerts.backoff_seconds,
                                                      self.alerts.max_backoff_seconds))
            values |= {"next_attempt_at": now + timedelta(seconds=delay), "last_error": outcome.error}
        async with self.engine.begin() as conn:
            await conn.execute(update(deliveries).where(deliveries.c.id == row.id).values(**values))
        status = values.get("status", "retry")
        DELIVERIES.labels(row.channel, status).inc()
        event = {"delivered": "alert.delivered", "dead": "alert.dead_letter"}.get(status, "alert.retry")
        (_log.warning if status != DELIVERED else _log.info)(
            event, channel=row.channel, delivery=row.id, fingerprint=row.fingerprint, event_name=row.event,
            attempts=attempts, error=values.get("last_error"))


async def deliver_forever(settings: Settings, engine: AsyncEngine, stop: asyncio.Event, heartbeats=None,
                          lineage=None) -> None:
    """The worker inside `kamiyo run`, until `stop`: an error (the database busy, a bug) is logged and retried
    with a growing pause, and never ends the daemon; nothing is lost, since the tables hold every delivery."""
    worker, pause = DeliveryWorker(engine, settings, lineage=lineage), 1.0
    wake = OUTBOX_WRITTEN.listener()  # a commit that wrote outbox events: send at once, not at the next poll
    while not stop.is_set():
        try:
            while not stop.is_set():
                if heartbeats is not None:
                    heartbeats.beat("alerts")
                wake.clear()  # before the step: a commit during it must wake the next wait, not be forgotten
                await worker.step()
                pause = 1.0
                wait = min(IDLE_POLL, await worker._next_due())
                if wait > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(_either(stop, wake), wait)
        except Exception as exc:  # noqa: BLE001 - the worker outlives its errors; the rows keep the state
            _log.error("alerts.worker_error", error_type=type(exc).__name__, error=str(exc)[:500], retry_in=pause)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), pause)
            pause = min(60.0, pause * 2)
    if heartbeats is not None:
        heartbeats.retire("alerts")


async def _either(*events: asyncio.Event) -> None:
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
