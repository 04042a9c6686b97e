"""INSERT … ON CONFLICT for SQLite and PostgreSQL alike (both dialects spell it the same way).

Statements are built once per (dialect, table, keys, columns) and executed with parameter lists: building an
insert construct per row costs SQLAlchemy more than the database spends on the row (measured in catch-up)."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection


@functools.cache
def _statement(dialect_name: str, table: Table, keys: tuple[str, ...], columns: tuple[str, ...], update: bool):
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    statement = dialect.insert(table)
    changes = {c: statement.excluded[c] for c in columns if c not in keys}
    if update and changes:
        return statement.on_conflict_do_update(index_elements=list(keys), set_=changes)
    return statement.on_conflict_do_nothing(index_elements=list(keys))


async def _write(conn: AsyncConnection, table: Table, rows: Sequence[dict], keys: Iterable[str], update: bool) -> None:
    keys = tuple(keys)
    by_shape: dict[tuple[str, ...], list[dict]] = {}
    for row in rows:
        by_shape.setdefault(tuple(sorted(row)), []).append(row)
    for columns, same in by_shape.items():
        await conn.execute(_statement(conn.dialect.name, table, keys, columns, update), same)


async def upsert(conn: AsyncConnection, table: Table, rows: dict | Sequence[dict], keys: Iterable[str]) -> None:
    """Insert, or update the non-key columns of the row already there: replaying a write is harmless."""
    rows = [rows] if isinstance(rows, dict) else rows
    if rows:
        await _write(conn, table, rows, keys, update=True)


async def insert_new(conn: AsyncConnection, table: Table, rows: dict | Sequence[dict], keys: Iterable[str]) -> None:
    """INSERT … ON CONFLICT DO NOTHING: the first writer of a natural key wins, later ones are no-ops."""
    rows = [rows] if isinstance(rows, dict) else rows
    if rows:
        await _write(conn, table, rows, keys, update=False)
