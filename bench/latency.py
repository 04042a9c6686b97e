"""Head latency: how long after a block appears the daemon has committed the `fork-detected` finding it holds.

An anvil mines a block every second (`block_time=1`). An original (Uniswap V2's pair runtime) is deployed first by
one dev account; then, one per block, a fresh origin (an impersonated address funded with anvil_setBalance)
deploys one of three kinds of copy, round-robin, so that every deployment is its own finding (the fingerprint is
chain, origin, class):
- copy: the original's code byte for byte (a known class: identified, never sketched);
- variant: the original with three arithmetic opcodes swapped (a new class: sketched, queried against the
  similarity index and linked into the original's family as a near-clone);
- proxy: an EIP-1167 minimal proxy to the original (a proxy class; its family is the implementation's, which
  the stage looks up in the database).

The benchmark holds its own `newHeads` subscription and stamps each head's arrival (wall clock) as the block's
production time: block timestamps have a one-second grain. A deployment's latency is the timestamp of the
daemon's `finding.created` log line (written right after the block's transaction commits) minus that arrival;
the finding's `created_at` column (set when the finding is decided, before the commit) splits it in two.

Three runs, each on a fresh anvil and an empty SQLite database, the daemon started as `python -m kamiyo.cli run`:
- ws: heads by WebSocket subscription (the product's fast path);
- poll: the same configuration without `ws`, polling every `poll_interval = 1.0` s (the baseline);
- traced: ws again, the daemon run through a wrapper that times its RPC calls, analysis and commits, to show
  where the latency goes (reported separately; its own latency shows what the timing costs).
`requests_per_second = 100000`, so the configured request budget is not what is measured. The first deployments
of each run are a warm-up (first analysis, first statements prepared) and are reported apart.

It prints a table and appends a dated section to BENCHMARKS.md; it must not change anything else (nodes,
databases and logs live in a temp dir).

    .venv/bin/python bench/latency.py [--deployments N] [--traced N] [--warmup N] [--no-append]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import numpy as np

# The repo, for bench.common and tests.support (the one place that knows how anvil is started and code is wrapped).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import REPO, append_section, checkpoint, machine, print_table, stop_daemon  # noqa: E402
from tests.support import npm_artifacts  # noqa: E402
from tests.support.anvil import anvil  # noqa: E402
from tests.support.contracts import minimal_proxy_runtime, runtime_deployer  # noqa: E402

CHAIN_ID = 31337
TARGET_P99_MS = 300
RPS = 100_000  # the request budget: far above what is reached, so it is not what is measured
POLL_INTERVAL = 1.0
SEND_DELAY = 0.4  # s after a head before the next deployment is sent: mid-block, away from the daemon's work
KINDS = ("copy", "variant", "proxy")
ARITH = (0x01, 0x02, 0x03, 0x04, 0x10, 0x11, 0x14, 0x16, 0x17, 0x18)  # same stack shape: swappable
TX_GAS = 8_000_000
SETTLE_S = 15.0  # after the last deployment's block, how long the daemon may take to commit its finding


# ----------------------------------------------------------------------------------------------- the code


def variant(runtime: bytes, n: int) -> bytes:
    """The runtime with three arithmetic opcodes (outside PUSH data and the metadata trailer) swapped for others:
    another exact-clone class, still a near-clone of the original."""
    from kamiyo.analyzers.bytecode.metadata import find_trailers

    trailers = find_trailers(runtime)
    end = trailers[-1].start if trailers else len(runtime)
    positions, i = [], 0
    while i < end:
        op = runtime[i]
        if op in ARITH:
            positions.append(i)
        i += 1 + (op - 0x5F if 0x60 <= op <= 0x7F else 0)
    rng, code = random.Random(n), bytearray(runtime)
    for p in rng.sample(positions, 3):
        code[p] = rng.choice([o for o in ARITH if o != code[p]])
    return bytes(code)


@dataclass
class Plan:
    """What each run deploys, the same in every run: the init code of deployment i and its kind."""

    original: str  # init code (hex) of the original
    kinds: list[str]
    codes: list[str | None]  # None for a proxy: its init code names the original's address, known once deployed

    @classmethod
    def make(cls, count: int) -> Plan:
        from kamiyo.analyzers.bytecode.analysis import identify

        runtime = npm_artifacts.artifact("uniswap-v2-pair")
        kinds = [KINDS[i % len(KINDS)] for i in range(count)]
        codes, keys = [], {identify(runtime).skeleton_hash}
        for i, kind in enumerate(kinds):
            if kind == "copy":
                codes.append(runtime_deployer(runtime.hex()))
            elif kind == "variant":
                code = variant(runtime, i)
                key = identify(code).skeleton_hash
                if key in keys:
                    raise RuntimeError(f"variant {i} is not a class of its own")
                keys.add(key)
                codes.append(runtime_deployer(code.hex()))
            else:
                codes.append(None)
        return cls(runtime_deployer(runtime.hex()), kinds, codes)


def origin(i: int) -> str:
    return "0x" + f"b0{i:038x}"  # fresh addresses, far from precompiles and dev accounts


# ---------------------------------------------------------------------------------------------- JSON-RPC


async def rpc(session: aiohttp.ClientSession, url: str, method: str, params: list):
    async with session.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}) as resp:
        doc = await resp.json()
    if "error" in doc:
        raise RuntimeError(f"{method}: {doc['error']}")
    return doc["result"]


async def rpc_batch(session: aiohttp.ClientSession, url: str, calls: list[tuple[str, list]]) -> list:
    body = [{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(calls)]
    async with session.post(url, json=body) as resp:
        docs = {d["id"]: d for d in await resp.json()}
    for d in docs.values():
        if "error" in d:
            raise RuntimeError(f"batch item {d['id']}: {d['error']}")
    return [docs[i]["result"] for i in range(len(calls))]


async def wait_receipt(session, url: str, tx_hash: str, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (receipt := await rpc(session, url, "eth_getTransactionReceipt", [tx_hash])) is not None:
            if receipt["status"] != "0x1":
                raise RuntimeError(f"{tx_hash} reverted")
            return receipt
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{tx_hash} not mined within {timeout} s")


# ------------------------------------------------------------------------------------------------ one run


@dataclass
class Run:
    mode: str
    arrivals: dict[int, float] = field(default_factory=dict)  # block number -> head arrival, epoch s
    deployments: list[dict] = field(default_factory=list)  # kind, address, block, warmup
    decided: dict[str, float] = field(default_factory=dict)  # address -> findings.created_at, epoch s
    committed: dict[str, float] = field(default_factory=dict)  # address -> finding.created log time, epoch s
    spans: list = field(default_factory=list)  # traced run only: (label, t0, t1)
    errors: list[str] = field(default_factory=list)  # warnings and errors the daemon logged


def config_text(db: Path, node, mode: str) -> str:
    ws = f'ws = ["{node.ws}"]\n' if mode != "poll" else ""
    return (f'[storage]\nurl = "sqlite:///{db}"\n\n[[chains]]\nname = "anvil"\nchain_id = {CHAIN_ID}\n'
            f'rpc = ["{node.http}"]\n{ws}start_block = 0\npoll_interval = {POLL_INTERVAL}\n'
            f'requests_per_second = {RPS}\n')


def epoch(text: str) -> float:
    """A structlog ISO timestamp or an SQLite DateTime string (UTC, naive) as epoch seconds."""
    when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)).timestamp()


async def run_mode(mode: str, plan: Plan, warmup: int, work: Path) -> Run:
    out = Run(mode)
    db, log_path, spans_path = work / f"{mode}.db", work / f"{mode}.log", work / f"{mode}.spans.json"
    with anvil(CHAIN_ID, block_time=1, extra=["--auto-impersonate", "--prune-history", "128"]) as node:
        async with aiohttp.ClientSession() as session:
            url = node.http
            dev = (await rpc(session, url, "eth_accounts", []))[0]
            await rpc_batch(session, url, [("anvil_setBalance", [origin(i), hex(10**20)])
                                           for i in range(len(plan.kinds))])
            receipt = await wait_receipt(session, url, await rpc(session, url, "eth_sendTransaction", [
                {"from": dev, "data": "0x" + plan.original, "gas": hex(TX_GAS)}]))
            original = receipt["contractAddress"].lower()
            proxy_code = runtime_deployer(minimal_proxy_runtime(original))
            config = work / f"{mode}.toml"
            config.write_text(config_text(db, node, mode))
            command = [sys.executable, "-m", "kamiyo.cli", "run", "--config", str(config)]
            if mode == "traced":
                command = [sys.executable, str(Path(__file__).resolve()), "--traced-daemon", str(config),
                           str(spans_path)]
            with open(log_path, "w") as log_file:
                daemon = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=log_file)
            try:
                deadline = time.monotonic() + 60
                while (checkpoint(db, CHAIN_ID) or -1) < int(receipt["blockNumber"], 16):
                    if daemon.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"{mode}: the daemon did not catch up to the original: "
                                           f"{log_path.read_text()[-2000:]}")
                    await asyncio.sleep(0.1)
                hashes = await drive(session, node, plan, proxy_code, out)
                receipts = await rpc_batch(session, url, [("eth_getTransactionReceipt", [h]) for h in hashes])
                for i, r in enumerate(receipts):
                    if r is None or r["status"] != "0x1":
                        raise RuntimeError(f"{mode}: deployment {i} ({plan.kinds[i]}) failed: {r}")
                    out.deployments.append({"kind": plan.kinds[i], "address": r["contractAddress"].lower(),
                                            "block": int(r["blockNumber"], 16), "warmup": i < warmup})
                per_block = {}
                for d in out.deployments:
                    per_block[d["block"]] = per_block.get(d["block"], 0) + 1
                if max(per_block.values()) > 1:
                    print(f"  note: {sum(v > 1 for v in per_block.values())} blocks held two deployments",
                          file=sys.stderr)
                last = max(d["block"] for d in out.deployments)
                deadline = time.monotonic() + SETTLE_S
                while (checkpoint(db, CHAIN_ID) or -1) < last and time.monotonic() < deadline:
                    await asyncio.sleep(0.2)
                await asyncio.sleep(0.5)
            finally:
                stop_daemon(daemon, timeout=30)
    read_results(out, db, log_path, spans_path if mode == "traced" else None)
    return out


async def drive(session, node, plan: Plan, proxy_code: str, out: Run) -> list[str]:
    """One deployment per block: wait for a head, wait SEND_DELAY, send. Returns the transaction hashes."""
    heads: asyncio.Queue[int] = asyncio.Queue()
    ws = await session.ws_connect(node.ws)
    await ws.send_json({"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["newHeads"]})

    async def listen() -> None:
        async for msg in ws:
            arrived = time.time()  # first thing: this stamp is the block's production time
            doc = json.loads(msg.data)
            if doc.get("method") == "eth_subscription":
                number = int(doc["params"]["result"]["number"], 16)
                out.arrivals[number] = arrived
                heads.put_nowait(number)

    listener = asyncio.create_task(listen())
    hashes = []
    try:
        await heads.get()
        while not heads.empty():  # start on a fresh head, not a stale one
            heads.get_nowait()
        for i, kind in enumerate(plan.kinds):
            await heads.get()
            await asyncio.sleep(SEND_DELAY)
            code = proxy_code if kind == "proxy" else plan.codes[i]
            hashes.append(await rpc(session, node.http, "eth_sendTransaction", [
                {"from": origin(i), "data": "0x" + code, "gas": hex(TX_GAS)}]))
            if (i + 1) % 30 == 0:
                print(f"  {out.mode}: {i + 1}/{len(plan.kinds)} deployments sent", file=sys.stderr)
        for _ in range(2):  # the last deployment's block and one more, so its arrival is stamped
            await heads.get()
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
        await ws.close()
    return hashes


def read_results(out: Run, db: Path, log_path: Path, spans_path: Path | None) -> None:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        for subject, created_at in con.execute("SELECT subject, created_at FROM findings WHERE kind = ?",
                                               ("fork-detected",)):
            out.decided[subject] = epoch(created_at)
    for line in log_path.read_text().splitlines():
        if not line.startswith("{"):
            out.errors.append(line)
            continue
        event = json.loads(line)
        if event.get("event") == "finding.created":
            out.committed[event["subject"]] = epoch(event["timestamp"])
        elif event.get("level") in ("warning", "error", "critical"):
            out.errors.append(event.get("event", line))
    if spans_path is not None and spans_path.exists():
        out.spans = json.loads(spans_path.read_text())


# ------------------------------------------------------------------------------------- the traced daemon
# Runs as the daemon process of the traced run: the real `kamiyo run`, with its RPC calls, analysis and commits
# timed by wrappers set up before it starts. The spans are written when it exits.


def traced_daemon(config: str, spans_path: str) -> int:
    import kamiyo.chains.heads as heads
    import kamiyo.chains.rpc as rpc_module
    import kamiyo.daemon.deployments as stage
    import kamiyo.daemon.follower as follower
    import kamiyo.daemon.linking as linking
    from kamiyo.cli import main as kamiyo_main

    spans: list[tuple[str, float, float]] = []

    def wrap_async(owner, name: str, label) -> None:
        original = getattr(owner, name)

        async def timed(*args, **kwargs):
            t0 = time.time()
            try:
                return await original(*args, **kwargs)
            finally:
                spans.append((label(args), t0, time.time()))

        setattr(owner, name, timed)

    def wrap_sync(owner, name: str, label: str) -> None:
        original = getattr(owner, name)

        def timed(*args, **kwargs):
            t0 = time.time()
            try:
                return original(*args, **kwargs)
            finally:
                spans.append((label, t0, time.time()))

        setattr(owner, name, timed)

    wrap_async(rpc_module.RpcClient, "call", lambda a: "rpc " + a[1])
    wrap_async(rpc_module.RpcClient, "batch", lambda a: "rpc " + "+".join(sorted({m for m, _ in a[1]})))
    wrap_async(stage.DeploymentStage, "__call__", lambda a: "stage")
    for name in ("commit_blocks", "commit_block"):  # whichever the follower uses
        if hasattr(follower, name):
            wrap_async(follower, name, lambda a: "commit")
    wrap_sync(linking.Linker, "observe", "analysis")
    wrap_sync(linking.Linker, "fork_findings", "analysis")
    notify = heads.HeadSignal.notify

    def noted(self, number: int) -> None:
        now = time.time()
        spans.append(("notify", now, now))
        notify(self, number)

    heads.HeadSignal.notify = noted
    try:
        return kamiyo_main(["run", "--config", config])
    finally:
        Path(spans_path).write_text(json.dumps(spans))


# -------------------------------------------------------------------------------------------- the figures


def pct(values, q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if len(values) else float("nan")


def latencies(run: Run, of: str = "committed", warmup: bool = False, kind: str | None = None) -> list[float]:
    """Latencies in ms of the deployments that have a finding, warm-up ones or measured ones."""
    stamps = run.committed if of == "committed" else run.decided
    return [1000 * (stamps[d["address"]] - run.arrivals[d["block"]]) for d in run.deployments
            if d["warmup"] == warmup and (kind is None or d["kind"] == kind)
            and d["address"] in stamps and d["block"] in run.arrivals]


def missing(run: Run) -> int:
    return sum(1 for d in run.deployments if not d["warmup"] and d["address"] not in run.committed)


def summary(run: Run) -> dict:
    c = latencies(run)
    return {"n": len(c), "missing": missing(run), "p50": pct(c, 50), "p95": pct(c, 95), "p99": pct(c, 99),
            "max": max(c, default=float("nan")), "min": min(c, default=float("nan")),
            "decided_p50": pct(latencies(run, "decided"), 50),
            "warmup_max": max(latencies(run, warmup=True), default=float("nan")),
            "by_kind": {k: pct(latencies(run, kind=k), 50) for k in KINDS}, "errors": run.errors}


def breakdown(run: Run) -> dict:
    """Per measured deployment, where its head-to-commit time went, from the traced daemon's spans; medians."""
    parts: dict[str, list[float]] = {}
    totals, gaps = [], []
    for d in run.deployments:
        if d["warmup"] or d["address"] not in run.committed or d["block"] not in run.arrivals:
            continue
        start, end = run.arrivals[d["block"]], run.committed[d["address"]]
        mine = [(label, t0, t1) for label, t0, t1 in run.spans if start - 0.05 <= t0 <= end]
        notify = next((t0 for label, t0, _ in mine if label == "notify"), None)
        sums: dict[str, float] = {}
        for label, t0, t1 in mine:
            if label not in ("notify", "stage"):
                sums[label] = sums.get(label, 0.0) + 1000 * (t1 - t0)
        if notify is not None:
            sums["ws delivery (daemon's notify - our head)"] = 1000 * (notify - start)
            firsts = [t0 for label, t0, _ in mine if label.startswith("rpc ") and t0 >= notify]
            if firsts:
                sums["wake-up (notify to first RPC)"] = 1000 * (min(firsts) - notify)
        stages = [(t0, t1) for label, t0, t1 in mine if label == "stage"]
        nested = sum(t1 - t0 for label, t0, t1 in mine if label not in ("notify", "stage", "commit")
                     and any(s0 <= t0 and t1 <= s1 for s0, s1 in stages))
        sums["stage, other (DB reads, rows, Python)"] = 1000 * (sum(t1 - t0 for t0, t1 in stages) - nested)
        covered = _union([(max(t0, start), min(t1, end)) for label, t0, t1 in mine if label != "notify"])
        totals.append(1000 * (end - start))
        gaps.append(1000 * (end - start) - 1000 * covered)
        for k, v in sums.items():
            parts.setdefault(k, []).append(v)
    return {"n": len(totals), "total_p50": pct(totals, 50), "untimed_p50": pct(gaps, 50),
            "parts": {k: (pct(v, 50), pct(v, 95), len(v))
                      for k, v in sorted(parts.items(), key=lambda kv: -pct(kv[1], 50))}}


def _union(intervals: list[tuple[float, float]]) -> float:
    total, reach = 0.0, float("-inf")
    for a, b in sorted(i for i in intervals if i[1] > i[0]):
        if b > reach:
            total += b - max(a, reach)
            reach = b
    return total


def ms(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:,.1f}"


def lines_for(ws: dict, poll: dict, traced: dict | None, parts: dict | None, count: int) -> list[tuple[str, str]]:
    def row(s: dict) -> str:
        return (f"p50 {ms(s['p50'])}, p95 {ms(s['p95'])}, p99 {ms(s['p99'])}, max {ms(s['max'])} ms "
                f"(min {ms(s['min'])}; n = {s['n']}, {s['missing']} without a finding)")

    out = [
        ("deployments per run", f"{count} measured, one per block (block_time 1 s), kinds copy/variant/proxy "
                                f"round-robin, each a new origin so each is a fork-detected finding"),
        ("ws (subscription), head → finding committed", row(ws)),
        ("poll (poll_interval 1.0 s), same", row(poll)),
        ("ratio poll / ws", f"p50 {poll['p50'] / ws['p50']:,.1f}×, p99 {poll['p99'] / ws['p99']:,.1f}×"),
        ("ws, head → finding decided (created_at)", f"p50 {ms(ws['decided_p50'])} ms; commit and log after it: "
                                                    f"p50 {ms(ws['p50'] - ws['decided_p50'])} ms"),
        ("ws p50 by kind", ", ".join(f"{k} {ms(v)} ms" for k, v in ws["by_kind"].items())),
        ("warm-up (excluded) max", f"ws {ms(ws['warmup_max'])} ms, poll {ms(poll['warmup_max'])} ms"),
    ]
    if traced and parts:
        out.append(("traced ws run (timing wrappers on)", row(traced)))
        split = "; ".join(f"{k} {ms(p50)}" for k, (p50, _p95, _n) in parts["parts"].items())
        out.append(("where it goes, traced, medians (ms)", f"total {ms(parts['total_p50'])}: {split}; "
                                                           f"untimed (loop, logging) {ms(parts['untimed_p50'])}"))
    out += [
        ("request budget", f"requests_per_second = {RPS:,} (so the configured budget is not what is measured)"),
        (f"target p99 ≤ {TARGET_P99_MS} ms (ws)", "met" if ws["p99"] <= TARGET_P99_MS and not ws["missing"]
         else "NOT met"),
    ]
    return out


# ------------------------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--deployments", type=int, default=240, metavar="N", help="measured deployments per run")
    ap.add_argument("--traced", type=int, default=120, metavar="N", help="measured deployments in the traced "
                    "run (0: no traced run)")
    ap.add_argument("--warmup", type=int, default=6, metavar="N", help="deployments before the measured ones")
    ap.add_argument("--no-append", action="store_true", help="print only; leave BENCHMARKS.md alone")
    ap.add_argument("--traced-daemon", nargs=2, metavar=("CONFIG", "SPANS"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.traced_daemon:
        return traced_daemon(*args.traced_daemon)
    if args.deployments < 1 or args.warmup < 0 or args.traced < 0:
        print("latency bench: --deployments must be at least 1, --warmup and --traced at least 0", file=sys.stderr)
        return 2

    info = machine()
    results = {}
    with tempfile.TemporaryDirectory(prefix="kamiyo-latency-") as tmp:
        for mode, count in (("ws", args.deployments), ("poll", args.deployments), ("traced", args.traced)):
            if count == 0:
                continue
            plan = Plan.make(args.warmup + count)
            print(f"{mode}: {args.warmup} warm-up + {count} deployments, one a block "
                  f"(~{(args.warmup + count) / 60:.1f} min)", file=sys.stderr)
            results[mode] = asyncio.run(run_mode(mode, plan, args.warmup, Path(tmp)))
            s = summary(results[mode])
            print(f"  {mode}: p50 {ms(s['p50'])} ms, p99 {ms(s['p99'])} ms, max {ms(s['max'])} ms, n {s['n']}, "
                  f"missing {s['missing']}", file=sys.stderr)
            for problem in s["errors"][:5]:
                print(f"  daemon said: {problem}", file=sys.stderr)
    ws, poll = summary(results["ws"]), summary(results["poll"])
    traced = summary(results["traced"]) if "traced" in results else None
    parts = breakdown(results["traced"]) if "traced" in results else None
    lines = lines_for(ws, poll, traced, parts, args.deployments)
    print_table("latency", info, lines, code=True)
    if parts:
        print("\n  traced breakdown (ms; p50, p95, deployments with that part):")
        for key, (p50, p95, n) in parts["parts"].items():
            print(f"    {key:<44} {ms(p50):>8} {ms(p95):>8}  {n}")
    if not args.no_append:
        append_section("latency", info, lines, f"code {info['code']}; anvil from node_modules (block_time 1), SQLite "
                       "in a temp dir, the daemon as `python -m kamiyo.cli run`. Reproduce: "
                       "`.venv/bin/python bench/latency.py`.")
    return 0 if not ws["missing"] else 1


if __name__ == "__main__":
    sys.exit(main())
