"""Request quotas per key, counted in this process's memory.

A restart forgets the counts, and two processes serving the same keys (`kamiyo run` and `kamiyo api`) each allow
the full quota. That is the first version's trade-off: no write per request, so the read-only API stays
read-only, and no shared store to run. The minute quota is a token bucket (a key may spend its whole minute at
once, then one request per 60/N seconds); the day quota is a count per UTC day. Memory is two small entries per
key that has called.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .keys import ApiKey

DAY_SECONDS = 24 * 3600


@dataclass(frozen=True, slots=True)
class Refusal:
    window: str  # "minute" | "day"
    limit: int
    retry_after: float  # seconds


class Limiter:
    """Per key: a token bucket holding up to a minute's requests, and a count of today's (UTC) requests."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key id -> (tokens, when they were counted)
        self._days: dict[str, tuple[int, int]] = {}  # key id -> (UTC day number, requests on it)

    def admit(self, key: ApiKey) -> Refusal | None:
        """Count one request, or say why not and for how long (nothing is counted then)."""
        now, quotas = self.clock(), key.quotas
        day = int(now // DAY_SECONDS)
        seen_day, used = self._days.get(key.id, (day, 0))
        used = used if seen_day == day else 0
        if quotas.requests_per_day is not None and used >= quotas.requests_per_day:
            return Refusal("day", quotas.requests_per_day, DAY_SECONDS - now % DAY_SECONDS)
        per_minute = quotas.requests_per_minute
        if per_minute is not None:
            rate = per_minute / 60.0
            tokens, then = self._buckets.get(key.id, (float(per_minute), now))
            tokens = min(float(per_minute), tokens + max(0.0, now - then) * rate)  # a clock stepped back adds none
            if tokens < 1.0:
                return Refusal("minute", per_minute, (1.0 - tokens) / rate)
            self._buckets[key.id] = (tokens - 1.0, now)
        self._days[key.id] = (day, used + 1)
        return None
