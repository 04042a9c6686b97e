"""OSV 1.x advisories (GitHub Advisory Database, osv.dev) → `Report`s of kind ADVISORY.

A payload is one record, a JSON array of records, or the `{"vulns": [...]}` answer of osv.dev's query API (whose
`{}` means "none"). A record, and what is taken from it:

  id                          `ref` ("GHSA-4j93-fm92-rp4m")
  affected[].package          `protocol`: "name (ecosystem)" for each distinct package, joined by ", "; without
                              packages the repos of GIT ranges; without either, the id
  published (RFC 3339)        `day` (UTC)
  references[].url            `references`, in order, once
  summary, details, the urls  every 0x-address (40 hex digits) as RoleAddress("other", None, …), every 0x-hash
                              (64 hex digits) in `tx_hashes`
  aliases, modified, …        `raw` only (the record as parsed, kept whole)

An advisory has no chain and no loss; a withdrawn one is kept (`raw["withdrawn"]` says so) since the source still
lists it.

All or nothing: the payload is refused whole (`FeedFormatError`, naming the record and field) when it is not JSON
(see `defillama.load_json`), is none of the three shapes, holds an element that is not an object, or a record
whose `schema_version` is not 1.x, whose `id` is missing or not a short token, or with a field of the wrong JSON
type or past its length limit. One field, the record kept: a `published` that is not RFC 3339 gives `day` None
(logged as `feed.field_dropped`).
"""

from __future__ import annotations

import re
from datetime import date, datetime, timezone
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from .. import log
from .model import ADVISORY, FeedFormatError, Report, RoleAddress
from .payload import ADDRESS, TX_HASH, describe, load_json, validated

_log = log.get("kamiyo.feeds.osv")


Id = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")]
Text = Annotated[str, StringConstraints(max_length=500)]
Url = Annotated[str, StringConstraints(max_length=2048)]
_FRACTION = re.compile(r"(\.\d{6})\d+")  # nanoseconds (some OSV writers) are more than datetime holds
_Strict = ConfigDict(strict=True, extra="allow", allow_inf_nan=False, frozen=True)


class Package(BaseModel):
    model_config = _Strict
    ecosystem: Text | None = None
    name: Text | None = None


class Range(BaseModel):
    model_config = _Strict
    type: Text | None = None
    repo: Url | None = None


class Affected(BaseModel):
    model_config = _Strict
    package: Package | None = None
    ranges: Annotated[list[Range], Field(max_length=1000)] | None = None


class Reference(BaseModel):
    model_config = _Strict
    type: Text | None = None
    url: Url


class Vuln(BaseModel):
    """One OSV record. Strict types; fields of later 1.x versions are kept in raw."""

    model_config = _Strict

    schema_version: Text | None = None
    id: Id
    modified: Text | None = None
    published: Text | None = None
    withdrawn: Text | None = None
    aliases: Annotated[list[Text], Field(max_length=1000)] | None = None
    related: Annotated[list[Text], Field(max_length=1000)] | None = None
    summary: Annotated[str, StringConstraints(max_length=5_000)] | None = None
    details: Annotated[str, StringConstraints(max_length=1_000_000)] | None = None
    affected: Annotated[list[Affected], Field(max_length=10_000)] | None = None
    references: Annotated[list[Reference], Field(max_length=10_000)] | None = None

    @field_validator("schema_version")
    @classmethod
    def _one_x(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"1(\.\d+){0,2}", value):
            raise ValueError("this reader knows OSV schema 1.x only")
        return value


def parse(payload: bytes, source: str) -> list[Report]:
    records = _records(load_json(payload, source, "the OSV payload"), source)
    return [_report(vuln, item, source)
            for vuln, item in validated(records, Vuln, source, "OSV record", label_key="id")]


def _records(data: Any, source: str) -> list[Any]:
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        if "id" in data:
            return [data]
        if "vulns" in data:
            if not isinstance(data["vulns"], list):
                raise FeedFormatError(f"{source}: OSV \"vulns\" must be an array, got {describe(data['vulns'])}",
                                      source=source)
            return data["vulns"]
        if not data:
            return []
    raise FeedFormatError(f"{source}: expected an OSV record, an array of records or {{\"vulns\": [...]}}, "
                          f"got {describe(data)}", source=source)


def _report(vuln: Vuln, raw: dict[str, Any], source: str) -> Report:
    urls = tuple(dict.fromkeys(ref.url.strip() for ref in vuln.references or () if ref.url.strip()))
    text = "\n".join([vuln.summary or "", vuln.details or "", *urls])
    return Report(
        source=source,
        ref=vuln.id,
        protocol=_protocol(vuln),
        day=_day(vuln.published, source, vuln.id),
        kind=ADVISORY,
        addresses=tuple(RoleAddress("other", None, address)
                        for address in dict.fromkeys(m.group(0).lower() for m in ADDRESS.finditer(text))),
        tx_hashes=tuple(dict.fromkeys(m.group(0).lower() for m in TX_HASH.finditer(text))),
        references=urls,
        raw=raw,
    )


def _protocol(vuln: Vuln) -> str:
    packages, repos = {}, {}
    for affected in vuln.affected or ():
        package = affected.package
        if package is not None and package.name and package.name.strip():
            name = package.name.strip()
            packages[f"{name} ({package.ecosystem.strip()})" if package.ecosystem else name] = None
        for span in affected.ranges or ():
            if span.type == "GIT" and span.repo:
                repos[span.repo.strip()] = None
    return ", ".join(packages or repos) or vuln.id


def _day(published: str | None, source: str, ref: str) -> date | None:
    if published is None:
        return None
    try:
        moment = datetime.fromisoformat(_FRACTION.sub(r"\1", published.strip()))
    except ValueError:
        _log.warning("feed.field_dropped", source=source, ref=ref, field="published", value=published[:80])
        return None
    if moment.tzinfo is None:  # RFC 3339 requires an offset; OSV's own writers always give "Z"
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).date()
