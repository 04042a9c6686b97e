"""Request quotas per key: a day's allowance shared through the database, and a per-minute bucket per process.

The day quota is what a tier sells (the free tier's 100 requests a day), so it must hold across every process
serving the API on one database (`kamiyo run` and `kamiyo api`) and across restarts. Each process counts in
memory and, every `SYNC_SECONDS`, adds its new requests to `api_usage` (an upsert that increments) and reads
back every process's total. A key seen for the first time today is read before its first request is admitted.
So the day's count lags other processes by at most one sync: together, N processes can overshoot a quota by
what they admit in one sync interval, never more; a crash loses at most the last interval's count.

The minute quota protects the server, not the allowance: a token bucket per process (a key may spend its whole
minute at once, then one request per 60/N seconds), not shared, forgotten at a restart. Memory is two small
entries per key that has called today.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import and_, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from .. import log
from ..storage.schema import api_usage
from .keys import ApiKey

DAY_SECONDS = 24 * 3600
SYNC_SECONDS = 1.0
KEEP_DAYS = 2  # today and yesterday: a day's row is pruned after that
_log = log.get("kamiyo.api")


@dataclass(frozen=True, slots=True)
class Refusal:
    window: str  # "minute" | "day"
    limit: int
    retry_after: float  # seconds


@dataclass(slots=True)
class _Today:
    day: int
    stored: int = 0  # every process's requests, as the database last said (ours that were flushed included)
    pending: int = 0  # ours, not yet added to the database
    read: bool = False


def _adding(dialect_name: str):
    """INSERT a day's count, or add it to the count stored (both dialects spell it the same)."""
    insert = (postgresql if dialect_name == "postgresql" else sqlite).insert(api_usage)
    return insert.on_conflict_do_update(index_elements=["key_id", "day"],
                                        set_={"requests": api_usage.c.requests + insert.excluded.requests})


class Limiter:
    """Admits or refuses each request of a key. Without an engine, the day's count is this process's only (for
    tests of the arithmetic); with one, `sync_forever` must run beside the server."""

    def __init__(self, clock: Callable[[], float], engine: AsyncEngine | None = None) -> None:
        self.clock = clock
        self.engine = engine
        self._buckets: dict[str, tuple[float, float]] = {}  # key id -> (tokens, when they were counted)
        self._days: dict[str, _Today] = {}
        self._pruned_day = -1

    async def admit(self, key: ApiKey) -> Refusal | None:
        """Count one request, or say why not and for how long (nothing is counted then)."""
        now, quotas = self.clock(), key.quotas
        day = int(now // DAY_SECONDS)
        today = None
        if quotas.requests_per_day is not None:
            today = await self._today(key.id, day)
            if today.stored + today.pending >= quotas.requests_per_day:
                return Refusal("day", quotas.requests_per_day, DAY_SECONDS - now % DAY_SECONDS)
        per_minute = quotas.requests_per_minute
        if per_minute is not None:
            rate = per_minute / 60.0
            tokens, then = self._buckets.get(key.id, (float(per_minute), now))
            tokens = min(float(per_minute), tokens + max(0.0, now - then) * rate)  # a clock stepped back adds none
            if tokens < 1.0:
                return Refusal("minute", per_minute, (1.0 - tokens) / rate)
            self._buckets[key.id] = (tokens - 1.0, now)
        if today is not None:
            today.pending += 1
        return None

    async def _today(self, key_id: str, day: int) -> _Today:
        today = self._days.get(key_id)
        if today is None or today.day != day:
            today = self._days[key_id] = _Today(day)
        if not today.read and self.engine is not None:
            async with self.engine.connect() as conn:
                stored = (await conn.execute(select(api_usage.c.requests).where(and_(
                    api_usage.c.key_id == key_id, api_usage.c.day == day)))).scalar()
            today.stored, today.read = max(today.stored, stored or 0), True
        return today

    async def sync(self) -> None:
        """Add this process's new requests to the database and read back every process's totals for today."""
        if self.engine is None:
            return
        day = int(self.clock() // DAY_SECONDS)
        self._days = {k: t for k, t in self._days.items() if t.day == day}  # yesterday's are done with
        counted = {k: t.pending for k, t in self._days.items() if t.pending}
        async with self.engine.begin() as conn:
            if counted:
                await conn.execute(_adding(conn.dialect.name),
                                   [{"key_id": k, "day": day, "requests": n} for k, n in counted.items()])
            totals = {}
            if self._days:
                rows = await conn.execute(select(api_usage.c.key_id, api_usage.c.requests).where(and_(
                    api_usage.c.day == day, api_usage.c.key_id.in_(list(self._days)))))
                totals = dict(rows.all())
            if self._pruned_day != day:
                await conn.execute(delete(api_usage).where(api_usage.c.day <= day - KEEP_DAYS))
                self._pruned_day = day
        for key_id, today in self._days.items():  # requests admitted while this ran stay pending for the next
            today.pending -= counted.get(key_id, 0)
            today.stored, today.read = totals.get(key_id, today.stored), True

    async def sync_forever(self, _app=None):
        """An aiohttp cleanup context: sync every SYNC_SECONDS while the server runs, and once more as it stops.
        A failed sync (the database busy) keeps the counts for the next one."""
        async def loop() -> None:
            while True:
                await asyncio.sleep(SYNC_SECONDS)
                await self._sync_logged()

        task = asyncio.create_task(loop(), name="kamiyo-api-quota-sync")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await self._sync_logged()

    async def _sync_logged(self) -> None:
        try:
            await self.sync()
        except Exception as exc:  # noqa: BLE001 - counts stay pending; a quota is never the reason to stop serving
            _log.warning("api.quota_sync_failed", error_type=type(exc).__name__, error=str(exc)[:300])
