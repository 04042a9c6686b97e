"""storage.engine.reads: one synchronous function per read, over a connection that cannot write; inline on the
event loop while it is short, in a thread once it outgrows its budget or meets a lock, never holding the loop
for a lock; made per engine and closed with it."""

from __future__ import annotations

import asyncio
import sqlite3
import threading

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from kamiyo.config import StorageSettings
from kamiyo.storage.engine import EngineReads, SqliteReads, create_engine, reads

COUNT = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < :upto) SELECT count(*) FROM n"


def make_db(path) -> None:
    with sqlite3.connect(path) as con:
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("CREATE TABLE t (x INTEGER)")
        con.execute("INSERT INTO t VALUES (1)")
    con.close()


@pytest.fixture
async def engine(tmp_path):
    make_db(tmp_path / "r.db")
    engine = create_engine(StorageSettings(url=f"sqlite:///{tmp_path / 'r.db'}"))
    yield engine
    await engine.dispose()


def values(conn) -> list[int]:
    return [x for (x,) in conn.execute(text("SELECT x FROM t ORDER BY x"))]


def counted(conn, upto: int, threads: list[str]) -> int:
    threads.append(threading.current_thread().name)
    return conn.execute(text(COUNT), {"upto": upto}).scalar()


async def test_a_read_sees_each_commit_made_before_it_and_cannot_write(engine):
    assert isinstance(reads(engine), SqliteReads)
    assert await reads(engine).run(values) == [1]
    async with engine.begin() as conn:  # another writer, as the daemon is to `kamiyo api`
        await conn.execute(text("INSERT INTO t VALUES (2)"))
    assert await reads(engine).run(values) == [1, 2]
    with pytest.raises(OperationalError, match="readonly"):
        await reads(engine).run(lambda conn: conn.execute(text("INSERT INTO t VALUES (3)")))
    assert await reads(engine).run(values) == [1, 2]


async def test_a_short_read_runs_inline_and_a_long_one_is_run_again_in_a_thread(engine):
    threads: list[str] = []
    assert await reads(engine).run(counted, 10, threads) == 10
    assert threads == [threading.current_thread().name]
    threads.clear()
    assert await reads(engine).run(counted, 200_000, threads) == 200_000  # far past the inline budget
    assert threads[0] == threading.current_thread().name and threads[1].startswith("kamiyo-reads")
    assert len(threads) == 2


async def test_a_locked_database_is_waited_for_in_a_thread_while_the_loop_goes_on(tmp_path):
    db = tmp_path / "r.db"
    make_db(db)
    locker = sqlite3.connect(db, isolation_level=None)  # holds the database until it is closed
    locker.execute("PRAGMA locking_mode=EXCLUSIVE")
    locker.execute("BEGIN EXCLUSIVE")
    engine = create_engine(StorageSettings(url=f"sqlite:///{db}"))
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    ticker = asyncio.create_task(tick())
    asyncio.get_running_loop().call_later(0.3, locker.close)
    try:
        assert await reads(engine).run(values) == [1]
        assert ticks >= 10  # the loop ran on for the 0.3 s the read waited
    finally:
        ticker.cancel()
        locker.close()
        await engine.dispose()


async def test_disposing_the_engine_closes_its_reads_and_a_later_read_makes_them_anew(engine):
    first = reads(engine)
    assert await first.run(values) == [1]
    await engine.dispose()
    again = reads(engine)
    assert again is not first and await again.run(values) == [1]
    with pytest.raises(RuntimeError):  # the first one's threads are gone
        await first.run(counted, 200_000, [])


async def test_an_in_memory_database_is_read_through_the_engine_itself():
    engine = create_engine(StorageSettings(url="sqlite:///:memory:"))
    try:
        assert isinstance(reads(engine), EngineReads)
        assert await reads(engine).run(lambda conn: conn.execute(text("SELECT 41 + 1")).scalar()) == 42
    finally:
        await engine.dispose()
