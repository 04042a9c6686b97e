"""Query and path parameters, read strictly: an unknown parameter, one given twice, or a value out of range is a
400 that names it. Cursors are opaque to clients: base64url of a small JSON document that says which list it
pages and the sort key of the last item sent, so a page boundary survives rows arriving meanwhile (keyset
pagination, never offsets).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable
from datetime import date, datetime, timedelta, timezone

from aiohttp import web

from .errors import BadParameter

MAX_INT = 2**63 - 1  # what a BIGINT holds: larger numbers would fail in the database, not here
DEFAULT_LIMIT, MAX_LIMIT = 100, 500
MAX_CURSOR = 1000
_DECIMAL = re.compile(r"(0|[1-9][0-9]*)\Z")
ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}\Z")
# C0, DEL and C1: never useful in a name or filter, and PostgreSQL cannot store NUL. The OpenAPI patterns say the same.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def whole_number(name: str, text: str, minimum: int = 0, maximum: int = MAX_INT) -> int:
    if not (text.isascii() and _DECIMAL.match(text)) or len(text) > 20 or not minimum <= int(text) <= maximum:
        raise BadParameter(name, f"expected a whole number from {minimum} to {maximum}, got {text[:40]!r}")
    return int(text)


class Query:
    """The query string of one request, with the parameters its route takes."""

    def __init__(self, request: web.Request, allowed: Iterable[str]) -> None:
        self.values: dict[str, str] = {}
        allowed = set(allowed)
        for name, value in request.query.items():
            if name not in allowed:
                known = ", ".join(sorted(allowed)) or "none"
                raise BadParameter(name[:60], f"not a parameter of this route (it takes: {known})")
            if name in self.values:
                raise BadParameter(name, "given more than once")
            self.values[name] = value

    def text(self, name: str, *, max_length: int = 200, choices: Iterable[str] | None = None,
             default: str | None = None) -> str | None:
        value = self.values.get(name)
        if value is None:
            return default
        if choices is not None:
            options = tuple(choices)
            if value not in options:
                raise BadParameter(name, f"expected one of {', '.join(options)}, got {value[:40]!r}")
        elif not 0 < len(value) <= max_length or CONTROL.search(value):
            raise BadParameter(name, f"expected 1 to {max_length} characters, none of them a control character")
        return value

    def integer(self, name: str, *, minimum: int = 0, maximum: int = MAX_INT, default: int | None = None,
                required: bool = False) -> int | None:
        value = self.values.get(name)
        if value is None:
            if required:
                raise BadParameter(name, "required")
            return default
        return whole_number(name, value, minimum, maximum)

    def limit(self) -> int:
        return self.integer("limit", minimum=1, maximum=MAX_LIMIT, default=DEFAULT_LIMIT)

    def moment(self, name: str) -> datetime | None:
        """An RFC 3339 date-time, or a date (its midnight), as UTC."""
        value = self.values.get(name)
        return None if value is None else moment(name, value)

    def day(self, name: str) -> date | None:
        """An RFC 3339 date; a date-time is taken as its UTC day."""
        value = self.values.get(name)
        return None if value is None else moment(name, value).date()

    def cursor(self, kind: str, size: int) -> list | None:
        value = self.values.get("cursor")
        return None if value is None else decode_cursor(value, kind, size)


_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_TIME = re.compile(r"[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))\Z")
_EARLIEST = datetime.min.replace(tzinfo=timezone.utc)
_LATEST = datetime.max.replace(tzinfo=timezone.utc)


def moment(name: str, text: str) -> datetime:
    """RFC 3339 (what the OpenAPI formats `date-time` and `date` mean), read as UTC. A leap second is read as the
    end of the second before it; a moment outside what Python represents (year 0, or year 9999 moved by its
    offset) is the earliest or latest moment there is, which as a bound is what it means."""
    problem = f"expected an RFC 3339 date-time or date, e.g. 2024-05-01T12:00:00Z or 2024-05-01, got {text[:40]!r}"
    day = _DATE.match(text)
    clock = _TIME.match(text, day.end()) if day is not None and len(text) > 10 else None
    if day is None or (len(text) > 10 and clock is None):
        raise BadParameter(name, problem)
    year, month, mday = (int(part) for part in day.groups())
    hour = minute = second = micro = offset = 0
    if clock is not None:
        hour, minute, second = int(clock[1]), int(clock[2]), int(clock[3])
        micro = int((clock[4] or "0")[:6].ljust(6, "0"))
        if clock[6] is not None:
            off_hours, off_minutes = int(clock[7]), int(clock[8])
            if off_hours > 23 or off_minutes > 59:
                raise BadParameter(name, problem)
            offset = (off_hours * 60 + off_minutes) * (-1 if clock[6] == "-" else 1)
        if second == 60:
            second, micro = 59, 999_999
    try:
        if year == 0:
            date(2000, month, mday)  # the rest must still be a date (year 0 is a leap year, as 2000 is)
            return _EARLIEST
        local = datetime(year, month, mday, hour, minute, second, micro)
    except ValueError:
        raise BadParameter(name, problem) from None
    try:
        return (local - timedelta(minutes=offset)).replace(tzinfo=timezone.utc)
    except OverflowError:
        return _EARLIEST if offset > 0 else _LATEST


def encode_cursor(kind: str, key: list) -> str:
    raw = json.dumps({"v": 1, "list": kind, "after": key}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(text: str, kind: str, size: int) -> list:
    """The sort key a cursor carries; 400 for anything that is not a cursor of this list."""
    problem = "not a cursor this list gave out (pass next_cursor back as it was)"
    if len(text) > MAX_CURSOR or not text.isascii():
        raise BadParameter("cursor", problem)
    try:
        data = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (binascii.Error, ValueError):
        raise BadParameter("cursor", problem) from None
    if not isinstance(data, dict) or data.get("v") != 1 or data.get("list") != kind:
        raise BadParameter("cursor", problem)
    key = data.get("after")
    if not isinstance(key, list) or len(key) != size:
        raise BadParameter("cursor", problem)
    return key


def address(name: str, text: str) -> str:
    if not ADDRESS.match(text):
        raise BadParameter(name, f"expected an address, 0x and 40 hex digits, got {text[:60]!r}")
    return text.lower()  # stored addresses are lowercase
