"""Daemon memory: the resident set of `kamiyo run` while it ingests 100,000 deployments, clones included.

The chain is built first, on anvil with mining off, and timed:
- block 1: a loop factory (hand-assembled below: each call makes N EIP-1167 clones of the implementation named
  in its calldata) and the first corpus contracts, which the clones will point at;
- then per block: one factory call making `--clones-per-block` clones (implementations rotating over
  `IMPLEMENTATIONS` corpus contracts), and the share of the `--classes` corpus contracts that falls on that block
  (real mainnet runtime code from the bytecode corpus, deployed unchanged), so the lineage index has real content.
anvil keeps only the last KEPT_STATES states, in memory (`--prune-history`: nothing goes to disk). It keeps each
block's state as a full copy, so keeping all of them grows with blocks × accounts: tried with every state kept,
it held 6 GB by block 800 of 2,000 and was stopped. The daemon reads a contract's code as of its block; for an
older block anvil answers "block out of range" and the daemon asks for the code at the head instead (its own
fallback for a node without that state, `deployments.code_at_head`, counted in the table); code does not change
on this chain, so the same bytes are ingested.

Then the daemon starts, as `python -m kamiyo.cli run`, on an empty SQLite database with `start_block = 0`, and
catches up. /proc/PID/status is sampled every second: VmRSS (resident now) and VmHWM (the peak so far); the
number of deployments ingested is what the committed checkpoint's block brings the chain's total to (catch-up
commits groups of blocks, so the count moves in steps). The baseline, in the same run: the daemon's RSS once it
has started on the empty database, and the RSS of the same daemon restarted on the full database (the lineage
loaded from storage, no chain work), which tells what catching up left behind from what the data itself needs.

The database must hold every deployment the chain made (at least 100,000 by default), or the run fails. It prints
a table and appends a dated section to BENCHMARKS.md; it must not change anything else (node, database and logs
live in a temp dir).

    .venv/bin/python bench/memory.py [--clones N] [--clones-per-block N] [--classes N] [--data DIR] [--no-append]
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

# The repo, for bench.common and tests.support (the one place that knows how anvil is started and code is wrapped).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import DEFAULT_DATA, REPO, append_section, checkpoint, machine, print_table, stop_daemon  # noqa: E402
from tests.support.anvil import anvil  # noqa: E402
from tests.support.contracts import runtime_deployer, word  # noqa: E402

CHAIN_ID = 31337
RPS = 100_000  # the request budget: far above what is reached, so it is not what is measured
MIN_DEPLOYMENTS = 100_000
MILESTONES = (10_000, 50_000, 100_000)
IMPLEMENTATIONS = 8  # corpus contracts the clones point at
MAX_RUNTIME = 24_576  # EIP-170
GAS_LIMIT = 300_000_000
CLONE_GAS = 42_000  # one CREATE of a 55-byte init code that deposits 45 bytes, and the loop around it
SAMPLE_S = 1.0
KEPT_STATES = 64  # anvil's --prune-history: see the module docstring

# Clone factory runtime. CODECOPY the 55-byte clone init code kept at TEMPLATE_AT into memory[0:55]; CALLDATACOPY
# the implementation (calldata word 0, its low 20 bytes) over memory[20:40]; n = calldata word 1; then n times
# CREATE(0, 0, 55), reverting the whole call if one fails, so a successful call made exactly n clones.
TEMPLATE_AT = 0x31
FACTORY_BODY = (
    "6037" f"60{TEMPLATE_AT:02x}" "6000" "39"  # codecopy(0, TEMPLATE_AT, 55)
    "6014" "600c" "6014" "37"  # calldatacopy(20, 12, 20)
    "6020" "35"  # n = calldataload(32)
    "5b" "80" "15" "6029" "57"  # 0x11 loop: if n == 0 goto 0x29
    "6037" "6000" "6000" "f0"  # create(0, 0, 55)
    "15" "602b" "57"  # if it failed goto 0x2b
    "6001" "90" "03" "6011" "56"  # n -= 1; goto 0x11
    "5b" "00"  # 0x29: stop
    "5b" "6000" "6000" "fd"  # 0x2b: revert(0, 0)
)
CLONE_INIT = "3d602d80600a3d3981f3" "363d3d373d3d3d363d73" + "00" * 20 + "5af43d82803e903d91602b57fd5bf3"
assert len(FACTORY_BODY) // 2 == TEMPLATE_AT and len(CLONE_INIT) // 2 == 55


# ---------------------------------------------------------------------------------------------- JSON-RPC


class Rpc:
    """Synchronous JSON-RPC over one kept-alive HTTP connection, for building the chain (not the code measured)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
        self.ids = 0

    def _post(self, body) -> object:
        self.conn.request("POST", "/", json.dumps(body), {"Content-Type": "application/json"})
        return json.loads(self.conn.getresponse().read())

    def call(self, method: str, params: list | None = None):
        self.ids += 1
        doc = self._post({"jsonrpc": "2.0", "id": self.ids, "method": method, "params": params or []})
        if "error" in doc:
            raise RuntimeError(f"{method}: {doc['error']}")
        return doc["result"]

    def batch(self, calls: list[tuple[str, list]]) -> list:
        if not calls:
            return []
        first = self.ids + 1
        self.ids += len(calls)
        docs = {d["id"]: d for d in self._post([{"jsonrpc": "2.0", "id": first + i, "method": m, "params": p}
                                                 for i, (m, p) in enumerate(calls)])}
        out = []
        for i, (method, _params) in enumerate(calls):
            doc = docs[first + i]
            if "error" in doc:
                raise RuntimeError(f"{method}: {doc['error']}")
            out.append(doc["result"])
        return out

    def close(self) -> None:
        self.conn.close()


# ------------------------------------------------------------------------------------------------- chain


def load_runtimes(data: Path, count: int, seed: int = 20261201) -> list[bytes]:
    """`count` runtime codes, a fixed-seed sample of the corpus: deployable as they are (EIP-170, EIP-3541)."""
    codes = []
    for path in sorted(data.glob("*.jsonl.gz")):
        with gzip.open(path, "rt") as fh:
            for rec in map(json.loads, fh):
                code = bytes.fromhex(rec["code"].removeprefix("0x"))
                if 0 < len(code) <= MAX_RUNTIME and code[0] != 0xEF:
                    codes.append(code)
    if len(codes) < count:
        raise SystemExit(f"memory bench: the corpus in {data} has {len(codes)} deployable contracts, "
                         f"{count} asked for")
    return random.Random(seed).sample(codes, count)


@dataclass
class Chain:
    blocks: int = 0  # the last block number
    deployments: int = 0
    clones: int = 0
    classes_deployed: int = 0
    cumulative: dict[int, int] = field(default_factory=dict)  # block number -> deployments up to and with it
    transactions: int = 0
    seconds: float = 0.0


def deploy_tx(sender: str, runtime: bytes) -> dict:
    return {"from": sender, "data": "0x" + runtime_deployer(runtime.hex()), "gas": hex(70_000 + 230 * len(runtime))}


def build_chain(rpc: Rpc, runtimes: list[bytes], clones: int, per_block: int) -> Chain:
    """Mine the chain described in the module docstring; every receipt is checked."""
    chain, started = Chain(), time.perf_counter()
    accounts = rpc.call("eth_accounts")
    deployers, caller = accounts[:8], accounts[8]
    factory_code = bytes.fromhex(FACTORY_BODY + CLONE_INIT)
    first = [deploy_tx(accounts[9], factory_code)] + [deploy_tx(deployers[i % 8], runtimes[i])
                                                      for i in range(IMPLEMENTATIONS)]
    receipts = mine(rpc, chain, first, creations=len(first))
    factory = receipts[0]["contractAddress"]
    impls = [r["contractAddress"] for r in receipts[1:]]
    rest = runtimes[IMPLEMENTATIONS:]
    blocks = -(-clones // per_block)
    for b in range(blocks):
        n = min(per_block, clones - b * per_block)
        txs = [{"from": caller, "to": factory, "data": "0x" + word(impls[b % len(impls)]) + f"{n:064x}",
                "gas": hex(60_000 + CLONE_GAS * n)}]
        share = rest[b * len(rest) // blocks : (b + 1) * len(rest) // blocks]
        txs += [deploy_tx(deployers[(b + i) % 8], code) for i, code in enumerate(share)]
        mine(rpc, chain, txs, creations=n + len(share))
        chain.clones += n
        if (b + 1) % 200 == 0:
            print(f"  built {b + 1}/{blocks} blocks, {chain.deployments:,} deployments, "
                  f"{time.perf_counter() - started:.0f} s", file=sys.stderr)
    chain.classes_deployed = len(runtimes)
    chain.seconds = time.perf_counter() - started
    return chain


def mine(rpc: Rpc, chain: Chain, txs: list[dict], creations: int) -> list[dict]:
    """Send `txs` in one batch, mine one block, check that all went into it and succeeded."""
    hashes = rpc.batch([("eth_sendTransaction", [tx]) for tx in txs])
    rpc.call("evm_mine")
    receipts = rpc.batch([("eth_getTransactionReceipt", [h]) for h in hashes])
    number = chain.blocks + 1
    for tx, r in zip(txs, receipts):
        if r is None or r["status"] != "0x1" or int(r["blockNumber"], 16) != number:
            raise RuntimeError(f"block {number}: a transaction failed or was not mined in it: "
                               f"{tx.get('to') or 'deployment'} -> {r and r['status']}")
    chain.blocks = number
    chain.deployments += creations
    chain.transactions += len(txs)
    chain.cumulative[number] = chain.deployments
    return receipts


# ------------------------------------------------------------------------------------------------ daemon


def status(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) in MiB."""
    values = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def logged(path: Path, event: str) -> bool:
    return any(f'"event": "{event}"' in line for line in path.read_text().splitlines())


@dataclass
class Sample:
    t: float
    rss: float
    hwm: float
    block: int | None
    ingested: int


def start_daemon(config: Path, log_path: Path) -> subprocess.Popen:
    with open(log_path, "w") as log_file:
        return subprocess.Popen([sys.executable, "-m", "kamiyo.cli", "run", "--config", str(config)], cwd=REPO,
                                stdout=subprocess.DEVNULL, stderr=log_file)


def wait_started(daemon: subprocess.Popen, log_path: Path, timeout: float = 60) -> float:
    """Seconds until the daemon logged daemon.started."""
    t0 = time.monotonic()
    while not logged(log_path, "daemon.started"):
        if daemon.poll() is not None or time.monotonic() - t0 > timeout:
            raise RuntimeError(f"the daemon did not start: {log_path.read_text()[-2000:]}")
        time.sleep(0.02)
    return time.monotonic() - t0


def catch_up(daemon: subprocess.Popen, db: Path, log_path: Path, chain: Chain) -> tuple[list[Sample], float, float]:
    """Sample until the checkpoint is the chain's last block; returns the samples, the seconds from start to
    daemon.started, and the catch-up seconds (daemon.started to the last checkpoint seen)."""
    t0 = time.monotonic()
    start_s = wait_started(daemon, log_path)
    first = status(daemon.pid)
    samples = [Sample(time.monotonic() - t0, *first, None, 0)]
    print(f"  {'s':>6} {'block':>7} {'ingested':>9} {'VmRSS MiB':>10} {'VmHWM MiB':>10}", file=sys.stderr)
    done_at = None
    while True:
        time.sleep(SAMPLE_S)
        if daemon.poll() is not None:
            raise RuntimeError(f"the daemon exited with {daemon.returncode}: {log_path.read_text()[-3000:]}")
        block = checkpoint(db, CHAIN_ID)
        rss, hwm = status(daemon.pid)
        s = Sample(time.monotonic() - t0, rss, hwm, block, chain.cumulative.get(block, 0) if block else 0)
        samples.append(s)
        if len(samples) % 5 == 0 or block == chain.blocks:
            print(f"  {s.t:6.0f} {block if block is not None else '-':>7} {s.ingested:>9,} {rss:>10,.0f} "
                  f"{hwm:>10,.0f}", file=sys.stderr)
        if block == chain.blocks:
            if done_at is None:
                done_at = s.t
            elif s.t - done_at >= 3 * SAMPLE_S:  # a few idle samples at the head: what stays resident
                break
    return samples, start_s, done_at - start_s


def restart_rss(config: Path, log_path: Path) -> tuple[float, float, float]:
    """The daemon restarted on the full database: (seconds to daemon.started, VmRSS and VmHWM 3 s after)."""
    daemon = start_daemon(config, log_path)
    try:
        start_s = wait_started(daemon, log_path)
        time.sleep(3)
        rss, hwm = status(daemon.pid)
    finally:
        stop_daemon(daemon, timeout=60)
    return start_s, rss, hwm


def db_counts(db: Path) -> dict:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        one = lambda sql: con.execute(sql).fetchone()[0]  # noqa: E731
        return {
            "deployments": one("SELECT count(*) FROM deployments"),
            "internal": one("SELECT count(*) FROM deployments WHERE internal"),
            "classes": one("SELECT count(*) FROM code_classes"),
            "sketched": one("SELECT count(*) FROM code_classes WHERE sketch IS NOT NULL"),
            "links": one("SELECT count(*) FROM class_links"),
            "findings": one("SELECT count(*) FROM findings"),
        }


def db_bytes(db: Path) -> dict[str, int]:
    """Sizes of the file and its WAL as the daemon left them, then of the file once the WAL is checkpointed into it."""
    def size(suffix: str) -> int:
        path = Path(str(db) + suffix)
        return path.stat().st_size if path.exists() else 0

    out = {"db": size(""), "-wal": size("-wal")}
    con = sqlite3.connect(db)
    try:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        con.close()
    out["checkpointed"] = size("")
    return out


# -------------------------------------------------------------------------------------------- the figures


def at_milestone(samples: list[Sample], count: int) -> Sample | None:
    return next((s for s in samples if s.ingested >= count), None)


def summarize(chain: Chain, anvil_mib: float, samples: list[Sample], start_s: float, catchup_s: float,
              restart: tuple[float, float, float], counts: dict, size: dict[str, int], disk: tuple[str, str],
              per_block: int, at_head: int) -> list[tuple[str, str]]:
    start, last = samples[0], samples[-1]
    peak = max(s.hwm for s in samples)
    marks = []
    for m in MILESTONES:
        s = at_milestone(samples, m)
        marks.append(f"≥ {m:,}: {s.rss:,.0f} MiB (at {s.ingested:,}, {s.t:.0f} s)" if s else f"{m:,}: not reached")
    growth = (last.rss - start.rss) / max(1, counts["deployments"]) * 2**20
    return [
        ("chain", f"{chain.blocks:,} blocks, {chain.transactions:,} transactions, {chain.deployments:,} contracts "
                  f"created: {chain.clones:,} EIP-1167 clones ({per_block} a block, by one factory call, over "
                  f"{IMPLEMENTATIONS} implementations), {chain.classes_deployed:,} corpus contracts, 1 factory"),
        ("chain build", f"{chain.seconds:.1f} s ({chain.deployments / chain.seconds:,.0f} deployments/s, "
                        f"{chain.transactions / chain.seconds:,.0f} tx/s; one send batch, one evm_mine and one "
                        f"receipt batch per block); anvil RSS after it {anvil_mib:,.0f} MiB (last {KEPT_STATES} "
                        f"states kept)"),
        ("catch-up", f"{catchup_s:.1f} s from daemon.started to the last block "
                     f"({counts['deployments'] / catchup_s:,.0f} deployments/s, {chain.blocks / catchup_s:,.0f} "
                     f"blocks/s); process start to daemon.started {start_s:.2f} s; code read at the head "
                     f"(state pruned) for {at_head:,} deployments"),
        ("RSS at daemon.started, empty DB (baseline)", f"{start.rss:,.0f} MiB"),
        ("RSS after N deployments ingested", "; ".join(marks)),
        ("RSS at the head, idle, after all", f"{last.rss:,.0f} MiB ({last.ingested:,} ingested; "
                                             f"{last.rss / start.rss:,.2f}× the baseline, {growth:,.0f} B per "
                                             f"deployment above it)"),
        ("peak RSS (VmHWM)", f"{peak:,.0f} MiB"),
        ("restarted on the full DB", f"{restart[1]:,.0f} MiB 3 s after daemon.started (VmHWM {restart[2]:,.0f} MiB; "
                                     f"lineage loaded in {restart[0]:.2f} s from process start)"),
        ("database", f"{counts['deployments']:,} deployments ({counts['internal']:,} internal), "
                     f"{size['checkpointed'] / 2**20:,.1f} MiB once its WAL is checkpointed "
                     f"({size['checkpointed'] / max(1, counts['deployments']):,.0f} B per deployment; as the daemon "
                     f"left it: {size['db'] / 2**20:,.1f} MiB file + {size['-wal'] / 2**20:,.1f} MiB WAL)"),
        ("lineage", f"{counts['classes']:,} code classes ({counts['sketched']:,} with a sketch), "
                    f"{counts['links']:,} class links, {counts['findings']:,} findings"),
        ("disk (df /, used before → after)", f"{disk[0]} → {disk[1]}"),
        ("request budget", f"requests_per_second = {RPS:,} (so the configured budget is not what is measured)"),
        (f"≥ {MIN_DEPLOYMENTS:,} deployments in the DB", "yes" if counts["deployments"] >= MIN_DEPLOYMENTS else "NO"),
    ]


def samples_table(samples: list[Sample]) -> str:
    """About a dozen of the samples, evenly spaced, the last always among them, as a markdown table."""
    step = max(1, len(samples) // 12)
    picked = samples[::step] + ([samples[-1]] if (len(samples) - 1) % step else [])
    shown = "every sample" if step == 1 else f"every {step}th sample"
    rows = [f"| {s.t:.0f} | {s.block if s.block is not None else '-'} | {s.ingested:,} | {s.rss:,.0f} | "
            f"{s.hwm:,.0f} |\n" for s in picked]
    return (f"RSS while catching up (sampled every second; {shown} shown):\n\n"
            "| s | checkpoint | ingested | VmRSS MiB | VmHWM MiB |\n| ---: | ---: | ---: | ---: | ---: |\n"
            + "".join(rows))


def df_used() -> str:
    usage = shutil.disk_usage("/")
    return f"{usage.used / 2**30:,.1f} GiB"


# ------------------------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clones", type=int, default=100_000, metavar="N", help="EIP-1167 clones to create")
    ap.add_argument("--clones-per-block", type=int, default=50, metavar="N")
    ap.add_argument("--classes", type=int, default=3_000, metavar="N", help="corpus contracts to deploy")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="directory of *.jsonl.gz bytecode files")
    ap.add_argument("--no-append", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = ap.parse_args(argv)
    if args.clones < 1 or args.clones_per_block < 1 or args.classes < IMPLEMENTATIONS:
        print(f"memory bench: --clones and --clones-per-block must be at least 1, --classes at least "
              f"{IMPLEMENTATIONS}", file=sys.stderr)
        return 2
    data = args.data.resolve()
    if not data.is_dir() or not any(data.glob("*.jsonl.gz")):
        print(f"memory bench: no *.jsonl.gz bytecode files in {data} (pass --data DIR)", file=sys.stderr)
        return 2

    info, disk_before = machine(), df_used()
    runtimes = load_runtimes(data, args.classes)
    blocks = -(-args.clones // args.clones_per_block) + 1
    extra = ["--no-mining", "--gas-limit", str(GAS_LIMIT), "--accounts", "10", "--prune-history", str(KEPT_STATES)]
    with tempfile.TemporaryDirectory(prefix="kamiyo-memory-") as tmp, anvil(CHAIN_ID, extra=extra) as node:
        work = Path(tmp)
        rpc = Rpc(node.http)
        print(f"building the chain: {args.clones:,} clones, {args.classes:,} corpus contracts, {blocks:,} blocks",
              file=sys.stderr)
        try:
            chain = build_chain(rpc, runtimes, args.clones, args.clones_per_block)
        finally:
            rpc.close()
        anvil_mib = status(node.process.pid)[0]
        print(f"  built in {chain.seconds:.1f} s; anvil RSS {anvil_mib:,.0f} MiB; disk used {df_used()}",
              file=sys.stderr)
        db, config = work / "kamiyo.db", work / "kamiyo.toml"
        config.write_text(f'[storage]\nurl = "sqlite:///{db}"\n\n[[chains]]\nname = "anvil"\nchain_id = {CHAIN_ID}\n'
                          f'rpc = ["{node.http}"]\nstart_block = 0\npoll_interval = 1.0\n'
                          f'requests_per_second = {RPS}\n')
        print("catching up from an empty database", file=sys.stderr)
        daemon = start_daemon(config, work / "run.log")
        try:
            samples, start_s, catchup_s = catch_up(daemon, db, work / "run.log", chain)
        finally:
            stop_daemon(daemon, timeout=60)
        problems = [line for line in (work / "run.log").read_text().splitlines()
                    if '"level": "error"' in line or '"level": "warning"' in line or not line.startswith("{")]
        for line in problems[:5]:
            print(f"  daemon said: {line[:300]}", file=sys.stderr)
        at_head = sum(json.loads(line).get("contracts", 0) for line in (work / "run.log").read_text().splitlines()
                      if '"deployments.code_at_head"' in line)
        size, counts = db_bytes(db), db_counts(db)
        restart = restart_rss(config, work / "restart.log")
        disk_after = df_used()
    if counts["deployments"] != chain.deployments:
        print(f"memory bench: FAILED: the database holds {counts['deployments']:,} deployments, the chain made "
              f"{chain.deployments:,}", file=sys.stderr)
        return 1
    lines = summarize(chain, anvil_mib, samples, start_s, catchup_s, restart, counts, size,
                      (disk_before, disk_after), args.clones_per_block, at_head)
    print_table("memory", info, lines, code=True)
    if counts["deployments"] < MIN_DEPLOYMENTS:
        print(f"memory bench: FAILED: {counts['deployments']:,} deployments in the database, fewer than "
              f"{MIN_DEPLOYMENTS:,}", file=sys.stderr)
        return 1
    if not args.no_append:
        append_section("memory", info, lines, f"code {info['code']}; anvil from node_modules, SQLite in a temp dir, "
                       "the daemon as `python -m kamiyo.cli run` catching up from block 0. Reproduce: "
                       "`.venv/bin/python bench/memory.py`.", notes=samples_table(samples))
    return 0


if __name__ == "__main__":
    sys.exit(main())
