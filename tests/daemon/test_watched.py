"""A watched contract's privileged change, found by the daemon on a real anvil chain: the `[[watch]]` entry, the
analysis stage's filtered logs, the privileged-change analyzer, a finding stored with the block."""

from __future__ import annotations

import json
import time

from eth_hash.auto import keccak

from tests.support.anvil import anvil, require_anvil
from tests.support.contracts import deploy, runtime_deployer, send
from tests.support.daemon import chain_toml, db_rows, running_daemon, storage_toml, wait_checkpoint

OWNERSHIP_TRANSFERRED = keccak(b"OwnershipTransferred(address,address)").hex()


def ownable_runtime() -> str:
    """Any call emits OwnershipTransferred(0x0, caller): LOG3(offset 0, size 0, topic0, 0, CALLER)."""
    return "33" + "6000" + "7f" + OWNERSHIP_TRANSFERRED + "6000" + "6000" + "a3" + "00"


def test_an_ownership_transfer_on_a_watched_contract_is_a_finding_and_on_another_none(tmp_path):
    require_anvil()
    db = tmp_path / "k.db"
    with anvil(1001) as node:
        owner, taker = (a.lower() for a in node.rpc("eth_accounts")[:2])
        watched = deploy(node, owner, runtime_deployer(ownable_runtime()))
        other = deploy(node, owner, runtime_deployer(ownable_runtime()))
        config = tmp_path / "k.toml"
        config.write_text(storage_toml(db) + chain_toml("alpha", node)
                          + f'\n[[watch]]\nchain = "alpha"\naddress = "{watched}"\nlabel = "treasury"\n')
        with running_daemon(config) as daemon:
            wait_checkpoint(db, 1001, int(node.rpc("eth_blockNumber"), 16), timeout=30)
            taken = send(node, taker, "0x", to=watched)
            send(node, taker, "0x", to=other)  # the same event from a contract nobody watches
            wait_checkpoint(db, 1001, int(node.rpc("eth_blockNumber"), 16), timeout=30)
            deadline = time.monotonic() + 10
            while not db_rows(db, "SELECT 1 FROM findings WHERE kind = 'privileged-change'") and \
                    time.monotonic() < deadline:
                time.sleep(0.05)
    assert daemon.returncode == 0, daemon.stderr_text[-2000:]
    rows = db_rows(db, "SELECT subject, severity, block_number, tx_hash, evidence FROM findings "
                       "WHERE kind = 'privileged-change'")
    assert len(rows) == 1, rows
    subject, severity, block, tx, evidence = rows[0]
    evidence = json.loads(evidence)
    assert (subject, severity, tx) == (watched, "high", taken["transactionHash"].lower())
    assert block == int(taken["blockNumber"], 16)
    assert evidence["label"] == "treasury" and evidence["args"]["newOwner"] == taker
