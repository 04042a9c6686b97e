"""The API and alert delivery under load: WebSocket fan-out, and block → signed webhook. (The findings queries
under wrk are bench/api_queries.py's, which imports `seed`, `finding` and `start_server` from here.)

1. Stream: `kamiyo api` in its own process over a database of 20,000 findings, and 1,000 WebSocket subscribers
   to its `/v1/stream` held by `--clients` client processes of their own, so that the server's event loop is
   not the clients' (all still share the machine's cores). This process (the writer) commits findings into the
   same database at a fixed rate, one per transaction: 1,000 at 20/s, then 200 at each higher rate until p99
   passes the target or a subscriber drops. Latency is commit (the writer's `time.time()` right after the
   commit) → receipt (the client's `time.time()`: the same machine clock), over every (subscriber, finding)
   pair; each subscriber must be sent every event of the burst, once and in order, or it counts as dropped.
   The API runs in another process than the writer, so it finds new events by polling the outbox; inside
   `kamiyo run` a commit wakes it at once. Each row gives the share of one core that the server, the client
   processes and the writer used from the first commit to the last receipt (and the server's while the
   subscribers sat idle for a second before), and the rate the writer reached if it fell short.
2. End to end: `kamiyo run` on an anvil chain (confirmations = 0, WebSocket heads) with a webhook channel to a
   receiver in this process that verifies the signature; `--attacks` re-entrancy drains, each timed from its
   block first appearing at the node to the signed webhook of its exploit finding being received.

`--baseline DIR` also measures the stream with a server run from another copy of the code over the same
database, the two servers taking turns run by run, and reports the ratio. DIR needs kamiyo/ with its built
extension, which `git archive` leaves out: e.g. `cp -r kamiyo /tmp/base/` and then `git show
HEAD:kamiyo/api/stream.py > /tmp/base/kamiyo/api/stream.py` for the files to compare.

`--py-spy FILE` records this code's server with py-spy (`.venv/bin/pip install py-spy`) during the first
burst: FILE.svg a flame graph, any other name py-spy's raw collapsed stacks. py-spy takes CPU of its own, so
the figures of such a run are not comparable.

    .venv/bin/python bench/api.py [--clients 2] [--baseline DIR] [--no-stream] [--no-e2e] [--attacks 10]
                                  [--py-spy FILE] [--no-append]
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import math
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from array import array
from pathlib import Path

import aiohttp
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import REPO, append_section, checkpoint, cpu_seconds, machine, print_table, stop_daemon  # noqa: E402
from kamiyo.api import keys  # noqa: E402
from kamiyo.config import StorageSettings  # noqa: E402
from kamiyo.findings import Finding, FindingType, Severity, fingerprint  # noqa: E402
from kamiyo.storage.engine import create_engine  # noqa: E402
from kamiyo.storage.findings import record_finding  # noqa: E402
from kamiyo.storage.migrations import upgrade  # noqa: E402
from kamiyo.storage.schema import outbox  # noqa: E402
from tests.alerts.receiver import Receiver  # noqa: E402
from tests.support.anvil import anvil, free_port  # noqa: E402
from tests.support.daemon import chain_toml, storage_toml  # noqa: E402
from tests.support.scenarios import run_reentrancy_drain  # noqa: E402

SUBSCRIBERS = 1_000
FRAME_HEAD = '{"type":"events","cursor":'
STREAM_TARGET_MS = 100
STREAM_RATES = (50.0, 100.0, 200.0, 400.0)  # after 1,000 at 20/s
E2E_TARGET_MS = 500
SEVERITIES = [Severity.INFO, Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL]


def finding(n: int, note: str = "") -> Finding:
    return Finding("large-outflow", SEVERITIES[n % 5], FindingType.EXPLOIT, 1, "0x" + f"{n:040x}", n,
                   "0x" + f"{n:064x}", fingerprint("bench", n, note), {"summary": f"bench {n}", "labels": []})


async def seed(db: Path, count: int) -> tuple[str, object]:
    engine = create_engine(StorageSettings(url=f"sqlite:///{db}"))
    await upgrade(engine)
    async with engine.begin() as conn:
        for n in range(count):
            await record_finding(conn, finding(n))
        _key, secret = await keys.create(conn, "bench", tier="enterprise", scopes=["read"])
    return secret, engine


def subscribe(base: str, secret: str, sockets: int, count: int, conn) -> None:
    """A client process: `sockets` subscribers to `/v1/stream`. Tells "ready" once every one is connected; on
    "go" (the burst starts; it carries a timeout in seconds) waits until each has been sent `count` events, then
    sends ("done", dropped, reasons) and, per subscriber, every frame it received as (cursor, events, time.time()
    on receipt), packed as arrays. A frame is only looked at, not parsed as JSON: its cursor and its count of
    events (the bench checks them against the outbox), so that a subscriber costs little beyond aiohttp's
    receive; the subscribers are the harness, and share the machine's cores with the server."""
    asyncio.run(_subscribe(base, secret, sockets, count, conn))


async def _subscribe(base: str, secret: str, sockets: int, count: int, conn) -> None:
    frames = [(array("q"), array("l"), array("d")) for _ in range(sockets)]
    reasons: list[str] = []
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    subscribers = [await session.ws_connect(base + "/v1/stream", headers={"Authorization": f"Bearer {secret}"},
                                            max_msg_size=0) for _ in range(sockets)]

    async def listen(ws, cursors: array, sizes: array, times: array) -> None:
        left = count
        while left > 0:
            message = await ws.receive()
            now = time.time()
            data = message.data
            if message.type != aiohttp.WSMsgType.TEXT or not data.startswith(FRAME_HEAD):
                reasons.append(data[:200] if message.type == aiohttp.WSMsgType.TEXT
                               else f"{message.type.name} {ws.close_code}")
                return
            n = data.count('{"cursor":')  # the items; the frame's own cursor follows a comma
            cursors.append(int(data[len(FRAME_HEAD):data.index(",", len(FRAME_HEAD))]))
            sizes.append(n)
            times.append(now)
            left -= n

    listeners = [asyncio.create_task(listen(ws, *frames[s])) for s, ws in enumerate(subscribers)]
    conn.send("ready")
    timeout = await asyncio.to_thread(conn.recv)
    _done, late = await asyncio.wait(listeners, timeout=timeout)
    for task in late:
        task.cancel()
    reasons += ["timeout"] * len(late)
    conn.send(("done", len(reasons), reasons[:5]))
    conn.send([tuple(a.tobytes() for a in f) for f in frames])
    for ws in subscribers:
        await ws.close()
    await session.close()


def receipts(frames: list[tuple[bytes, bytes, bytes]], ids: list[int], committed: list[float]) -> tuple[list, int]:
    """Commit → receipt latencies over every (subscriber, event) from the frames of a client process, and how
    many of its subscribers were sent something else than the events of `ids` (outbox ids, ascending, each
    committed at `committed[i]`) in order, each once."""
    latencies, wrong = [], 0
    for packed in frames:
        cursors, sizes, times = (array(code, raw) for code, raw in zip("qld", packed, strict=True))
        lo = 0
        for cursor, n, at in zip(cursors, sizes, times, strict=True):
            hi = bisect.bisect_right(ids, cursor, lo)
            if hi - lo != n:
                wrong += 1
                break
            latencies.extend(at - committed[i] for i in range(lo, hi))
            lo = hi
    return latencies, wrong


async def stream_run(base: str, secret: str, engine, count: int, rate: float, offset: int, server: int,
                     clients: int, profile: Path | None = None) -> dict:
    """`count` findings at `rate`/s to SUBSCRIBERS subscribers in `clients` processes: p50/p99 of commit →
    receipt, drops, frames, and the CPU shares (of one core) of the server (pid `server`), the clients and
    this process (the writer) from the first commit to the last receipt."""
    spawn = multiprocessing.get_context("spawn")
    shares = [SUBSCRIBERS // clients + (k < SUBSCRIBERS % clients) for k in range(clients)]
    pipes = [spawn.Pipe() for _ in shares]
    procs = [spawn.Process(target=subscribe, args=(base, secret, n, count, child), daemon=True)
             for n, (_parent, child) in zip(shares, pipes, strict=True)]
    for proc in procs:
        proc.start()
    try:
        for parent, _child in pipes:
            try:
                await asyncio.to_thread(parent.recv)
            except EOFError:
                raise SystemExit("a stream client process failed to connect (its traceback is above)") from None
        idle = cpu_seconds(server), time.monotonic()
        await asyncio.sleep(1.0)  # every subscriber joined the hub
        idle_share = (cpu_seconds(server) - idle[0]) / (time.monotonic() - idle[1])
        async with engine.connect() as conn:
            before = (await conn.execute(select(func.coalesce(func.max(outbox.c.id), 0)))).scalar()
        spy = None
        if profile is not None:
            spy = subprocess.Popen([py_spy(), "record", "--pid", str(server), "--rate", "200", "--nonblocking",
                                    "--format", "flamegraph" if profile.suffix == ".svg" else "raw",
                                    "-o", str(profile), "--duration", str(math.ceil(count / rate) + 1)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cpu0 = {"server": cpu_seconds(server), "clients": sum(cpu_seconds(p.pid) for p in procs),
                "writer": cpu_seconds(os.getpid())}
        started = time.monotonic()
        for parent, _child in pipes:
            parent.send(count / rate + 30)
        committed: dict[str, float] = {}
        for n in range(count):
            f = finding(offset + n, "live")
            async with engine.begin() as conn:
                await record_finding(conn, f)
            committed[f.fingerprint] = time.time()
            await asyncio.sleep(max(0.0, started + (n + 1) / rate - time.monotonic()))
        achieved = count / (time.monotonic() - started)  # below `rate` if the writer cannot keep it up
        reports = [await asyncio.to_thread(parent.recv) for parent, _child in pipes]
        elapsed = time.monotonic() - started
        cpu = {"server": cpu_seconds(server), "clients": sum(cpu_seconds(p.pid) for p in procs),
               "writer": cpu_seconds(os.getpid())}
        received = [await asyncio.to_thread(parent.recv) for parent, _child in pipes]
        if spy is not None:
            spy.wait()
    finally:
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
    async with engine.connect() as conn:
        rows = (await conn.execute(select(outbox.c.id, outbox.c.fingerprint).where(outbox.c.id > before)
                                   .order_by(outbox.c.id))).all()
    if sorted(r.fingerprint for r in rows) != sorted(committed):
        raise SystemExit("the outbox holds other events than the burst's: is something else writing?")
    latencies, wrong = [], 0
    for frames in received:
        some, bad = receipts(frames, [r.id for r in rows], [committed[r.fingerprint] for r in rows])
        latencies += some
        wrong += bad
    latencies.sort()

    def at(q: float) -> float | None:
        return 1000 * latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else None

    why = [w for r in reports for w in r[2]] + (["sent events out of order, or not each once"] if wrong else [])
    return {"rate": rate, "achieved": achieved, "count": count, "p50_ms": at(0.5), "p99_ms": at(0.99),
            "max_ms": at(1.0), "dropped": sum(r[1] for r in reports) + wrong, "why": why[:3], "pairs": len(latencies),
            "frames": sum(len(f[0]) // 8 for frames in received for f in frames), "idle": idle_share,
            **{f"{who}_cpu": (cpu[who] - cpu0[who]) / elapsed for who in cpu}}


def py_spy() -> str:
    """py-spy on PATH, else beside this interpreter (`.venv/bin/pip install py-spy`); "" if neither."""
    beside = Path(sys.executable).parent / "py-spy"
    return shutil.which("py-spy") or (str(beside) if beside.is_file() else "")


async def start_server(code: Path, db: Path, work: Path, workers: int = 1) -> tuple[subprocess.Popen, str]:
    """`kamiyo api [--workers N]` from the checkout `code` over `db` on a free port, once it answers /healthz."""
    port = free_port()
    config = work / f"api-{port}.toml"
    config.write_text(storage_toml(db) + f'\n[api]\nlisten = "127.0.0.1:{port}"\n')
    pool = ["--workers", str(workers)] if workers > 1 else []
    server = subprocess.Popen([sys.executable, "-m", "kamiyo.cli", "api", *pool, "--config", str(config)], cwd=code,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:
        for _ in range(100):
            try:
                async with session.get(base + "/healthz") as response:
                    if response.status == 200:
                        return server, base
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.1)
    server.terminate()
    raise SystemExit(f"`kamiyo api` from {code} did not answer /healthz in 10 s")


def passed(run: dict) -> bool:
    return run["p99_ms"] is not None and run["p99_ms"] <= STREAM_TARGET_MS and not run["dropped"]


async def stream_series(codes: dict[str, Path], db: Path, work: Path, secret: str, engine, clients: int,
                        profile: Path | None) -> dict[str, list[dict]]:
    """For each checkout in `codes` (label → directory), a server of its own: 1,000 findings at 20/s, then 200 at
    each higher rate while p99 meets the target and none is dropped. The servers take turns at each step, so that
    a change in the machine's load falls on both alike; `profile` records the first run of the "" one."""
    servers = {label: await start_server(code, db, work) for label, code in codes.items()}
    runs: dict[str, list[dict]] = {label: [] for label in codes}
    offset = 1_000_000
    try:
        for count, rate in [(1_000, 20.0)] + [(200, r) for r in STREAM_RATES]:
            for label, (server, base) in servers.items():
                if runs[label] and not passed(runs[label][-1]):
                    continue
                offset += 10_000
                spy = profile if label == "" and not runs[label] else None
                runs[label].append(await stream_run(base, secret, engine, count, rate, offset, server.pid, clients,
                                                    spy))
    finally:
        for server, _base in servers.values():
            server.terminate()
            server.wait(timeout=20)
    return runs


def stream_rows(runs: list[dict], label: str) -> list[tuple[str, str]]:
    def ms(value: float | None) -> str:
        return "?" if value is None else f"{value:.0f} ms"

    rows = []
    for r in runs:
        why = f" ({'; '.join(r['why'])})" if r["why"] else ""
        behind = f" (the writer reached {r['achieved']:.0f}/s)" if r["achieved"] < 0.95 * r["rate"] else ""
        rows.append((f"stream, {SUBSCRIBERS:,} subscribers, {r['count']:,} findings at {r['rate']:.0f}/s{label}",
                     f"commit → receipt p50 {ms(r['p50_ms'])}, p99 {ms(r['p99_ms'])}, max {ms(r['max_ms'])} over "
                     f"{r['pairs']:,} receipts in {r['frames']:,} frames; {r['dropped']} subscriber(s) dropped{why}; "
                     f"CPU (share of one core) server {r['server_cpu']:.0%} (idle before: {r['idle']:.0%}), clients "
                     f"{r['clients_cpu']:.0%}, writer {r['writer_cpu']:.0%}{behind}"))
    sustained = [min(r["rate"], r["achieved"]) for r in runs if passed(r)]
    best = max(sustained, default=None)
    rows.append((f"stream: highest rate with p99 ≤ {STREAM_TARGET_MS} ms and none dropped{label}",
                 "none" if best is None else f"{best:.0f} findings/s"
                 + (" (the highest rate tried)" if best >= 0.95 * STREAM_RATES[-1] else "")))
    return rows


def watch_blocks(node, stop: threading.Event, seen: dict[int, float]) -> None:
    """When each block was first seen (every 5 ms); blocks mined between two looks get the later look's time,
    which understates their latency by at most one period."""
    last = None
    while not stop.is_set():
        head, now = int(node.rpc("eth_blockNumber"), 16), time.time()
        for number in range(head if last is None else last + 1, head + 1):
            seen.setdefault(number, now)
        last = head
        time.sleep(0.005)


async def end_to_end(workdir: Path, attacks: int) -> list[float]:
    receiver = await Receiver("bench-secret").start()
    db, config = workdir / "e2e.db", workdir / "e2e.toml"
    latencies = []
    try:
        with anvil(31337) as node:
            config.write_text(storage_toml(db) + chain_toml("local", node, ws=[node.ws], requests_per_second=100000)
                              + '\n[alerts]\nallow_networks = ["127.0.0.0/8"]\n'
                              + f'\n[[channels]]\ntype = "webhook"\nname = "soc"\nurl = "{receiver.url}"\n'
                                'secret = "bench-secret"\nmin_severity = "high"\nrate_per_minute = 60000\n')
            daemon = subprocess.Popen([sys.executable, "-m", "kamiyo.cli", "run", "--config", str(config)], cwd=REPO,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                async with asyncio.timeout(60):  # following the head before the first attack: steady state
                    while checkpoint(db, 31337) is None:
                        node.rpc("evm_mine")
                        await asyncio.sleep(0.2)
                stop, seen = threading.Event(), {}
                watcher = threading.Thread(target=watch_blocks, args=(node, stop, seen))
                watcher.start()
                try:
                    for _ in range(attacks):
                        attack = await asyncio.to_thread(run_reentrancy_drain, node)
                        key = attack.key_txs[0]
                        block = int(node.rpc("eth_getTransactionReceipt", [key])["blockNumber"], 16)
                        async with asyncio.timeout(30):
                            while not (hits := [r.delivery_id for r in receiver.received
                                                if r.finding["tx_hash"] == key]):
                                await asyncio.sleep(0.01)
                        latencies.append(1000 * (min(receiver.arrived[h] for h in hits) - seen[block]))
                finally:
                    stop.set()
                    watcher.join()
            finally:
                stop_daemon(daemon, timeout=20)
    finally:
        await receiver.stop()
    return sorted(latencies)


async def main_async(args) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="kamiyo-bench-api-") as tmp:
        work = Path(tmp)
        if args.stream:
            db = work / "api.db"
            secret, engine = await seed(db, 20_000)
            codes = ({" [baseline]": args.baseline} if args.baseline else {}) | {"": REPO}
            try:
                series = await stream_series(codes, db, work, secret, engine, args.clients, args.py_spy)
            finally:
                await engine.dispose()
            for label, runs in series.items():
                rows += stream_rows(runs, label)
            if args.baseline:
                now, then = series[""][0], series[" [baseline]"][0]
                rows.append(("stream at 20/s: this code / baseline",
                             f"p99 {now['p99_ms'] / then['p99_ms']:.2f}×, p50 {now['p50_ms'] / then['p50_ms']:.2f}×, "
                             f"server CPU {now['server_cpu'] / max(then['server_cpu'], 1e-9):.2f}×"))
        if args.e2e:
            latencies = await end_to_end(work, args.attacks)
            if latencies:
                p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
                rows.append((f"end to end, {len(latencies)} re-entrancy drains: block at the node → signed webhook",
                             f"p50 {latencies[len(latencies) // 2]:.0f} ms, p99 {p99:.0f} ms (target ≤ "
                             f"{E2E_TARGET_MS} ms: {'met' if p99 <= E2E_TARGET_MS else 'NOT met'})"))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--attacks", type=int, default=10)
    parser.add_argument("--clients", type=int, default=2, help="client processes holding the subscribers")
    parser.add_argument("--baseline", type=Path, metavar="DIR", help="another checkout to measure beside this one")
    parser.add_argument("--py-spy", type=Path, metavar="FILE", help="profile the server during the first burst")
    parser.add_argument("--no-stream", dest="stream", action="store_false")
    parser.add_argument("--no-e2e", dest="e2e", action="store_false")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args(argv)
    if args.baseline is not None and not (args.baseline / "kamiyo" / "cli.py").is_file():
        parser.error(f"--baseline {args.baseline}: no kamiyo/cli.py there")
    if args.py_spy is not None and not py_spy():
        parser.error("--py-spy: py-spy is not installed (.venv/bin/pip install py-spy)")
    if not (args.stream or args.e2e):
        parser.error("--no-stream and --no-e2e: nothing left to measure")
    if not 1 <= args.clients <= SUBSCRIBERS:
        parser.error(f"--clients: between 1 and {SUBSCRIBERS}")
    info = machine()
    rows = asyncio.run(main_async(args))
    print_table("API and alerts", info, rows, code=True)
    if not args.no_append:
        flags = "".join(f" {flag}" for flag, on in (("--no-stream", not args.stream), ("--no-e2e", not args.e2e))
                        if on) + (f" --baseline {args.baseline}" if args.baseline else "")
        append_section("API and alerts", info, rows, "SQLite in a temp dir; `kamiyo api` and `kamiyo run` as "
                       f"processes of their own, the subscribers in {args.clients} client process(es); "
                       f"`.venv/bin/python bench/api.py{flags}`",
                       notes=f"Targets: stream commit → receipt p99 ≤ {STREAM_TARGET_MS} ms with {SUBSCRIBERS:,} "
                             f"subscribers, none dropped; block → signed webhook p99 ≤ {E2E_TARGET_MS} ms.\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
