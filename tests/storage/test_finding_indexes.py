"""Migration 13 gives an existing database the indexes the API's pages of findings seek through, and a database
made since (whose findings table has them from the start) is left as it is."""

from __future__ import annotations

import sqlite3

from kamiyo.config import StorageSettings
from kamiyo.storage.engine import create_engine
from kamiyo.storage.migrations import upgrade

PAGES = {"ix_findings_page", "ix_findings_kind_page", "ix_findings_chain_page"}


def indexes(db) -> set[str]:
    with sqlite3.connect(db) as con:
        return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'index'"
                                          " AND tbl_name = 'findings'")}


async def test_an_older_database_gets_the_page_indexes_and_the_planner_seeks_with_them(tmp_path):
    db = tmp_path / "k.db"
    engine = create_engine(StorageSettings(url=f"sqlite:///{db}"))
    try:
        await upgrade(engine)
        assert PAGES <= indexes(db)
        with sqlite3.connect(db) as con:  # as a database at version 12 was
            for name in PAGES:
                con.execute(f"DROP INDEX {name}")
            con.execute("DELETE FROM schema_migrations WHERE version = 13")
        assert [m.version for m in await upgrade(engine)] == [13]
        assert PAGES <= indexes(db)
        with sqlite3.connect(db) as con:
            plan = con.execute("EXPLAIN QUERY PLAN SELECT fingerprint FROM findings WHERE kind = 'x' "
                               "ORDER BY created_at, fingerprint LIMIT 51").fetchall()
        assert "ix_findings_kind_page" in str(plan) and "TEMP B-TREE" not in str(plan)  # a seek, not a sort
    finally:
        await engine.dispose()
