"""One pull of one feed: fetch (conditionally), parse all or nothing, store the records and the feed's state in one
transaction. A repeated pull changes nothing: a 304 or the same body stops before parsing, and records whose
content did not change are left as they are. A pull that added or changed records rebuilds the incidents in that
same transaction, so the incidents never disagree with the records committed beside them. A failure is stored as
the feed's health and logged; it never touches the records, and never stops another feed.

Every pull, from `kamiyo run` or `kamiyo feeds pull`, returns through `pull`, so the feed metrics (up, last
success, pulls by status, records) are set there and nowhere else; `show_stored_health` seeds them at start from
what an earlier run stored.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import aiohttp
from sqlalchemy import and_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from .. import log, metrics
from ..errors import KamiyoError
from ..storage.schema import feed_records, feed_state
from ..storage.upsert import insert_new, upsert
from .fetch import Fetched, fetch_url, read_path
from .incidents import rebuild_incidents
from .model import FeedFormatError, Report

_log = log.get("kamiyo.feeds")


@dataclass(slots=True)
class PullResult:
    source: str
    status: str  # "updated" | "unchanged" | "failed"
    records: int = 0  # in the payload
    new: int = 0
    changed: int = 0
    error: str | None = None


def _adapter(feed):
    """payload (bytes) -> reports, for this feed's type."""
    from . import defihacklabs, defillama, osv, rss

    if feed.type == "defillama":
        return lambda body: defillama.parse(body, feed.name)
    if feed.type == "rss":
        return lambda body: rss.parse(body, feed.name)
    if feed.type == "osv":
        return lambda body: osv.parse(body, feed.name)

    def dhl(body: bytes) -> list[Report]:
        reports = defihacklabs.parse_readme(body.decode("utf-8", errors="replace"), feed.name)
        if feed.poc_index:
            index = defihacklabs.parse_poc_index(read_path(Path(feed.poc_index), feed.max_bytes), feed.name)
            reports = defihacklabs.merge_readme_and_index(reports, index)
        return reports

    return dhl


async def _reports_from_checkout(feed) -> list[Report]:
    from . import defihacklabs

    return defihacklabs.read_checkout(Path(feed.path), feed.name, poc_index=Path(feed.poc_index) if feed.poc_index
                                      else None)


def record_row(report: Report, now: datetime) -> dict:
    fields = {
        "kind": report.kind, "protocol": report.protocol[:300], "day": report.day, "chains": list(report.chains),
        "loss_usd": report.loss_usd, "loss_text": report.loss_text, "classification": report.classification,
        "technique": report.technique, "addresses": [asdict(a) for a in report.addresses],
        "tx_hashes": list(report.tx_hashes), "references": list(report.references), "raw": report.raw,
    }
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()
    return {"source": report.source, "ref": report.ref[:500], **fields, "content_hash": "0x" + digest,
            "first_seen": now, "last_seen": now}


async def pull(feed, engine: AsyncEngine, session: aiohttp.ClientSession, *,
               source_types: Mapping[str, str] | None = None) -> PullResult:
    """`source_types` (feed name -> type, every configured feed) ranks sources when incidents are rebuilt; without
    it only this feed's type is known and other sources are ranked by their names."""
    now = datetime.now(timezone.utc)
    try:
        result = await _pull(feed, engine, session, source_types, now)
    except Exception:  # not a feed failure but ours (e.g. the database): still a failed pull, then raised
        _show(PullResult(feed.name, "failed"), now)
        raise
    _show(result, now)
    return result


def _show(result: PullResult, now: datetime) -> None:
    metrics.FEED_PULLS.labels(result.source, result.status).inc()
    metrics.FEED_UP.labels(result.source).set(0 if result.status == "failed" else 1)
    if result.status != "failed":  # a failure keeps the last success and the last payload's count
        metrics.FEED_LAST_SUCCESS.labels(result.source).set(now.timestamp())
        metrics.FEED_RECORDS.labels(result.source).set(result.records)


async def show_stored_health(engine: AsyncEngine, names: list[str]) -> None:
    """Seed the metrics of these feeds from their stored health, before this process pulls them: after a restart
    a healthy feed does not read as never having succeeded. A feed never pulled stays absent."""
    async with engine.connect() as conn:
        rows = (await conn.execute(select(feed_state).where(feed_state.c.source.in_(names)))).all()
    for row in rows:
        success, error = _utc(row.last_success), _utc(row.last_error_at)
        # a success does not clear last_error: the later of the two is how the last pull ended
        metrics.FEED_UP.labels(row.source).set(1 if success and (error is None or success >= error) else 0)
        if success is not None:
            metrics.FEED_LAST_SUCCESS.labels(row.source).set(success.timestamp())
            metrics.FEED_RECORDS.labels(row.source).set(row.items)


def _utc(moment: datetime | None) -> datetime | None:
    """SQLite gives the stored UTC times back without their zone."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=timezone.utc)


async def _pull(feed, engine: AsyncEngine, session: aiohttp.ClientSession, source_types: Mapping[str, str] | None,
                now: datetime) -> PullResult:
    async with engine.connect() as conn:
        state = (await conn.execute(select(feed_state).where(feed_state.c.source == feed.name))).first()
    try:
        fetched, body_hash = await _fetch(feed, session, state)
        same_body = body_hash is not None and state is not None and body_hash == state.body_hash
        if (fetched is not None and fetched.body is None) or same_body:
            await _store_state(engine, feed.name, now, success=True, fetched=fetched, body_hash=body_hash)
            _log.info("feed.unchanged", source=feed.name)
            return PullResult(feed.name, "unchanged", records=state.items if state else 0)
        reports = _adapter(feed)(fetched.body) if fetched is not None else await _reports_from_checkout(feed)
        types = source_types if source_types is not None else {feed.name: feed.type}
        result = await _store(engine, feed, reports, now, fetched, body_hash, types)
    except KamiyoError as exc:
        await _store_state(engine, feed.name, now, success=False, error=str(exc))
        _log.error("feed.failed", source=feed.name, error=str(exc))
        return PullResult(feed.name, "failed", error=str(exc))
    _log.info("feed.pulled", source=feed.name, records=result.records, new=result.new, changed=result.changed)
    return result


async def _fetch(feed, session, state) -> tuple[Fetched | None, str | None]:
    """(what the source answered, the body's hash); (None, None) for a checkout folder, read by its adapter."""
    if getattr(feed, "path", None):
        path = Path(feed.path)
        if path.is_dir():
            return None, None
        fetched = Fetched(read_path(path, feed.max_bytes))
    elif getattr(feed, "packages", None):
        fetched = await _osv_packages(feed, session)
    else:
        url = feed.url.replace("{api_key}", getattr(feed, "api_key", None) or "")
        fetched = await fetch_url(session, url, etag=state.etag if state else None,
                                  last_modified=state.last_modified if state else None,
                                  timeout=feed.timeout, max_bytes=feed.max_bytes)
    body_hash = None if fetched.body is None else "0x" + hashlib.sha256(fetched.body).hexdigest()
    return fetched, body_hash


async def _osv_packages(feed, session) -> Fetched:
    """One OSV query per package, their advisories together as one `{"vulns": [...]}` payload."""
    vulns = []
    for package in feed.packages:
        answer = await fetch_url(session, feed.url, etag=None, last_modified=None, timeout=feed.timeout,
                                 max_bytes=feed.max_bytes, method="POST",
                                 json_body={"package": {"ecosystem": package.ecosystem, "name": package.name}})
        try:
            vulns += json.loads(answer.body or b"{}").get("vulns") or []
        except (ValueError, AttributeError) as exc:
            raise FeedFormatError(f"{feed.name}: the OSV answer for {package.ecosystem}/{package.name} is not "
                                  "a query result") from exc
    return Fetched(json.dumps({"vulns": vulns}, sort_keys=True).encode())


async def _store(engine, feed, reports: list[Report], now, fetched: Fetched | None, body_hash,
                 source_types: Mapping[str, str]) -> PullResult:
    rows = {}
    for report in reports:  # a source listing one record twice keeps its last version
        rows[report.ref[:500]] = record_row(report, now)
    result = PullResult(feed.name, "updated", records=len(rows))
    async with engine.begin() as conn:
        known = dict((await conn.execute(select(feed_records.c.ref, feed_records.c.content_hash).where(
            feed_records.c.source == feed.name))).all())
        new = [row for ref, row in rows.items() if ref not in known]
        changed = [row for ref, row in rows.items() if ref in known and known[ref] != row["content_hash"]]
        result.new, result.changed = len(new), len(changed)  # the rest is unchanged and not rewritten
        await insert_new(conn, feed_records, new, keys=("source", "ref"))
        for row in changed:  # first seen stays what it was
            row.pop("first_seen")
            await conn.execute(update(feed_records).where(and_(
                feed_records.c.source == row["source"], feed_records.c.ref == row["ref"])).values(**row))
        await _write_state(conn, feed.name, now, success=True, fetched=fetched, body_hash=body_hash, items=len(rows))
        if result.new or result.changed:
            count = await rebuild_incidents(conn, source_types)
            _log.info("incidents.rebuilt", source=feed.name, incidents=count)
    if not result.new and not result.changed:
        result.status = "unchanged"
    return result


async def _store_state(engine, source: str, now, **kwargs) -> None:
    async with engine.begin() as conn:
        await _write_state(conn, source, now, **kwargs)


async def _write_state(conn, source: str, now, *, success: bool, fetched: Fetched | None = None,
                       body_hash: str | None = None, items: int | None = None, error: str | None = None) -> None:
    current = (await conn.execute(select(feed_state).where(and_(feed_state.c.source == source)))).first()
    row = dict(current._mapping) if current else {"source": source, "items": 0}
    row["updated_at"] = now
    if success:
        row["last_success"] = now
        if fetched is not None and fetched.body is not None:
            row.update(etag=fetched.etag, last_modified=fetched.last_modified, body_hash=body_hash)
        if items is not None:
            row["items"] = items
    else:
        row.update(last_error=error[:2000], last_error_at=now)
    await upsert(conn, feed_state, row, keys=("source",))
