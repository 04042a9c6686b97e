"""The kit for tests that run the real daemon against real anvil nodes: its configuration as TOML, the process
started and always stopped and reaped, its checkpoints read straight from the SQLite file, its JSON log lines.

It only observes the daemon from outside (files, signals, stderr); it must not import or drive the daemon's code.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from os import PathLike
from pathlib import Path

import pytest

from tests.support.anvil import AnvilNode

# What most tests want from a chain: followed from genesis, polled often, never throttled by the client.
CHAIN_DEFAULTS = {"start_block": 0, "poll_interval": 0.1, "requests_per_second": 5000}


def storage_toml(db: str | PathLike) -> str:
    return f'[storage]\nurl = "sqlite:///{db}"\n'


def chain_toml(name: str, node: AnvilNode, **overrides) -> str:
    """One `[[chains]]` block for `node`, with CHAIN_DEFAULTS changed by `overrides`; a key given as None is left
    out, so the daemon's own default applies. Values are written as JSON, which is valid TOML for str, numbers,
    bools and lists of them."""
    keys = {"name": name, "chain_id": node.chain_id, "rpc": [node.http]} | CHAIN_DEFAULTS | overrides
    return "\n[[chains]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in keys.items() if v is not None)


def db_rows(db: str | PathLike, sql: str) -> list[tuple]:
    """`sql`'s rows, or [] while the database file or the table does not exist yet. The busy timeout is long
    because the daemon may be in the middle of a commit, and a locked file must not read as an empty one."""
    try:
        with contextlib.closing(sqlite3.connect(db, timeout=10)) as con:
            return con.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []


def checkpoints(db: str | PathLike) -> dict[int, int]:
    """chain id -> the number of its last committed block."""
    return dict(db_rows(db, "SELECT chain_id, number FROM checkpoints"))


def _behind(db: str | PathLike, want: dict[int, int]) -> dict[int, int] | None:
    """The checkpoints seen, if some chain of `want` has not reached its number yet; None once all have."""
    seen = checkpoints(db)
    return None if all(seen.get(chain, -1) >= number for chain, number in want.items()) else seen


def wait_checkpoints(db: str | PathLike, want: dict[int, int], timeout: float) -> None:
    """Until every chain of `want` is checkpointed at or past its number; the test fails after `timeout` s."""
    deadline = time.monotonic() + timeout
    while (seen := _behind(db, want)) is not None:
        if time.monotonic() > deadline:
            pytest.fail(f"checkpoints {seen} did not reach {want} within {timeout} s")
        time.sleep(0.05)


def wait_checkpoint(db: str | PathLike, chain_id: int, number: int, timeout: float) -> None:
    wait_checkpoints(db, {chain_id: number}, timeout)


async def wait_checkpoint_async(db: str | PathLike, chain_id: int, number: int, timeout: float) -> None:
    """wait_checkpoint for a test whose event loop must keep running meanwhile (it serves the daemon's peers)."""
    deadline = time.monotonic() + timeout
    while (seen := _behind(db, {chain_id: number})) is not None:
        if time.monotonic() > deadline:
            pytest.fail(f"checkpoints {seen} did not reach {{{chain_id}: {number}}} within {timeout} s")
        await asyncio.sleep(0.05)


def daemon_command(config: str | PathLike) -> list[str]:
    return [sys.executable, "-m", "kamiyo.cli", "run", "--config", str(config)]


class DaemonProcess(subprocess.Popen):
    """`kamiyo run` as a child process. After `stop()`, `stderr_text` holds everything it wrote to stderr."""

    stderr_text = ""
    _sigterm_sent = False

    def send_signal(self, sig: int) -> None:
        # remembered so that stop() does not send a second SIGTERM: the daemon removes its handler as it exits,
        # and a late second one would kill it with the default action instead of letting it finish
        self._sigterm_sent |= sig == signal.SIGTERM
        super().send_signal(sig)

    def stop(self, timeout: float) -> None:
        """SIGTERM (unless the test sent one already), then wait `timeout` s for the exit. A daemon that does not
        exit in time is killed and reaped, and the TimeoutExpired is raised so the test fails on it."""
        if not self._sigterm_sent:
            self.send_signal(signal.SIGTERM)
        try:
            _, self.stderr_text = self.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            _, self.stderr_text = self.communicate()
            raise


@contextlib.contextmanager
def running_daemon(config: str | PathLike, *, env: dict[str, str] | None = None, stdout=subprocess.PIPE,
                   stop_timeout: float = 30) -> Iterator[DaemonProcess]:
    """The daemon on `config` for the body of the `with`; on leaving it, however the body ended, stopped by
    SIGTERM within `stop_timeout` s (or killed) and reaped. Its stderr is always piped, to be read afterwards."""
    daemon = DaemonProcess(daemon_command(config), env=env, stdout=stdout, stderr=subprocess.PIPE, text=True)
    try:
        yield daemon
    finally:
        daemon.stop(stop_timeout)


@contextlib.asynccontextmanager
async def running_daemon_async(config: str | PathLike, *, env: dict[str, str] | None = None,
                               stdout=subprocess.PIPE, stop_timeout: float = 30) -> AsyncIterator[DaemonProcess]:
    """running_daemon for an async test: the wait for the exit runs in a thread, so that servers on the test's
    event loop (a proxy, a misbehaving endpoint) keep answering while the daemon shuts down."""
    daemon = DaemonProcess(daemon_command(config), env=env, stdout=stdout, stderr=subprocess.PIPE, text=True)
    try:
        yield daemon
    finally:
        await asyncio.to_thread(daemon.stop, stop_timeout)


def log_events(stderr_text: str) -> list[dict]:
    """The daemon's JSON log lines, in order; anything else on stderr (a traceback, a warning) is skipped."""
    return [json.loads(line) for line in stderr_text.splitlines() if line.startswith("{")]


# Roles of scenario contracts a protocol team would put under [[watch]] (tests/support/scenarios.py, heldout.py).
WATCHED_ROLES = ("victim", "proxy", "timelock", "vault", "new_vault", "lending", "treasury", "bridge", "aggregator")


def follow_scenarios(node: AnvilNode, folder: Path, runs, timeout: float = 120) -> tuple[list[dict], list[dict]]:
    """Run the daemon from genesis over a chain the scenario `runs` were played on, with their contracts under
    `[[watch]]`, until it reaches the head; its active findings (fork-detected left out; evidence decoded) and
    incidents ({"tx_hashes", "sources"})."""
    db, config = folder / "k.db", folder / "k.toml"
    watched = sorted({r.roles[role] for r in runs for role in WATCHED_ROLES if role in r.roles})
    config.write_text(storage_toml(db) + chain_toml("local", node) + "".join(
        f'\n[[watch]]\nchain = "local"\naddress = "{address}"\n' for address in watched))
    with running_daemon(config) as daemon:
        wait_checkpoint(db, node.chain_id, int(node.rpc("eth_blockNumber"), 16), timeout=timeout)
    assert daemon.returncode == 0, daemon.stderr_text[-3000:]
    rows = db_rows(db, "SELECT kind, severity, type, block_number, tx_hash, evidence FROM findings "
                       "WHERE status = 'active' AND kind != 'fork-detected'")
    findings = [dict(zip(("kind", "severity", "type", "block", "tx_hash", "evidence"), r)) for r in rows]
    for f in findings:
        f["evidence"] = json.loads(f["evidence"])
    incidents = [{"tx_hashes": json.loads(t), "sources": json.loads(s)}
                 for t, s in db_rows(db, "SELECT tx_hashes, sources FROM incidents")]
    return findings, incidents
