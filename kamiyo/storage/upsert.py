"""INSERT … ON CONFLICT DO UPDATE for SQLite and PostgreSQL alike (both dialects spell it the same way)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection


def upsert(conn: AsyncConnection, table: Table, values: dict, keys: Iterable[str]):
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    keys = tuple(keys)
    statement = dialect.insert(table).values(**values)
    changes = {k: statement.excluded[k] for k in values if k not in keys}
    return statement.on_conflict_do_update(index_elements=list(keys), set_=changes) if changes else \
        statement.on_conflict_do_nothing(index_elements=list(keys))


def insert_new(conn: AsyncConnection, table: Table, values: dict, keys: Iterable[str]):
    """INSERT … ON CONFLICT DO NOTHING: the first writer of a natural key wins, later ones are no-ops."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).values(**values).on_conflict_do_nothing(index_elements=list(keys))
