"""Keeping up with a busy chain with every transaction analyzer on: 1 s blocks of 100 transactions, traced.

An anvil mines a block every second (`evm_setIntervalMining 1`); a feeder queues 100 ordinary transactions
(tests/support/scenarios.OrdinaryTraffic: ERC-20 transfers, V2 swaps both ways, liquidity added and removed,
vault deposits and withdrawals, WETH wraps) into each block. The daemon follows it over WebSocket heads with its
deployment finder on `trace_block`, so every block's traces are fetched and handed to the analyzers.

Two runs on fresh nodes and databases, the same traffic (same seed):
- baseline: every analyzer disabled in `[analyzers.<id>]` (the daemon only finds deployments);
- analyzers: every built-in analyzer on at its defaults (the product).
Then, in the analyzers run, `--attacks` re-entrancy drains are played at the head among the traffic, and each
one's latency is taken from its block first appearing at the node to its exploit finding being committed (both
watched from threads polling every 5 ms). Measured over the feeding window, per run: blocks and transactions processed, how far the checkpoint trails the
head (sampled every 0.25 s), the daemon's CPU time per block (/proc, utime + stime), and from its /metrics the
analysis stage's wall time per block and each analyzer's CPU time per block. Headroom is the block time over the
daemon's CPU per block (the pipeline is one event loop, so CPU per block is what bounds it); the extra cost of
the analyzers is the difference between the runs.

    .venv/bin/python bench/analyzers.py [--seconds 60] [--per-block 100] [--no-append]
"""

from __future__ import annotations

import argparse
import re
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import REPO, append_section, checkpoint, cpu_seconds, machine, print_table, stop_daemon  # noqa: E402
from kamiyo.analyzers.tx.registry import load_registry  # noqa: E402
from tests.support.anvil import anvil  # noqa: E402
from tests.support.scenarios import Batch, OrdinaryTraffic, run_reentrancy_drain  # noqa: E402

CHAIN_ID = 31337
BLOCK_TIME = 1.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config_text(db: Path, node, metrics_port: int, analyzers_on: bool, start: int) -> str:
    text = (f'[storage]\nurl = "sqlite:///{db}"\n\n[metrics]\nlisten = "127.0.0.1:{metrics_port}"\n\n'
            f'[[chains]]\nname = "local"\nchain_id = {CHAIN_ID}\nrpc = ["{node.http}"]\nws = ["{node.ws}"]\n'
            f"start_block = {start}\nrequests_per_second = 100000\n")
    if not analyzers_on:
        text += "".join(f"\n[analyzers.{analyzer_id}]\nenabled = false\n" for analyzer_id in load_registry())
    return text


def scrape(port: int) -> dict[str, float]:
    """The sums and counts of the analysis histograms, by metric and label."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    out = {}
    for line in text.splitlines():
        match = re.match(r'(kamiyo_analy[sz]\w+_(?:sum|count))\{([^}]*)\} ([0-9.e+-]+)', line)
        if match:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', match[2]))
            key = labels.get("analyzer") or labels.get("step")
            out[f"{match[1]}:{key}"] = float(match[3])
    return out


def feed(node, traffic: OrdinaryTraffic, per_block: int, seconds: float, stop: threading.Event,
         sent: list[int]) -> None:
    """Queue `per_block` transactions once per block time, for `seconds`."""
    batch = Batch(traffic.session, per_block)
    deadline = time.monotonic() + seconds
    tick = time.monotonic()
    while time.monotonic() < deadline and not stop.is_set():
        traffic.queue(batch, per_block)
        sent.append(len(batch.send()))
        tick += BLOCK_TIME
        time.sleep(max(0.0, tick - time.monotonic()))


def watch_blocks(node, stop: threading.Event, seen: dict[int, float]) -> None:
    """First time (monotonic) each block number is seen at the node, polled every 5 ms."""
    while not stop.is_set():
        number = int(node.rpc("eth_blockNumber"), 16)
        seen.setdefault(number, time.monotonic())
        time.sleep(0.005)


def watch_findings(db: Path, stop: threading.Event, found: dict[str, float]) -> None:
    """First time (monotonic) each transaction's high or critical exploit finding is committed, polled every 5 ms."""
    while not stop.is_set():
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            for (tx_hash,) in con.execute("SELECT tx_hash FROM findings WHERE type = 'exploit' AND severity IN "
                                          "('high', 'critical')"):
                found.setdefault(tx_hash, time.monotonic())
        time.sleep(0.005)


def attack_latency(node, db: Path, traffic: OrdinaryTraffic, per_block: int) -> dict:
    """A re-entrancy drain played at the head among the ordinary traffic: from its block appearing at the node to
    the daemon's committed exploit finding on its transaction (both watched from threads of their own)."""
    stop, seen, found, sent = threading.Event(), {}, {}, []
    threads = [threading.Thread(target=watch_blocks, args=(node, stop, seen)),
               threading.Thread(target=watch_findings, args=(db, stop, found)),
               threading.Thread(target=feed, args=(node, traffic, per_block, 3600, stop, sent))]
    for thread in threads:
        thread.start()
    try:
        key = run_reentrancy_drain(node).key_txs[0]
        block = int(node.rpc("eth_getTransactionReceipt", [key])["blockNumber"], 16)
        deadline = time.monotonic() + 30
        while key not in found and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    if key not in found or block not in seen:
        return {"latency_ms": None}
    return {"latency_ms": 1000 * (found[key] - seen[block]), "block": block}


def run(analyzers_on: bool, seconds: float, per_block: int, workdir: Path, attacks: int = 0) -> dict:
    name = "analyzers" if analyzers_on else "baseline"
    db, config = workdir / f"{name}.db", workdir / f"{name}.toml"
    with anvil(CHAIN_ID, extra=["--gas-limit", "100000000"]) as node:
        traffic = OrdinaryTraffic(node, seed=7, per_block=per_block)
        start = int(node.rpc("eth_blockNumber"), 16) + 1
        port = free_port()
        config.write_text(config_text(db, node, port, analyzers_on, start))
        log = open(workdir / f"{name}.log", "w")
        daemon = subprocess.Popen([sys.executable, "-m", "kamiyo.cli", "run", "--config", str(config)], cwd=REPO,
                                  stdout=subprocess.DEVNULL, stderr=log)
        try:
            while checkpoint(db, CHAIN_ID) is None:
                node.rpc("evm_mine")
                time.sleep(0.2)
                if daemon.poll() is not None:
                    raise SystemExit(f"the daemon exited: see {workdir / (name + '.log')}")
            node.rpc("evm_setAutomine", [False])
            node.rpc("evm_setIntervalMining", [int(BLOCK_TIME)])
            time.sleep(2 * BLOCK_TIME)
            first_head = int(node.rpc("eth_blockNumber"), 16)
            before_metrics, cpu_before, t0 = scrape(port), cpu_seconds(daemon.pid), time.monotonic()
            stop, sent, lags = threading.Event(), [], []
            feeder = threading.Thread(target=feed, args=(node, traffic, per_block, seconds, stop, sent))
            feeder.start()
            while feeder.is_alive():
                head, done = int(node.rpc("eth_blockNumber"), 16), checkpoint(db, CHAIN_ID) or 0
                lags.append(head - done)
                time.sleep(0.25)
            feeder.join()
            last_head = int(node.rpc("eth_blockNumber"), 16)
            deadline = time.monotonic() + 60
            while (checkpoint(db, CHAIN_ID) or 0) < last_head and time.monotonic() < deadline:
                time.sleep(0.05)
            drained = time.monotonic() - t0 - seconds
            cpu, after_metrics = cpu_seconds(daemon.pid) - cpu_before, scrape(port)
            counts = [int(node.rpc("eth_getBlockTransactionCountByNumber", [hex(n)]), 16)
                      for n in range(first_head + 1, last_head + 1)]
            latencies = [attack_latency(node, db, traffic, per_block)["latency_ms"] for _ in range(attacks)] \
                if analyzers_on else []
        finally:
            stop_daemon(daemon, timeout=20)
            log.close()
    blocks = max(1, last_head - first_head)
    delta = {k: after_metrics.get(k, 0) - before_metrics.get(k, 0) for k in after_metrics}
    per_analyzer = {k.split(":", 1)[1]: 1000 * v / max(1, delta.get(k.replace("_sum", "_count"), 0))
                    for k, v in delta.items() if k.startswith("kamiyo_analyzer_seconds_sum")}
    stage = {step: 1000 * delta.get(f"kamiyo_analysis_seconds_sum:{step}", 0)
             / max(1, delta.get(f"kamiyo_analysis_seconds_count:{step}", 0)) for step in ("fetch", "run")}
    lags.sort()
    return {"name": name, "blocks": blocks, "txs": sum(counts), "sent": sum(sent),
            "lag_p50": lags[len(lags) // 2] if lags else 0, "lag_p99": lags[int(len(lags) * 0.99)] if lags else 0,
            "lag_max": max(lags, default=0), "cpu_ms_per_block": 1000 * cpu / blocks, "drained_s": drained,
            "stage_ms": stage, "per_analyzer_ms": per_analyzer, "latencies": latencies}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--per-block", type=int, default=100)
    parser.add_argument("--attacks", type=int, default=3, help="re-entrancy drains played at the head, for latency")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args(argv)
    info = machine()
    with tempfile.TemporaryDirectory(prefix="kamiyo-bench-analyzers-") as tmp:
        base = run(False, args.seconds, args.per_block, Path(tmp))
        full = run(True, args.seconds, args.per_block, Path(tmp), args.attacks)
    rows = []
    for r in (base, full):
        rows += [
            (f"{r['name']}: blocks / transactions", f"{r['blocks']} / {r['txs']} ({r['txs'] / r['blocks']:.0f} per "
                                                    f"block; {r['sent']} sent)"),
            (f"{r['name']}: checkpoint lag behind head (blocks)",
             f"p50 {r['lag_p50']}, p99 {r['lag_p99']}, max {r['lag_max']}; caught up {r['drained_s']:.1f} s after "
             f"the last block"),
            (f"{r['name']}: daemon CPU per block", f"{r['cpu_ms_per_block']:.0f} ms → headroom "
                                                   f"{1000 * BLOCK_TIME / max(r['cpu_ms_per_block'], 1e-9):.1f}×"),
        ]
    rows.append(("analyzers: analysis per block, wall (fetch ahead / run in order)",
                 f"{full['stage_ms']['fetch']:.1f} ms / {full['stage_ms']['run']:.1f} ms"))
    for analyzer_id, ms in sorted(full["per_analyzer_ms"].items()):
        rows.append((f"analyzers: {analyzer_id} CPU per block", f"{ms:.2f} ms"))
    found = sorted(x for x in full["latencies"] if x is not None)
    missed = len(full["latencies"]) - len(found)
    rows.append(("analyzers: re-entrancy drain at the head, its block at the node → exploit finding committed",
                 (f"median {found[len(found) // 2]:.0f} ms, max {found[-1]:.0f} ms over {len(found)} attack(s) among "
                  f"the traffic" if found else "none found") + (f"; {missed} NOT FOUND within 30 s" if missed else "")))
    extra = full["cpu_ms_per_block"] - base["cpu_ms_per_block"]
    rows.append(("cost of the analyzers (CPU per block, analyzers − baseline)",
                 f"{extra:+.0f} ms ({full['cpu_ms_per_block'] / max(base['cpu_ms_per_block'], 1e-9):.2f}× the "
                 f"baseline)"))
    print_table("Transaction analyzers", info, rows, code=True)
    if not args.no_append:
        append_section("Transaction analyzers at 1 s blocks", info, rows,
                       f"anvil interval mining 1 s, {args.per_block} ordinary transactions per block for "
                       f"{args.seconds:.0f} s, traces by trace_block, heads over WebSocket; "
                       f"`.venv/bin/python bench/analyzers.py`",
                       notes="Target: keep up (lag stays within a block or two) with every analyzer on. Headroom "
                             "= block time / daemon CPU per block. Per-analyzer figures are CPU time from "
                             "`kamiyo_analyzer_seconds`; the stage figure includes fetching the block, receipts "
                             "and balances.\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
