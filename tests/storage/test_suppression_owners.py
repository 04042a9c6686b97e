"""Migration 14 gives a database whose suppressions table predates owners the column, keeping its rows as the
operator's (every channel)."""

from __future__ import annotations

import sqlite3

from kamiyo.alerts import suppressions
from kamiyo.config import StorageSettings
from kamiyo.storage.engine import create_engine
from kamiyo.storage.migrations import upgrade


async def test_an_older_suppressions_table_gets_owners_and_keeps_its_rows(tmp_path):
    db = tmp_path / "k.db"
    engine = create_engine(StorageSettings(url=f"sqlite:///{db}"))
    try:
        await upgrade(engine)
        with sqlite3.connect(db) as con:  # as version 11 made it
            con.execute("DROP TABLE suppressions")
            con.execute("CREATE TABLE suppressions (id VARCHAR(40) PRIMARY KEY, fingerprint VARCHAR(66), "
                        "kind VARCHAR(40), address VARCHAR(42), reason TEXT NOT NULL, created_at DATETIME NOT NULL)")
            con.execute("INSERT INTO suppressions VALUES ('sup_1', NULL, 'reentrancy', ?, 'a test', "
                        "'2026-12-01 00:00:00')", ("0x" + "11" * 20,))
            con.execute("DELETE FROM schema_migrations WHERE version = 14")
        assert [m.version for m in await upgrade(engine)] == [14]
        async with engine.connect() as conn:
            (kept,) = await suppressions.load(conn)
        assert (kept.id, kept.owner, kept.rule.kind, kept.rule.reason) == ("sup_1", None, "reentrancy", "a test")
    finally:
        await engine.dispose()
