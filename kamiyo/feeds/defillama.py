"""DeFiLlama's hack list → `Report`s. `GET {base}/hacks` answers one JSON array, one object per incident:

| field | as published | → Report |
| --- | --- | --- |
| `date` | unix seconds (the incident's day, midnight UTC) | `day` (UTC); part of `ref` |
| `name` | protocol name, e.g. "Balancer V2" | `protocol` |
| `classification`, `technique` | text, e.g. "Oracle Manipulation" / "Spot Price Manipulation" | same names |
| `amount` | USD lost, may be null | `loss_usd` |
| `chain` | list of chain names, may be null | `chains`, each through the chain registry, in order, once |
| `source` | a URL or "" | `references` (only an http(s) URL) |
| `defillamaId` | a string ("2611"); an integer is accepted | `ref` = f"{defillamaId or name}:{date}" |
| `returnedFunds` | USD returned, may be null, may exceed `amount` | `raw` only |
| `bridgeHack`, `targetType`, `parentProtocolId`, `language` | as named | `raw` only |

`raw` is the element exactly as parsed, fields this module does not know included. Every report is an incident.

All or nothing: the payload is refused whole (`FeedFormatError`, naming the record and field) when it is not JSON
(malformed, truncated, not UTF-8, numbers past a double, nested deeper than `MAX_DEPTH`), is not an array, has an
element that is not an object, or a record with a field of the wrong JSON type, a text past its length limit, no
`name`, or a `date` that is not unix seconds between 2009 and 2100 (milliseconds land here). The type is the
source's shape and a change to it must be seen, not papered over.
One field, the record kept: an `amount` that is negative or over $1 trillion is read as None (logged as
`feed.field_dropped`); a `source` that is not a URL gives no reference; blank chain names are skipped.
The payload's size is bounded by the fetcher (`max_bytes`), not here.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from .. import log
from ..chains.registry import resolve_chain
from .model import INCIDENT, FeedFormatError, Report
from .payload import describe, load_json, validated

_EARLIEST, _LATEST = 1230768000, 4102444800  # 2009-01-01 .. 2100-01-01 UTC
_MAX_LOSS = 1e12

_log = log.get("kamiyo.feeds.defillama")

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Text = Annotated[str, StringConstraints(max_length=200)]
Url = Annotated[str, StringConstraints(max_length=2048)]


class Hack(BaseModel):
    """One element of /hacks. Strict: "12" is not a number, true is not an id; unknown fields are kept."""

    model_config = ConfigDict(strict=True, extra="allow", allow_inf_nan=False, frozen=True)

    date: float
    name: Name
    classification: Text | None = None
    technique: Text | None = None
    amount: float | None = None
    chain: Annotated[list[Text], Field(max_length=100)] | None = None
    source: Url | None = None
    returnedFunds: float | None = None
    defillamaId: Any = None
    bridgeHack: bool | None = None
    targetType: Text | None = None
    parentProtocolId: Text | None = None
    language: Text | None = None

    @field_validator("date")
    @classmethod
    def _unix_seconds(cls, value: float) -> float:
        if not _EARLIEST <= value < _LATEST:
            raise ValueError("expected unix seconds between 2009 and 2100")
        return value

    @field_validator("defillamaId")
    @classmethod
    def _id(cls, value: Any) -> str | None:
        if value is None or (isinstance(value, int) and not isinstance(value, bool)):
            return None if value is None else str(value)
        if isinstance(value, str) and len(value) <= 200:
            return value.strip() or None
        raise ValueError("expected a string of at most 200 characters or an integer")


def parse(payload: bytes, source: str) -> list[Report]:
    data = load_json(payload, source, "the DeFiLlama hack list")
    if not isinstance(data, list):
        raise FeedFormatError(f"{source}: the DeFiLlama hack list must be a JSON array, got {describe(data)}",
                              source=source)
    return [_report(hack, item, source)
            for hack, item in validated(data, Hack, source, "hack", label_key="name")]


def _report(hack: Hack, raw: dict[str, Any], source: str) -> Report:
    seconds = int(hack.date)
    ref = f"{hack.defillamaId or hack.name}:{seconds}"
    return Report(
        source=source,
        ref=ref,
        protocol=hack.name,
        day=datetime.fromtimestamp(seconds, tz=timezone.utc).date(),
        kind=INCIDENT,
        chains=tuple(dict.fromkeys(resolve_chain(name.strip()) for name in hack.chain or () if name.strip())),
        loss_usd=_loss(hack.amount, source, ref),
        classification=hack.classification or None,
        technique=hack.technique or None,
        references=(hack.source.strip(),) if hack.source and _is_url(hack.source.strip()) else (),
        raw=raw,
    )


def _loss(amount: float | None, source: str, ref: str) -> float | None:
    if amount is None or 0 <= amount <= _MAX_LOSS:
        return amount
    _log.warning("feed.field_dropped", source=source, ref=ref, field="amount", value=amount)
    return None


def _is_url(text: str) -> bool:
    return text.startswith(("https://", "http://")) and " " not in text
