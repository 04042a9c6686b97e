"""What one send attempt came to, as every channel reports it, and the retry schedule."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime


@dataclass(frozen=True, slots=True)
class Delivered:
    status: int | None = None


@dataclass(frozen=True, slots=True)
class Retry:
    error: str
    after: float | None = None  # seconds the receiver asked for (Retry-After), else the backoff decides


@dataclass(frozen=True, slots=True)
class Dead:
    error: str


Outcome = Delivered | Retry | Dead

MAX_RETRY_AFTER = 3600.0


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP date; None when absent or unreadable; capped at an hour."""
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return min(max(0.0, (moment - datetime.now(timezone.utc)).total_seconds()), MAX_RETRY_AFTER)


def backoff(attempts: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Delay before the next attempt after `attempts` failed ones: base × 2^(attempts − 1), capped, with full
    jitter in its upper half (so a crowd of retries spreads out but never comes back sooner than half the step)."""
    step = min(cap, base * 2 ** max(0, attempts - 1))
    return step / 2 + (rng or random).random() * step / 2
