"""The database engine, tuned per backend, and the read path the API answers queries through.

SQLite runs in WAL mode: readers never block the writer, and a commit survives the process being killed
(synchronous=NORMAL: durable across crashes, not across power loss).

`reads(engine).run(work, *args)` calls `work(connection, *args)`, synchronous, on a connection to `engine`'s
database that refuses writes, and hands back what it returned: one step for the event loop however many
statements and rows `work` goes through. Over aiosqlite every cursor operation is a trip to the connection's
thread and back (about ten per API request, each a wake-up, a future and a fight for the GIL); that was where a
query request spent its time. Over anything but a SQLite file (asyncpg needs no thread) it is `run_sync` on the
engine itself.
"""

from __future__ import annotations

import asyncio
import sqlite3
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol, TypeVar

from sqlalchemy import Engine, event
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from ..config import StorageSettings

BUSY_TIMEOUT_MS = 10_000
PROGRESS_STEPS = 1_000  # SQLite virtual-machine instructions between two calls of the progress handler
INLINE_BUDGET = 100_000  # instructions a read may run on the event loop's thread (a few ms) before it moves off it
READ_THREADS = 2  # for the reads that outgrow the budget, or meet a lock
T = TypeVar("T")


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", f"busy_timeout={BUSY_TIMEOUT_MS}"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def create_engine(storage: StorageSettings) -> AsyncEngine:
    url = make_url(storage.async_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(url, pool_pre_ping=True)


class Reads(Protocol):
    async def run(self, work: Callable[..., T], *args) -> T:
        """`work(connection, *args)`, outside any transaction of the caller's; what it returned. `work` only
        reads, and may be run twice (a read interrupted is read again from the start)."""


class EngineReads:
    """`run_sync` on the async engine: for a driver that needs no thread (asyncpg), and for an in-memory SQLite
    database, which another engine could not see."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def run(self, work: Callable[..., T], *args) -> T:
        async with self._engine.connect() as conn:
            return await conn.run_sync(work, *args)


class SqliteReads:
    """Reads of a SQLite file on the event loop's own thread when they are short, in a worker thread when not.

    Not always a thread: sqlite3 lets go of the GIL at every row it steps to, and a worker thread must then win
    it back from a busy event loop, which can take the whole switch interval (5 ms), row after row: at 1,000
    connections a 50-row page was served 390 times a second from worker threads and 773 times inline.
    Not always inline: a query no index serves, over millions of rows, would stall every other request while it
    ran, and a lock wait would stall them for up to the busy timeout. So a read starts inline, on a connection
    that never waits for a lock, and SQLite's progress handler interrupts it once it has run `budget` virtual
    machine instructions (INLINE_BUDGET: a page of 500 rows takes a fifth of it, a sort of 20,000 twice
    as much); a read interrupted or locked out is run again from the start in one of READ_THREADS threads, whose
    connections wait for locks as the engine's do, and where a long scan or sort, one step of SQLite's, runs
    without the GIL beside the loop. The loop is held by SQLite for at most the budget, and by `work` for what
    it does in Python with the rows (bounded by the page sizes its caller allows).
    """

    def __init__(self, engine: AsyncEngine, *, budget: int = INLINE_BUDGET) -> None:
        url = engine.url.set(drivername="sqlite")
        self.budget = budget
        self._left = 0  # progress handler calls left to the read running inline
        self._interrupted = False
        self._inline = create_sync_engine(url, poolclass=StaticPool)  # used by the loop's thread alone
        event.listen(self._inline, "connect", self._inline_connection)
        self._threaded = create_sync_engine(url, pool_size=READ_THREADS, max_overflow=0)
        event.listen(self._threaded, "connect", _thread_connection)
        self._threads = ThreadPoolExecutor(READ_THREADS, thread_name_prefix="kamiyo-reads")

    def _inline_connection(self, dbapi_connection, _record) -> None:
        dbapi_connection.execute("PRAGMA busy_timeout=0")
        dbapi_connection.execute("PRAGMA query_only=ON")
        dbapi_connection.set_progress_handler(self._over_budget, PROGRESS_STEPS)

    def _over_budget(self) -> bool:
        self._left -= 1
        if self._left < 0:
            self._interrupted = True
        return self._interrupted

    async def run(self, work: Callable[..., T], *args) -> T:
        self._left, self._interrupted = self.budget // PROGRESS_STEPS, False
        try:
            with self._inline.connect() as conn:
                return work(conn, *args)
        except OperationalError as exc:
            code = getattr(exc.orig, "sqlite_errorcode", 0) & 0xFF  # the primary code, under an extended one
            if not (code == sqlite3.SQLITE_INTERRUPT and self._interrupted) and code != sqlite3.SQLITE_BUSY:
                raise
        return await asyncio.get_running_loop().run_in_executor(self._threads, self._in_thread, work, args)

    def _in_thread(self, work: Callable[..., T], args: tuple) -> T:
        with self._threaded.connect() as conn:
            return work(conn, *args)

    def close(self) -> None:
        # not waiting for a read still running in a thread (this runs on the loop): its connection closes when
        # it is given back
        self._threads.shutdown(wait=False, cancel_futures=True)
        self._inline.dispose()
        self._threaded.dispose()


def _thread_connection(dbapi_connection, _record) -> None:
    dbapi_connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    dbapi_connection.execute("PRAGMA query_only=ON")


_READS: weakref.WeakKeyDictionary[Engine, SqliteReads] = weakref.WeakKeyDictionary()


def _disposed(sync_engine: Engine) -> None:
    found = _READS.pop(sync_engine, None)
    if found is not None:
        found.close()


def reads(engine: AsyncEngine) -> Reads:
    """The read path of `engine`. Over a SQLite file it is made on first use and closed when `engine` is disposed
    (a later use makes it anew, as the engine's pool is). Call it, and its `run`, from the event loop's thread."""
    url = engine.url
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return EngineReads(engine)
    sync_engine = engine.sync_engine
    found = _READS.get(sync_engine)
    if found is None:
        found = _READS[sync_engine] = SqliteReads(engine)
        if not event.contains(sync_engine, "engine_disposed", _disposed):
            event.listen(sync_engine, "engine_disposed", _disposed)
    return found
