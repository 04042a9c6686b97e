"""Versioned schema migrations: an ordered list, each applied once in its own transaction and recorded.

`kamiyo db upgrade` and the daemon's start both call `upgrade`; a database newer than this code is refused
rather than written to.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, inspect, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from ..errors import KamiyoError
from . import schema


class SchemaTooNew(KamiyoError):
    """The database was upgraded by a newer Kamiyo; this one does not know its tables."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    apply: Callable[[Connection], None]


def _initial(conn: Connection) -> None:
    for table in (schema.checkpoints, schema.blocks):
        table.create(conn)


def _deployments(conn: Connection) -> None:
    schema.deployments.create(conn)


def _lineage(conn: Connection) -> None:
    # version 2 created `deployments` from the current table definition: add only what a version-2 table lacks
    have = {c["name"] for c in inspect(conn).get_columns(schema.deployments.name)}
    for column in ("origin", "block_timestamp"):
        if column not in have:
            kind = schema.deployments.c[column].type.compile(conn.dialect)
            conn.execute(text(f"ALTER TABLE deployments ADD COLUMN {column} {kind}"))
    conn.execute(update(schema.deployments).where(schema.deployments.c.origin.is_(None))
                 .values(origin=schema.deployments.c.creator))
    for table in (schema.code_classes, schema.class_links, schema.known_code, schema.proxy_upgrades,
                  schema.findings):
        table.create(conn)


def _feeds(conn: Connection) -> None:
    for table in (schema.feed_records, schema.feed_state):
        table.create(conn)


def _incidents(conn: Connection) -> None:
    # filled from the records already stored: otherwise a database upgraded from version 4 would show no
    # incidents until some feed changed. No configuration here, so sources are ranked by name until the next
    # pull that changes records rebuilds the table with the feeds' types.
    from ..feeds.incidents import rebuild_incidents_sync  # feeds imports storage: resolved at call time

    schema.incidents.create(conn)
    rebuild_incidents_sync(conn)


def _exploited(conn: Connection) -> None:
    schema.exploited_code.create(conn)


def _advisories(conn: Connection) -> None:
    # version 5 created `incidents` from the current definition: add the column only where a version-5 table lacks it
    if "advisories" not in {c["name"] for c in inspect(conn).get_columns("incidents")}:
        kind = schema.incidents.c.advisories.type.compile(conn.dialect)
        conn.execute(text(f"ALTER TABLE incidents ADD COLUMN advisories {kind}"))
    from ..feeds.incidents import rebuild_incidents_sync

    rebuild_incidents_sync(conn)


def _outbox(conn: Connection) -> None:
    for table in (schema.outbox, schema.deliveries, schema.alert_state):
        table.create(conn)


def _watchlists(conn: Connection) -> None:
    for table in (schema.api_keys, schema.watchlists, schema.watchlist_entries):
        table.create(conn)


def _key_webhooks(conn: Connection) -> None:
    schema.key_webhooks.create(conn)


def _suppressions(conn: Connection) -> None:
    schema.suppressions.create(conn)


def _api_usage(conn: Connection) -> None:
    schema.api_usage.create(conn)


def _finding_pages(conn: Connection) -> None:
    # version 3 created `findings` from the current definition: a database made since has these already
    present = {index["name"] for index in inspect(conn).get_indexes("findings")}
    for index in schema.findings.indexes:
        if index.name not in present:
            index.create(conn)
    conn.execute(text("ANALYZE findings"))  # the planner's statistics, so it picks them


def _suppression_owners(conn: Connection) -> None:
    # version 11 created `suppressions` from the current definition: add the column only where it lacks it
    if "owner" not in {c["name"] for c in inspect(conn).get_columns("suppressions")}:
        kind = schema.suppressions.c.owner.type.compile(conn.dialect)
        conn.execute(text(f"ALTER TABLE suppressions ADD COLUMN owner {kind}"))
        for index in schema.suppressions.indexes:  # the owner's, the table's only one
            index.create(conn)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "checkpoints and recent blocks per chain", _initial),
    Migration(2, "deployments", _deployments),
    Migration(3, "code classes, links, known code, proxy upgrades, findings", _lineage),
    Migration(4, "feed records and feed state", _feeds),
    Migration(5, "incidents merged from feed records", _incidents),
    Migration(6, "code of exploited contracts", _exploited),
    Migration(7, "advisories related to incidents", _advisories),
    Migration(8, "alert outbox, deliveries per channel", _outbox),
    Migration(9, "API keys and watchlists", _watchlists),
    Migration(10, "webhooks registered by API keys", _key_webhooks),
    Migration(11, "suppressions added at run time", _suppressions),
    Migration(12, "API requests per key and day", _api_usage),
    Migration(13, "indexes for the API's pages of findings", _finding_pages),
    Migration(14, "suppressions owned by API keys", _suppression_owners),

)
LATEST = MIGRATIONS[-1].version


def _applied(conn: Connection) -> set[int]:
    if not inspect(conn).has_table(schema.schema_migrations.name):
        schema.schema_migrations.create(conn)
        return set()
    return set(conn.execute(select(schema.schema_migrations.c.version)).scalars())


async def upgrade(engine: AsyncEngine) -> list[Migration]:
    """Apply every pending migration; returns those applied (empty when the schema was current)."""
    async with engine.begin() as conn:
        applied = await conn.run_sync(_applied)
    newer = {v for v in applied if v > LATEST}
    if newer:
        raise SchemaTooNew(f"the database has schema version {max(newer)}; this Kamiyo knows up to {LATEST}")
    done = []
    for migration in MIGRATIONS:
        if migration.version in applied:
            continue
        async with engine.begin() as conn:  # one transaction per migration: a failure leaves the previous state
            await conn.run_sync(migration.apply)
            await conn.execute(
                schema.schema_migrations.insert().values(version=migration.version, description=migration.description)
            )
        done.append(migration)
    return done


async def current_version(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        applied = await conn.run_sync(_applied)
        await conn.commit()
    return max(applied, default=0)
