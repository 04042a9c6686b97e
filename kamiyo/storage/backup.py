"""Online backup of the SQLite database: a consistent copy taken while the daemon keeps writing.

The copy is SQLite's backup API run in one step, so it is one read transaction over the whole database. In WAL
mode that is a snapshot the writer never waits for: the daemon keeps committing blocks while the copy is made,
and the copy holds exactly the blocks committed before it began, WAL included. Copying in several steps
would let go of the snapshot between steps, and every commit by the daemon would restart the copy from page
one. The copy is written beside the destination and renamed into place, so nobody ever sees half a backup.
PostgreSQL is out of scope: pg_dump does that job.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.request import pathname2url

from sqlalchemy.engine import make_url

from .. import log
from ..config import StorageSettings
from ..errors import KamiyoError
from .engine import BUSY_TIMEOUT_MS

_log = log.get("kamiyo.storage.backup")


class BackupError(KamiyoError):
    """The backup was not made. Nothing was left at the destination."""


class BackupUnsupported(BackupError):
    """The configured database is not an SQLite file this module can copy."""


class SourceMissing(BackupError, FileNotFoundError):
    """The configured SQLite database does not exist. It is never created by a backup attempt."""


class SourceUnreadable(BackupError):
    """The source exists but cannot be read as an SQLite database."""


class DestinationExists(BackupError, FileExistsError):
    """Something is already at the destination, and overwriting was not asked for."""


class DestinationUnwritable(BackupError, OSError):
    """The destination cannot be written: a missing folder, no permission, a read-only or full filesystem."""


@dataclass(frozen=True, slots=True)
class BackupResult:
    source: Path
    dest: Path
    pages: int
    bytes: int


def sqlite_path(storage: StorageSettings) -> Path:
    """The database file the engine opens for these settings, or BackupUnsupported."""
    url = make_url(storage.async_url)
    backend = url.get_backend_name()
    if backend == "postgresql":
        raise BackupUnsupported("the database is PostgreSQL: back it up with pg_dump (or pg_basebackup)",
                                backend=backend)
    if backend != "sqlite":
        raise BackupUnsupported(f"cannot back up a {backend} database", backend=backend)
    if not url.database or url.database == ":memory:":
        raise BackupUnsupported("the database is in memory: there is no file to back up", backend=backend)
    return Path(url.database)


async def backup_database(storage: StorageSettings, dest: Path, *, overwrite: bool = False) -> BackupResult:
    """Copy the live SQLite database to `dest`. Safe while `kamiyo run` is writing; runs in a worker thread."""
    source = Path(os.path.abspath(sqlite_path(storage)))
    dest = Path(os.path.abspath(dest))
    if not source.is_file():
        raise SourceMissing(f"no database at {source}: nothing to back up", path=str(source))
    if dest == source or (dest.exists() and dest.samefile(source)):
        raise DestinationUnwritable(f"{dest} is the live database itself; choose another path", path=str(dest))
    if dest.exists() and not overwrite:
        raise DestinationExists(f"{dest} already exists (pass --overwrite to replace it)", path=str(dest))
    result = await asyncio.to_thread(_backup, source, dest, overwrite)
    _log.info("storage.backup_written", source=str(source), dest=str(dest), pages=result.pages, bytes=result.bytes)
    return result


def _backup(source: Path, dest: Path, overwrite: bool) -> BackupResult:
    try:
        fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".partial")  # mode 0600
        os.close(fd)
    except OSError as exc:
        raise DestinationUnwritable(f"cannot write in {dest.parent}: {exc.strerror}", path=str(dest)) from exc
    partial = Path(name)
    try:
        pages = _copy(source, partial)
        with open(partial, "rb") as handle:
            os.fsync(handle.fileno())  # the rename below must not land before the data does
        size = partial.stat().st_size
        _publish(partial, dest, overwrite)
        _fsync_dir(dest.parent)
    except BackupError:
        raise  # DestinationExists is an OSError too: it must not be re-labelled below
    except OSError as exc:
        raise DestinationUnwritable(f"cannot write {dest}: {exc.strerror or exc}", path=str(dest)) from exc
    finally:
        partial.unlink(missing_ok=True)
        Path(f"{partial}-journal").unlink(missing_ok=True)
    return BackupResult(source, dest, pages, size)


def _copy(source: Path, partial: Path) -> int:
    # mode=rw: open an existing database, never create an empty one where the real one was expected.
    uri = f"file:{pathname2url(str(source))}?mode=rw"
    try:
        src = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
    except sqlite3.Error as exc:
        raise SourceUnreadable(f"cannot open {source}: {exc}", path=str(source)) from exc
    with contextlib.closing(src):
        try:
            src.execute("PRAGMA schema_version").fetchone()  # reads the header: not-a-database fails here
        except sqlite3.Error as exc:
            raise SourceUnreadable(f"cannot read {source} as an SQLite database: {exc}", path=str(source)) from exc
        with contextlib.closing(sqlite3.connect(partial)) as dst:
            try:
                src.backup(dst, pages=-1)  # one step, one snapshot: see the module docstring
                # The copy inherits WAL mode from the source. Rollback mode makes it one self-contained file
                # that opens read-only. The daemon turns WAL back on when it opens a restored copy.
                dst.execute("PRAGMA journal_mode=DELETE").fetchone()
                return dst.execute("PRAGMA page_count").fetchone()[0]
            except sqlite3.Error as exc:
                if _is_write_failure(exc):
                    raise DestinationUnwritable(f"cannot write {partial.parent}: {exc}", path=str(partial)) from exc
                raise BackupError(f"backup of {source} failed: {exc}", path=str(source)) from exc


def _is_write_failure(exc: sqlite3.Error) -> bool:
    """Only the destination is written to, so a full disk or a failed write is the destination's fault."""
    name = getattr(exc, "sqlite_errorname", "")
    return name in ("SQLITE_FULL", "SQLITE_IOERR_WRITE", "SQLITE_IOERR_FSYNC") or name.startswith("SQLITE_READONLY")


def _publish(partial: Path, dest: Path, overwrite: bool) -> None:
    if overwrite:
        os.replace(partial, dest)
        return
    try:
        os.link(partial, dest)  # atomic "create if absent": a file that appeared meanwhile is not clobbered
    except FileExistsError as exc:
        raise DestinationExists(f"{dest} already exists (pass --overwrite to replace it)", path=str(dest)) from exc
    except OSError:
        # Some filesystems (vfat, some network mounts) have no hard links: check, then rename.
        if dest.exists():
            raise DestinationExists(f"{dest} already exists (pass --overwrite to replace it)", path=str(dest))
        os.replace(partial, dest)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
