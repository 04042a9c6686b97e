"""The analyzers with each source of traces a node may offer, on one anvil carrying a re-entrancy drain.

`traces = "debug_trace"` makes the daemon read debug_traceBlockByNumber's call tracer (the dialect geth-style
nodes offer) instead of trace_block: the re-entrancy is found the same. `traces = "none"` is a node without
tracing: the re-entrancy analyzer, which needs traces, is skipped, said once in the log and counted on every
block in `kamiyo_analyzer_skipped`, and the chain goes on.
"""

from __future__ import annotations

import urllib.request

import pytest

from tests.support.anvil import anvil, free_port, require_anvil
from tests.support.daemon import chain_toml, db_rows, log_events, running_daemon, storage_toml, wait_checkpoint
from tests.support.scenarios import run_reentrancy_drain

CHAIN_ID = 31_337


@pytest.fixture(scope="module")
def chain():
    require_anvil()
    with anvil(CHAIN_ID) as node:
        yield node, run_reentrancy_drain(node)


def follow(node, folder, traces: str):
    db, port = folder / "k.db", free_port()
    config = folder / "k.toml"
    config.write_text(storage_toml(db) + f'\n[metrics]\nlisten = "127.0.0.1:{port}"\n'
                      + chain_toml("local", node, traces=traces))
    with running_daemon(config) as daemon:
        wait_checkpoint(db, CHAIN_ID, int(node.rpc("eth_blockNumber"), 16), timeout=60)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            metrics = response.read().decode()
    assert daemon.returncode == 0, daemon.stderr_text[-2000:]
    rows = db_rows(db, "SELECT kind, severity, tx_hash FROM findings WHERE status = 'active'")
    return rows, metrics, log_events(daemon.stderr_text)


def test_the_call_tracer_dialect_finds_the_reentrancy_as_trace_block_does(chain, tmp_path):
    node, attack = chain
    rows, metrics, _ = follow(node, tmp_path, "debug_trace")
    assert ("reentrancy", "critical", attack.key_txs[0]) in rows
    assert 'kamiyo_deployment_source{chain="local",method="debug_traceBlockByNumber"} 1.0' in metrics


def test_without_traces_the_trace_analyzers_are_skipped_counted_and_said_once(chain, tmp_path):
    node, attack = chain
    rows, metrics, events = follow(node, tmp_path, "none")
    assert not [r for r in rows if r[0] == "reentrancy"]
    skipped = [line for line in metrics.splitlines()
               if line.startswith('kamiyo_analyzer_skipped_total{analyzer="reentrancy",reason="no-traces"}')]
    assert skipped and float(skipped[0].rsplit(" ", 1)[1]) >= attack.last_block  # every block, counted
    said = [e for e in events if e["event"] == "analyzer.skipped" and e.get("analyzer") == "reentrancy"]
    assert len(said) == 1
    assert 'method="receipts"} 1.0' in metrics
