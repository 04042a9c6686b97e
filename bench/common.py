"""What every benchmark in bench/ reports the same way: the machine a run was on, its table on the terminal, and
its dated section in BENCHMARKS.md, so that the four scripts cannot drift apart in how they record figures.

It measures nothing and must not write anywhere but BENCHMARKS.md. Sections already in that file are never
rewritten: a run only appends.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
import signal
import sqlite3
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCHMARKS = REPO / "BENCHMARKS.md"
DEFAULT_DATA = REPO.parent / "shared" / "data" / "bytecode"


def machine() -> dict:
    """Taken at the start of a run: date (UTC), cores, cpu, python, 1-minute load and the code (git HEAD and the
    number of uncommitted files under kamiyo/). Other work on the machine skews every figure; the load says so."""
    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), cpu)
    return {"date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "cores": os.cpu_count(),
            "cpu": cpu, "python": platform.python_version(), "load": os.getloadavg()[0], "code": _code()}


def _code() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout

    try:
        head, dirty = git("rev-parse", "--short", "HEAD").strip(), git("status", "--porcelain", "kamiyo")
    except OSError:  # no git on this machine
        return "unknown"
    return f"{head} + {len(dirty.splitlines())} uncommitted file(s) under kamiyo/"


def print_table(title: str, info: dict, rows: list[tuple[str, str]], *, code: bool = False) -> None:
    """The rows, labels aligned, under a line naming the benchmark and the machine (and the code, if `code`)."""
    heading = (f"\n{title} benchmark — {info['date']}, {info['cores']} cores, {info['cpu']}, "
               f"Python {info['python']}, load {info['load']:.2f} at start")
    print(heading + (f", code {info['code']}" if code else ""))
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")


def append_section(title: str, info: dict, rows: list[tuple[str, str]], setting: str, notes: str = "",
                   header: str = "") -> None:
    """Append `## title — date`, a line on the machine ending in `setting` (what the run used and how to reproduce
    it), the rows as a two-column table, and `notes` (more markdown) after a blank line. `header` starts the file
    when there is none yet."""
    fresh = not BENCHMARKS.exists() or BENCHMARKS.stat().st_size == 0
    with open(BENCHMARKS, "a") as fh:
        if fresh:
            fh.write(header)
        fh.write(f"\n## {title} — {info['date']}\n\n")
        fh.write(f"{info['cores']} cores, {info['cpu']}, Python {info['python']}; 1-minute load average "
                 f"{info['load']:.2f} at start; {setting}\n\n")
        fh.write("| measure | value |\n| --- | --- |\n")
        for label, value in rows:
            fh.write(f"| {label} | {value.replace('|', '/')} |\n")  # a '|' in a value would split its cell
        if notes:
            fh.write(f"\n{notes}")
    print(f"\nappended to {BENCHMARKS.relative_to(REPO)}")


def checkpoint(db: Path, chain_id: int) -> int | None:
    """The block of the daemon's committed checkpoint for `chain_id`, read-only; None before it has one."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
            row = con.execute("SELECT number FROM checkpoints WHERE chain_id = ?", (chain_id,)).fetchone()
    except sqlite3.OperationalError:  # no database or no table yet: the daemon is still starting
        return None
    return row[0] if row else None


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, seconds."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop_daemon(daemon: subprocess.Popen, timeout: float) -> None:
    """SIGTERM (the daemon's graceful shutdown), then a kill if it has not exited within `timeout` seconds."""
    daemon.send_signal(signal.SIGTERM)
    try:
        daemon.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        daemon.kill()
        daemon.wait()
