"""Catch-up throughput: the daemon's per-chain pipeline on a real anvil chain, against a sequential web3.py loop.

A chain is built first: anvil with automining off, and per block ~20 transactions sent in one JSON-RPC batch from
the unlocked dev accounts (value transfers, one contract created by a transaction and one by a factory deployed
at the start, so internal creations exist), then `evm_mine`. The runtime code deployed is real: contracts from the
bytecode corpus, each wrapped in a constructor that returns it unchanged, so code sizes and analysis are those of
mainnet contracts (`--code tiny` deploys a 10-byte contract instead, when there is no corpus).

Then, over the same chain:
- baseline: sync `Web3(HTTPProvider)`, block by block: eth_getBlockByNumber, trace_block (what the finder picks on
  anvil), eth_getCode for each new contract; no analysis, no database;
- product: from an empty SQLite database, `upgrade`, then `ChainFollower(EvmChainSource, DeploymentStage)` as the
  supervisor assembles it, `start()` and `step()` until the checkpoint is the head. The RPC budget is set to
  100,000 requests/s so that what is measured is the pipeline, not the configured rate limit.

The number of deployments stored must equal the number created, or the run fails. It prints a table and appends
a dated section to BENCHMARKS.md; it must not change anything else (the chain and databases live in a temp dir).

    .venv/bin/python bench/catchup.py [--blocks N] [--txs N] [--repeat N] [--code corpus|tiny] [--profile N]
                                      [--data DIR] [--no-append]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gzip
import http.client
import io
import json
import logging
import pstats
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

# The repo, for bench.common and tests.support.anvil (the one place that knows how anvil is started).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import DEFAULT_DATA, REPO, append_section, cpu_seconds, machine, print_table  # noqa: E402
from tests.support.anvil import anvil  # noqa: E402

CHAIN_ID = 31337
TARGET_RATE = 200  # blocks/s over >= 2,000 blocks of ~20 transactions and ~2 deployments each (the issue)
RPS = 100_000  # the client's request budget: far above what is reached, so the budget is not what is measured
MAX_RUNTIME = 24_576  # EIP-170
GAS_LIMIT = 60_000_000  # per block: two of the largest corpus contracts and the transfers fit with room to spare
CHECK_CHUNK = 500  # calls per batch when the built chain is checked

# Constructor prefix that returns the code after it: CODECOPY(0, 12, n); RETURN(0, n). PUSH2 n is patched in.
COPIER = bytes.fromhex("610000" "80" "600c" "6000" "39" "6000" "f3")
# Factory runtime: CALLDATACOPY(0, 0, size); CREATE(0, 0, size) with the calldata as init code; revert on failure.
FACTORY = bytes.fromhex("36600060003736600060" "00f0" "15601157" "00" "5b600080fd")
# For --code tiny: MSTORE(0, 42); RETURN(0, 32), whatever the call.
TINY = bytes.fromhex("602a60005260206000f3")


def anvil_args(blocks: int) -> list[str]:
    """Every block's state kept, in memory: the pipeline reads code as of each block (`eth_getCode` at that block),
    and by default anvil keeps only the recent states, moving older ones to disk (slow) and then dropping them."""
    return ["--gas-limit", str(GAS_LIMIT), "--accounts", "10", "--prune-history", str(blocks + 100)]


def initcode(runtime: bytes) -> bytes:
    return COPIER[:1] + len(runtime).to_bytes(2, "big") + COPIER[3:] + runtime


def load_runtimes(kind: str, data: Path, count: int, seed: int = 20261201) -> list[bytes]:
    """`count` runtime codes: a fixed-seed sample of the corpus (mainnet sizes), or the tiny contract."""
    if kind == "tiny":
        return [TINY] * count
    codes = []
    for path in sorted(data.glob("*.jsonl.gz")):
        with gzip.open(path, "rt") as fh:
            codes.extend(bytes.fromhex(rec["code"][2:]) for rec in map(json.loads, fh))
    codes = [c for c in codes if 0 < len(c) <= MAX_RUNTIME]
    rng = random.Random(seed)
    return [rng.choice(codes) for _ in range(count)]


def creation_gas(runtime: bytes, data_len: int) -> int:
    """Generous: intrinsic + calldata + code deposit + memory, and the 1/64 a CREATE keeps back from its child."""
    words = (len(runtime) + 31) // 32
    return int(1.1 * (60_000 + 16 * data_len + 200 * len(runtime) + 2 * (3 * words + words * words // 512)))


# ---------------------------------------------------------------------------------------------- chain


class Rpc:
    """JSON-RPC over one kept-alive HTTP connection, for building and checking the chain (not measured)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        self.ids = 0

    def batch(self, calls: list[tuple[str, list]]) -> list:
        items = []
        for method, params in calls:
            self.ids += 1
            items.append({"jsonrpc": "2.0", "id": self.ids, "method": method, "params": params})
        self.conn.request("POST", "/", json.dumps(items), {"Content-Type": "application/json"})
        answers = {a["id"]: a for a in json.loads(self.conn.getresponse().read())}
        out = []
        for item in items:
            answer = answers[item["id"]]
            if "error" in answer:
                raise RuntimeError(f"chain build: {item['method']} failed: {answer['error']}")
            out.append(answer["result"])
        return out

    def call(self, method: str, params: list | None = None):
        return self.batch([(method, params or [])])[0]


def build_chain(rpc: Rpc, blocks: int, txs: int, runtimes: list[bytes]) -> dict:
    """Block 1 deploys the factory; blocks 2..blocks+1 each hold `txs` transactions, two of them creations."""
    t0 = time.perf_counter()
    accounts = rpc.call("eth_accounts")
    nonces = dict.fromkeys(accounts, 0)

    def tx(sender: str, **fields) -> tuple[str, list]:
        body = {"from": sender, "nonce": hex(nonces[sender]), **fields}
        nonces[sender] += 1
        return "eth_sendTransaction", [body]

    rpc.call("evm_setAutomine", [False])
    factory_tx = rpc.batch([tx(accounts[0], data="0x" + initcode(FACTORY).hex(),
                               gas=hex(creation_gas(FACTORY, len(initcode(FACTORY)))))])[0]
    rpc.call("evm_mine")
    factory = rpc.call("eth_getTransactionReceipt", [factory_tx])["contractAddress"]
    creations, sent, code_bytes = [factory_tx], 1, 0
    for b in range(blocks):
        calls = []
        for i in range(txs):
            sender = accounts[(b * txs + i) % len(accounts)]
            if i < 2:
                runtime = runtimes[2 * b + i]
                data = "0x" + initcode(runtime).hex()
                gas = hex(creation_gas(runtime, len(data) // 2))
                calls.append(tx(sender, data=data, gas=gas) if i == 0 else tx(sender, to=factory, data=data, gas=gas))
                code_bytes += len(runtime)
            else:
                receiver = accounts[(b + i + 1) % len(accounts)]
                calls.append(tx(sender, to=receiver, value="0x1", gas=hex(21_000)))
        hashes = rpc.batch(calls)
        creations += hashes[:2]
        sent += len(hashes)
        rpc.call("evm_mine")
    build_s = time.perf_counter() - t0
    head = int(rpc.call("eth_blockNumber"), 16)
    check(rpc, head, blocks, txs, creations)
    return {"head": head, "blocks": head + 1, "txs": sent, "created": len(creations), "build_s": build_s,
            "tx_rate": sent / build_s, "mean_code": code_bytes / max(1, len(creations) - 1)}


def check(rpc: Rpc, head: int, blocks: int, txs: int, creations: list[str]) -> None:
    """Every transaction mined where it was meant to be, every creation succeeded: or the run stops here."""
    if head != blocks + 1:
        raise SystemExit(f"chain build: head is {head}, expected {blocks + 1}")
    counts = []
    for first in range(2, head + 1, CHECK_CHUNK):
        counts += rpc.batch([("eth_getBlockTransactionCountByNumber", [hex(n)])
                             for n in range(first, min(head, first + CHECK_CHUNK - 1) + 1)])
    short = [n for n, c in enumerate(counts, start=2) if int(c, 16) != txs]
    if short:
        raise SystemExit(f"chain build: {len(short)} blocks do not hold {txs} transactions (first: {short[0]})")
    for first in range(0, len(creations), CHECK_CHUNK):
        for receipt in rpc.batch([("eth_getTransactionReceipt", [h]) for h in creations[first:first + CHECK_CHUNK]]):
            if receipt is None or receipt["status"] != "0x1":  # the factory reverts when its CREATE fails
                raise SystemExit(f"chain build: creation failed: {receipt}")


# -------------------------------------------------------------------------------------------- baseline


def baseline(url: str, head: int) -> dict:
    """The obvious loop: one synchronous call after another, block by block."""
    from web3 import Web3

    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 60}))
    found = calls = 0
    t0, cpu0 = time.perf_counter(), time.process_time()
    for n in range(head + 1):
        w3.eth.get_block(n)
        traces = w3.provider.make_request("trace_block", [hex(n)])["result"]
        calls += 2
        for t in traces:
            if t.get("type") == "create" and not t.get("error") and t.get("result"):
                w3.eth.get_code(Web3.to_checksum_address(t["result"]["address"]), block_identifier=n)
                found += 1
                calls += 1
    seconds = time.perf_counter() - t0
    return {"blocks": head + 1, "seconds": seconds, "rate": (head + 1) / seconds, "found": found, "calls": calls,
            "cpu_share": (time.process_time() - cpu0) / seconds}


# --------------------------------------------------------------------------------------------- product


async def assemble(chain, client, engine, analyzers: bool):
    """The daemon's per-chain pipeline, built by the function kamiyo/daemon/supervisor.py `follow_chain` calls, with
    the shared Linker loaded as `run` loads it, and (as `run` does by default) every built-in transaction analyzer
    at its defaults. When that assembly changes shape, this is the one place to follow."""
    from kamiyo.analyzers.tx.registry import load_registry
    from kamiyo.analyzers.tx.runner import AnalyzerSet
    from kamiyo.daemon.linking import Linker
    from kamiyo.daemon.pipeline import build_pipeline

    chosen = AnalyzerSet(cls() for cls in load_registry(include_plugins=False).values()) if analyzers else None
    return build_pipeline(chain, client, engine, await Linker.load(engine), chosen)


def count_calls(client, counts: Counter) -> None:
    """Count JSON-RPC calls by method (a batch counts each of its calls), to say what the pipeline asked for."""
    call, batch = client.call, client.batch

    async def counted_call(method, params=None):
        counts[method] += 1
        return await call(method, params)

    async def counted_batch(calls, **kwargs):
        counts.update(method for method, _ in calls)
        return await batch(calls, **kwargs)

    client.call, client.batch = counted_call, counted_batch


def timed(fn: Callable[..., Awaitable], totals: dict, key: str) -> Callable[..., Awaitable]:
    async def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return await fn(*args, **kwargs)
        finally:
            totals[key] += time.perf_counter() - t0

    return wrapper


async def catch_up(url: str, head: int, workdir: Path, analyzers: bool = True) -> dict:
    """One catch-up from an empty database to `head`; returns its figures and what it stored."""
    from sqlalchemy import inspect, text

    from kamiyo.chains.rpc import RpcClient
    from kamiyo.config import ChainSettings, StorageSettings
    from kamiyo.storage.engine import create_engine
    from kamiyo.storage.migrations import upgrade

    db = Path(tempfile.mkdtemp(dir=workdir)) / "kamiyo.db"
    engine = create_engine(StorageSettings(url=f"sqlite:///{db}"))
    chain = ChainSettings(name="bench", chain_id=CHAIN_ID, rpc=[url], start_block=0, requests_per_second=RPS)
    split, calls = {"headers": 0.0, "stage": 0.0}, Counter()
    try:
        async with RpcClient(chain.rpc, requests_per_second=chain.requests_per_second) as client:
            t0 = time.perf_counter()
            await upgrade(engine)
            follower = await assemble(chain, client, engine, analyzers)
            setup_s = time.perf_counter() - t0
            stage = follower.work
            count_calls(client, calls)
            # Only sums time spent in fetching headers and in the stage; the pipeline's logic is untouched.
            follower.source.blocks = timed(follower.source.blocks, split, "headers")
            follower.work = timed(follower.work, split, "stage")
            t0, cpu0 = time.perf_counter(), time.process_time()
            await follower.start()
            while follower.cursor is None or follower.cursor[0] < head:
                if not await follower.step():
                    raise SystemExit(f"catch-up stalled at {follower.cursor}")
            seconds = time.perf_counter() - t0
            cpu = time.process_time() - cpu0
            requests = sum(e.requests for e in client.endpoints)
        async with engine.connect() as conn:
            tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
            count = {t: (await conn.execute(text(f"SELECT count(*) FROM {t}"))).scalar_one()
                     for t in ("deployments", "code_classes", "findings") if t in tables}
            internal = (await conn.execute(text("SELECT count(*) FROM deployments WHERE internal"))).scalar_one()
    finally:
        await engine.dispose()
    return {"blocks": head + 1, "seconds": seconds, "rate": (head + 1) / seconds, "stored": count["deployments"],
            "internal": internal, "classes": count.get("code_classes"), "findings": count.get("findings"),
            "deployment_rate": count["deployments"] / seconds, "setup_s": setup_s, "method": stage.finder.method,
            "cpu_share": cpu / seconds, "requests": requests, "calls": calls, "headers_s": split["headers"],
            "stage_s": split["stage"], "db_mib": db.stat().st_size / 2**20}


def profile_run(url: str, head: int, workdir: Path, top: int, analyzers: bool) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    asyncio.run(catch_up(url, head, workdir, analyzers))
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    out.write("Kamiyo's own functions, by cumulative time:\n")
    stats.sort_stats("cumulative").print_stats(f"{REPO}/kamiyo/", top)
    out.write("Everything, by time spent in the function itself:\n")
    stats.strip_dirs().sort_stats("tottime").print_stats(top)
    return out.getvalue().replace(f"{REPO}/", "")


# ----------------------------------------------------------------------------------------------- report


def summarize(chain: dict, base: dict, runs: list[dict], code: str, analyzers: bool) -> list[tuple[str, str]]:
    product = runs[len(runs) // 2]
    ratio = product["rate"] / base["rate"]
    rest = product["seconds"] - product["headers_s"] - product["stage_s"]
    return [
        ("chain", f"{chain['blocks']:,} blocks (0..{chain['head']:,}), {chain['txs']:,} transactions, "
         f"{chain['created']:,} contracts created ({chain['blocks'] - 2:,} of them by a factory); runtime code: "
         + (f"corpus sample, mean {chain['mean_code']:,.0f} B" if code == "corpus" else "tiny, 10 B")),
        ("chain build", f"{chain['build_s']:.1f} s ({chain['tx_rate']:,.0f} tx/s, one batch of sends and one "
         "evm_mine per block)"),
        ("baseline (sync web3.py: block, trace, code; no analysis, no DB)",
         f"{base['rate']:,.1f} blocks/s ({base['seconds']:.1f} s, {base['calls']:,} calls; client on a core "
         f"{base['cpu_share']:.0%} of the wall time)"),
        ("transaction analyzers", "every built-in at its defaults (as `kamiyo run`)" if analyzers else
         "off (--no-analyzers): deployments only"),
        ("product, catch-up from an empty database",
         f"{product['rate']:,.1f} blocks/s, median of {len(runs)} (range {runs[0]['rate']:,.1f}–"
         f"{runs[-1]['rate']:,.1f}; {product['seconds']:.1f} s; {product['requests']:,} HTTP requests; "
         f"process on a core {product['cpu_share']:.0%} of the wall time, anvil {product['anvil_cpu_share']:.0%})"),
        ("product deployments/s", f"{product['deployment_rate']:,.1f} ({product['stored']:,} stored, "
         f"{product['internal']:,} internal; source {product['method']})"),
        ("ratio product / baseline", f"{ratio:,.1f}× blocks/s"),
        ("time split (product)", f"block headers {product['headers_s'] / product['seconds']:.0%}, deployment stage "
         f"(traces, code, analysis) {product['stage_s'] / product['seconds']:.0%}, commits and the rest "
         f"{rest / product['seconds']:.0%}"),
        ("calls per block (product)", ", ".join(f"{m} {n / product['blocks']:.2f}" for m, n in
                                                 product["calls"].most_common())),
        ("database", f"upgrade and linker load {product['setup_s'] * 1000:,.0f} ms; {product['db_mib']:,.1f} MiB "
         f"after the run; {product['classes'] or 0:,} code classes, {product['findings'] or 0:,} findings"),
        ("request budget", f"requests_per_second = {RPS:,} (so the configured budget is not what is measured)"),
        (f"target ≥ {TARGET_RATE} blocks/s over ≥ 2,000 blocks", "met" if product["rate"] >= TARGET_RATE
         and chain["blocks"] >= 2000 else "NOT met"),
    ]


# ------------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--blocks", type=int, default=2000, help="blocks of transactions after the factory's")
    ap.add_argument("--txs", type=int, default=20, help="transactions per block, two of them creations")
    ap.add_argument("--repeat", type=int, default=3, help="catch-ups from an empty database; the median is reported")
    ap.add_argument("--code", choices=("corpus", "tiny"), default="corpus", help="runtime code deployed")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="directory of *.jsonl.gz bytecode files")
    ap.add_argument("--profile", type=int, default=0, metavar="N", help="also print a cProfile of one catch-up")
    ap.add_argument("--no-append", action="store_true", help="print only; leave BENCHMARKS.md alone")
    ap.add_argument("--no-analyzers", action="store_true", help="deployments only, as before the analyzers")
    args = ap.parse_args(argv)
    if args.blocks < 1 or args.txs < 2 or args.repeat < 1:
        print("catchup bench: --blocks and --repeat must be at least 1, --txs at least 2", file=sys.stderr)
        return 2
    if args.code == "corpus" and not any(args.data.glob("*.jsonl.gz")):
        print(f"catchup bench: no *.jsonl.gz bytecode files in {args.data} (pass --data DIR, or --code tiny)",
              file=sys.stderr)
        return 2

    from kamiyo import log

    log.configure(level=logging.ERROR)  # warnings and up would interleave with the table; errors still show
    info = machine()
    runtimes = load_runtimes(args.code, args.data.resolve(), 2 * args.blocks)
    with tempfile.TemporaryDirectory(prefix="kamiyo-catchup-") as tmp, \
            anvil(CHAIN_ID, extra=anvil_args(args.blocks)) as node:
        print(f"building {args.blocks:,} blocks of {args.txs} transactions on anvil ...", file=sys.stderr)
        chain = build_chain(Rpc(node.http), args.blocks, args.txs, runtimes)
        print(f"built in {chain['build_s']:.1f} s ({chain['tx_rate']:,.0f} tx/s); baseline ...", file=sys.stderr)
        base = baseline(node.http, chain["head"])
        runs = []
        for i in range(args.repeat):
            print(f"product, run {i + 1} of {args.repeat} ...", file=sys.stderr)
            anvil0, t0 = cpu_seconds(node.process.pid), time.perf_counter()
            run = asyncio.run(catch_up(node.http, chain["head"], Path(tmp), not args.no_analyzers))
            run["anvil_cpu_share"] = (cpu_seconds(node.process.pid) - anvil0) / (time.perf_counter() - t0)
            runs.append(run)
            if run["method"] != "trace_block":
                raise SystemExit(f"the finder chose {run['method']}; the baseline only does trace_block")
            if not run["stored"] == chain["created"] == base["found"]:
                raise SystemExit(f"DEPLOYMENT COUNT MISMATCH: {chain['created']} created, {run['stored']} stored "
                                 f"by Kamiyo, {base['found']} found by the baseline")
        profile = profile_run(node.http, chain["head"], Path(tmp), args.profile, not args.no_analyzers) \
            if args.profile else ""
    runs.sort(key=lambda r: r["rate"])
    lines = summarize(chain, base, runs, args.code, not args.no_analyzers)
    print_table("catch-up", info, lines)
    if profile:
        print(f"\ncProfile of one catch-up (top {args.profile}):\n{profile}")
    if not args.no_append:
        append_section("catchup", info, lines, "anvil from node_modules, SQLite in a temp dir. Reproduce: "
                       "`make bench` or `.venv/bin/python bench/catchup.py`.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
