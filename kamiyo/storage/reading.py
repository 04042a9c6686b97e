"""The database as the read-only commands see it: opened only if it exists at this schema, families rebuilt
without what only the daemon needs, and each deployment resolved to the class whose family it counts in.

Nothing here writes: a read command must never create a database, migrate one, or take the daemon's lock. A
database that is missing, empty or at another schema version is refused with one line that says what to run.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TypeVar

from sqlalchemy import and_, inspect, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from ..analyzers.bytecode.classify import PROXY_KINDS
from ..analyzers.bytecode.lineage import ClassInfo, Lineage
from ..analyzers.bytecode.similarity import Link
from ..config import StorageSettings
from ..errors import KamiyoError
from .engine import create_engine
from .migrations import LATEST, SchemaTooNew
from .schema import class_links, code_classes, deployments, schema_migrations

CHUNK = 500  # values per IN (…): far below SQLite's and PostgreSQL's bound-parameter limits
T = TypeVar("T")


class DatabaseUnavailable(KamiyoError):
    """The database cannot be read: it is missing, holds no Kamiyo schema, or does not answer."""


class DatabaseMissing(DatabaseUnavailable, FileNotFoundError):
    """The configured SQLite file does not exist. A read command never creates it."""


class SchemaNotCurrent(DatabaseUnavailable):
    """The database holds no Kamiyo schema, or an older one than this code reads."""


def _sqlite_file(storage: StorageSettings) -> Path | None:
    url = make_url(storage.async_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


def _versions(conn) -> set[int]:
    if not inspect(conn).has_table(schema_migrations.name):
        return set()
    return set(conn.execute(select(schema_migrations.c.version)).scalars())


async def open_for_reading(storage: StorageSettings) -> AsyncEngine:
    """An engine on the configured database, once it is known to hold this Kamiyo's schema."""
    path = _sqlite_file(storage)
    if path is not None and not path.is_file():  # checked first: create_engine would make the parent folder
        raise DatabaseMissing(f"{path}: no database here (run `kamiyo db upgrade` or start the daemon first)",
                              path=str(path))
    engine = create_engine(storage)
    try:
        async with engine.connect() as conn:
            applied = await conn.run_sync(_versions)
    except SQLAlchemyError as exc:
        await engine.dispose()
        reason = getattr(exc, "orig", None) or exc
        raise DatabaseUnavailable(f"cannot read the database: {reason}") from exc
    version = max(applied, default=0)
    problem = None
    if version == 0:
        problem = SchemaNotCurrent("the database holds no Kamiyo schema (run `kamiyo db upgrade` first)")
    elif version > LATEST:
        problem = SchemaTooNew(f"the database has schema version {version}; this Kamiyo knows up to {LATEST}")
    elif version < LATEST:
        problem = SchemaNotCurrent(f"the database has schema version {version}, this Kamiyo reads version {LATEST} "
                                   "(run `kamiyo db upgrade`)")
    if problem is not None:
        await engine.dispose()
        raise problem
    return engine


async def load_families(engine: AsyncEngine) -> Lineage:
    """The stored families, for readers: classes replayed in admission order with their stored links, as
    `storage.lineage.load_lineage` does, but without sketches, index or origins. A reader asks only `family`,
    `members`, `links_of` and `classes[key].kind`, and a million sketches would cost it a gigabyte.

    Every `ClassInfo.sketch` is None here: tell proxies by `kind`, never by a missing sketch.
    """
    lineage = Lineage(with_index=False)
    columns = [c for c in code_classes.c if c.name != "sketch"]
    async with engine.connect() as conn:
        by_newer: dict[str, list[Link]] = {}
        for r in await conn.execute(select(class_links)):  # the same order load_lineage replays them in
            by_newer.setdefault(r.a, []).append(Link(r.a, r.b, r.relation, r.similarity, dict(r.evidence)))
        for row in await conn.execute(select(*columns).order_by(code_classes.c.seq)):
            info = ClassInfo(row.skeleton_hash, row.kind, row.size, None, tuple(row.selectors), tuple(row.topics),
                             row.first_chain_id, row.first_address, row.label)
            lineage.restore(info, by_newer.get(row.skeleton_hash, []))
    return lineage


_IMPL = deployments.alias("impl")


def resolved_deployments():
    """SELECT deployments with `runs_class`: for a proxy whose implementation is a stored deployment on the same
    chain, that deployment's class, else NULL. Filter on `deployments.c` or `implementation_class()`."""
    delegates = and_(deployments.c.kind.in_(sorted(PROXY_KINDS)), _IMPL.c.chain_id == deployments.c.chain_id,
                     _IMPL.c.address == deployments.c.implementation)
    return (select(deployments, _IMPL.c.skeleton_hash.label("runs_class"))
            .select_from(deployments.outerjoin(_IMPL, delegates)))


def implementation_class():
    """The `runs_class` column of `resolved_deployments()`, to filter proxies by the code they run."""
    return _IMPL.c.skeleton_hash


def family_class(row) -> str:
    """The class whose family a deployment counts in: for a proxy, the class of the implementation it runs when
    that is a deployment on its chain (as the daemon decides), else its own class."""
    return row.runs_class or row.skeleton_hash


def chunks(values: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]
