"""Storage on a real SQLite database: migrations, WAL mode, and the atomic block commit the daemon relies on."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import select

from kamiyo.chains.blocks import BlockRef
from kamiyo.cli import main
from kamiyo.config import StorageSettings
from kamiyo.storage import schema
from kamiyo.storage.checkpoints import commit_block, load_checkpoint, recent_block
from kamiyo.storage.engine import create_engine
from kamiyo.storage.migrations import LATEST, SchemaTooNew, current_version, upgrade


def block(n: int, chain_id: int = 1) -> BlockRef:
    return BlockRef(chain_id, n, f"0x{n:064x}", f"0x{n - 1:064x}", 1_700_000_000 + n)


@pytest.fixture
async def engine(tmp_path):
    engine = create_engine(StorageSettings(url=f"sqlite:///{tmp_path / 'state' / 'kamiyo.db'}"))
    await upgrade(engine)
    yield engine
    await engine.dispose()


async def test_upgrade_creates_the_schema_once(engine, tmp_path):
    assert await current_version(engine) == LATEST
    assert await upgrade(engine) == []  # idempotent
    con = sqlite3.connect(tmp_path / "state" / "kamiyo.db")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"schema_migrations", "checkpoints", "blocks"} <= tables


async def test_a_database_from_a_newer_kamiyo_is_refused(engine):
    async with engine.begin() as conn:
        await conn.execute(schema.schema_migrations.insert().values(version=LATEST + 1, description="future"))
    with pytest.raises(SchemaTooNew):
        await upgrade(engine)


async def test_checkpoint_advances_with_the_blocks_work_in_one_transaction(engine):
    assert await load_checkpoint(engine, 1) is None
    await commit_block(engine, block(10))
    assert await load_checkpoint(engine, 1) == (10, block(10).hash)

    async def failing_work(conn):
        await conn.execute(schema.blocks.insert().values(chain_id=99, number=1, hash="0x1", parent_hash="0x0", timestamp=0))
        raise RuntimeError("the analyzer crashed half way")

    with pytest.raises(RuntimeError):
        await commit_block(engine, block(11), failing_work)
    assert await load_checkpoint(engine, 1) == (10, block(10).hash)  # nothing of block 11, not even its work
    async with engine.connect() as conn:
        assert (await conn.execute(select(schema.blocks).where(schema.blocks.c.chain_id == 99))).first() is None


async def test_replaying_a_block_is_harmless_and_chains_are_independent(engine):
    for n in (5, 6, 6):
        await commit_block(engine, block(n))
    await commit_block(engine, block(100, chain_id=56))
    assert await load_checkpoint(engine, 1) == (6, block(6).hash)
    assert await load_checkpoint(engine, 56) == (100, block(100, 56).hash)
    assert await recent_block(engine, 1, 5) == block(5)


async def test_only_the_reorg_window_of_blocks_is_kept(engine):
    for n in range(1, 21):
        await commit_block(engine, block(n), keep=8)
    assert await recent_block(engine, 1, 12) is None
    assert await recent_block(engine, 1, 13) == block(13)
    assert await recent_block(engine, 1, 20) == block(20)


def test_db_upgrade_command(tmp_path, capsys):
    config = tmp_path / "kamiyo.toml"
    config.write_text(f'[storage]\nurl = "sqlite:///{tmp_path / "db" / "k.db"}"\n')
    assert main(["db", "upgrade", "--config", str(config)]) == 0
    assert f"schema at version {LATEST}" in capsys.readouterr().out
    assert main(["db", "upgrade", "--config", str(config)]) == 0
    assert "already current" in capsys.readouterr().out
