"""Online backup on real SQLite files: a copy made while another connection keeps committing is intact and
holds a consistent prefix of the commits. Every refusal leaves the destination as it was."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import text

from kamiyo.config import StorageSettings
from kamiyo.storage import backup as backup_module
from kamiyo.storage.backup import (
    BackupUnsupported,
    DestinationExists,
    DestinationUnwritable,
    SourceMissing,
    SourceUnreadable,
    backup_database,
)
from kamiyo.storage.engine import create_engine

REPO = Path(__file__).resolve().parents[2]


def storage_for(path: Path) -> StorageSettings:
    return StorageSettings(url=f"sqlite:///{path}")


def make_db(path: Path, rows: int) -> sqlite3.Connection:
    """A WAL database with `rows` committed rows. Each commit moves meta.last along with the rows, so a copy
    that caught half a commit would disagree with itself."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE rows (id INTEGER PRIMARY KEY, payload BLOB NOT NULL)")
    con.execute("CREATE TABLE meta (only INTEGER PRIMARY KEY CHECK (only = 0), last INTEGER NOT NULL)")
    con.execute("INSERT INTO meta VALUES (0, 0)")
    if rows:
        insert_rows(con, 1, rows)
    return con


def insert_rows(con: sqlite3.Connection, first: int, last: int, commit: bool = True) -> None:
    con.execute("BEGIN IMMEDIATE")
    con.executemany("INSERT INTO rows VALUES (?, randomblob(1024))", [(k,) for k in range(first, last + 1)])
    con.execute("UPDATE meta SET last = ?", (last,))
    if commit:
        con.execute("COMMIT")


def committed_rows(path: Path) -> int:
    """Open a copy read-only (it must stand alone, with no -wal beside it) and check it through and through."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        ids = [row[0] for row in con.execute("SELECT id FROM rows ORDER BY id")]
        assert ids == list(range(1, len(ids) + 1)), "the copy has a gap: not a prefix of the commits"
        assert con.execute("SELECT last FROM meta").fetchone() == (len(ids),), "rows and meta disagree"
        return len(ids)
    finally:
        con.close()


def leftovers(folder: Path) -> list[str]:
    """Temporary files the backup writes beside its destination start with a dot."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


async def test_a_backup_taken_while_another_connection_keeps_inserting_is_a_consistent_prefix(tmp_path):
    db = tmp_path / "state" / "kamiyo.db"
    make_db(db, rows=3000).close()
    storage = storage_for(db)
    engine = create_engine(storage)  # the daemon's own engine and pragmas (WAL, busy_timeout)
    stop = asyncio.Event()
    written = [3000]

    async def writer() -> None:
        while not stop.is_set():
            k = written[0] + 1
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO rows VALUES (:k, randomblob(512))"), {"k": k})
                await conn.execute(text("UPDATE meta SET last = :k"), {"k": k})
            written[0] = k

    task = asyncio.create_task(writer())
    copies = []
    try:
        for i in range(4):
            before = written[0]
            result = await backup_database(storage, tmp_path / f"copy-{i}.db")
            copies.append((result, before, written[0]))
    finally:
        stop.set()
        await task
        await engine.dispose()

    assert written[0] > 3000  # the writer was committing all along
    for result, before, after in copies:
        n = committed_rows(result.dest)
        # At least what was committed when the backup began. At most one commit past what the writer had
        # recorded when it ended: its last commit may have landed before it could record it.
        assert before <= n <= after + 1
        con = sqlite3.connect(f"file:{result.dest}?mode=ro", uri=True)
        assert con.execute("PRAGMA journal_mode").fetchone() == ("delete",)  # one self-contained file
        page_size = con.execute("PRAGMA page_size").fetchone()[0]
        page_count = con.execute("PRAGMA page_count").fetchone()[0]
        con.close()
        assert result.pages == page_count
        assert result.bytes == page_count * page_size == result.dest.stat().st_size
        assert result.source == db and result.dest.stat().st_mode & 0o777 == 0o600
    assert leftovers(tmp_path) == []
    assert committed_rows(db) == written[0]  # and the writer's own database was not disturbed


async def test_the_copy_holds_commits_still_in_the_wal_and_nothing_of_an_open_transaction(tmp_path):
    db = tmp_path / "kamiyo.db"
    con = make_db(db, rows=0)
    con.execute("PRAGMA wal_autocheckpoint=0")  # keep every commit in the WAL: a plain file copy would miss them
    insert_rows(con, 1, 100)
    assert Path(f"{db}-wal").stat().st_size > 100 * 1024
    insert_rows(con, 101, 150, commit=False)  # a writer mid-block, holding the write lock throughout the backup
    result = await backup_database(storage_for(db), tmp_path / "copy.db")
    con.execute("COMMIT")
    con.close()
    assert committed_rows(result.dest) == 100
    assert not Path(f"{result.dest}-wal").exists()


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("postgresql://kamiyo:secret@db.internal/kamiyo", "pg_dump"),
        ("postgresql+asyncpg://kamiyo:secret@db.internal/kamiyo", "pg_dump"),
        ("sqlite:///:memory:", "in memory"),
        ("sqlite://", "in memory"),
    ],
)
async def test_only_an_sqlite_file_can_be_backed_up(tmp_path, url, says):
    with pytest.raises(BackupUnsupported, match=says) as caught:
        await backup_database(StorageSettings(url=url), tmp_path / "copy.db")
    assert "secret" not in str(caught.value) and "secret" not in repr(caught.value.context)
    assert list(tmp_path.iterdir()) == []


async def test_a_missing_source_is_reported_and_not_created(tmp_path):
    db = tmp_path / "state" / "kamiyo.db"
    with pytest.raises(SourceMissing, match="no database at") as caught:
        await backup_database(storage_for(db), tmp_path / "copy.db")
    assert isinstance(caught.value, FileNotFoundError)
    assert not db.exists() and not (tmp_path / "copy.db").exists()


async def test_a_file_that_is_not_a_database_is_refused(tmp_path):
    db = tmp_path / "kamiyo.db"
    db.write_text("this is a TOML file saved under the wrong name\n" * 40)
    with pytest.raises(SourceUnreadable, match="not a database"):
        await backup_database(storage_for(db), tmp_path / "copy.db")
    assert not (tmp_path / "copy.db").exists() and leftovers(tmp_path) == []


async def test_an_existing_destination_is_kept_unless_overwrite_is_asked(tmp_path):
    db = tmp_path / "kamiyo.db"
    make_db(db, rows=20).close()
    dest = tmp_path / "copy.db"
    dest.write_bytes(b"yesterday's backup")
    with pytest.raises(DestinationExists) as caught:
        await backup_database(storage_for(db), dest)
    assert isinstance(caught.value, FileExistsError)
    assert dest.read_bytes() == b"yesterday's backup"
    await backup_database(storage_for(db), dest, overwrite=True)
    assert committed_rows(dest) == 20 and leftovers(tmp_path) == []


async def test_a_destination_that_appears_during_the_copy_is_not_clobbered(tmp_path, monkeypatch):
    db = tmp_path / "kamiyo.db"
    make_db(db, rows=20).close()
    dest = tmp_path / "copy.db"
    real_copy = backup_module._copy

    def copy_while_another_process_writes_dest(source, partial):
        pages = real_copy(source, partial)
        dest.write_bytes(b"another process got here first")
        return pages

    monkeypatch.setattr(backup_module, "_copy", copy_while_another_process_writes_dest)
    with pytest.raises(DestinationExists):
        await backup_database(storage_for(db), dest)
    assert dest.read_bytes() == b"another process got here first" and leftovers(tmp_path) == []


async def test_the_live_database_is_never_a_destination(tmp_path):
    db = tmp_path / "kamiyo.db"
    make_db(db, rows=5).close()
    os.link(db, tmp_path / "hardlink.db")
    before = db.read_bytes()
    for dest in (db, tmp_path / "." / "kamiyo.db", tmp_path / "hardlink.db"):
        with pytest.raises(DestinationUnwritable, match="live database"):
            await backup_database(storage_for(db), dest, overwrite=True)
    assert db.read_bytes() == before


async def test_a_destination_folder_that_cannot_hold_the_file_is_reported(tmp_path):
    db = tmp_path / "kamiyo.db"
    make_db(db, rows=5).close()
    with pytest.raises(DestinationUnwritable, match="cannot write in"):
        await backup_database(storage_for(db), tmp_path / "no" / "such" / "folder" / "copy.db")
    (tmp_path / "a-file").write_text("")
    with pytest.raises(DestinationUnwritable, match="cannot write in"):
        await backup_database(storage_for(db), tmp_path / "a-file" / "copy.db")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder regardless")
async def test_a_read_only_folder_is_reported(tmp_path):
    db = tmp_path / "kamiyo.db"
    make_db(db, rows=5).close()
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o500)
    try:
        with pytest.raises(DestinationUnwritable, match="cannot write in"):
            await backup_database(storage_for(db), folder / "copy.db")
    finally:
        folder.chmod(0o700)


_FULL_DISK = textwrap.dedent(
    """
    import asyncio, resource, signal, sys
    from pathlib import Path
    from kamiyo.config import StorageSettings
    from kamiyo.storage.backup import DestinationUnwritable, backup_database

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (128 * 1024, 128 * 1024))
    try:
        asyncio.run(backup_database(StorageSettings(url=sys.argv[1]), Path(sys.argv[2])))
    except DestinationUnwritable as exc:
        print(exc)
        sys.exit(3)
    """
)


def test_running_out_of_space_mid_copy_is_a_destination_failure_and_leaves_nothing(tmp_path):
    db = tmp_path / "kamiyo.db"
    make_db(db, rows=500).close()  # about 600 KiB, past the file size limit the child sets
    out = tmp_path / "out"
    out.mkdir()
    # The limit stands in for a full disk: in that child process only, writes past it fail with EFBIG.
    result = subprocess.run(
        [sys.executable, "-c", _FULL_DISK, f"sqlite:///{db}", str(out / "copy.db")],
        capture_output=True, text=True, timeout=120, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 3, result.stdout + result.stderr
    assert "cannot write" in result.stdout
    assert list(out.iterdir()) == []
    assert committed_rows(db) == 500
