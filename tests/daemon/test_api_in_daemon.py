"""The API served by `kamiyo run` ([api] listen), on a real anvil chain: health and readiness, a key made with
`kamiyo apikey create`, a finding the daemon commits arriving on /v1/stream and then listed by /v1/findings, and
at the key's own webhook, registered through the API with a watchlist of the contract to be attacked (the daemon
has no configured channel: the key's webhook alone makes the worker deliver)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import aiohttp

from tests.alerts.receiver import Receiver
from tests.support.anvil import anvil, free_port, require_anvil
from tests.support.daemon import chain_toml, running_daemon_async, storage_toml, wait_checkpoint_async
from tests.support.scenarios import created_address, derived_account, run_reentrancy_drain

CHAIN_ID = 31_337


async def until_ok(session: aiohttp.ClientSession, url: str, timeout: float = 30) -> dict:
    async with asyncio.timeout(timeout):
        while True:
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return await response.json()
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)


async def test_the_daemon_serves_its_findings_live_and_by_query(tmp_path):
    require_anvil()
    db, config, port = tmp_path / "k.db", tmp_path / "k.toml", free_port()
    base = f"http://127.0.0.1:{port}"
    receiver = await Receiver("set when the webhook is made").start()
    with anvil(CHAIN_ID) as node:
        config.write_text(storage_toml(db) + f'\n[api]\nlisten = "127.0.0.1:{port}"\n'
                          + '\n[alerts]\nallow_networks = ["127.0.0.0/8"]\n' + chain_toml("local", node))
        made = subprocess.run([sys.executable, "-m", "kamiyo.cli", "apikey", "create", "soc", "--tier", "pro",
                               "--scope", "read", "--scope", "watchlists", "--format", "json", "--config",
                               str(config)], capture_output=True, text=True)
        assert made.returncode == 0, made.stderr
        secret = json.loads(made.stdout)["secret"]
        headers = {"Authorization": f"Bearer {secret}"}
        # the vault the scenario will deploy: its deployer's first contract
        vault = created_address(derived_account("reentrancy-drain", "deployer", int(node.rpc("eth_blockNumber"), 16)),
                                0)
        async with running_daemon_async(config) as daemon, aiohttp.ClientSession() as session:
            assert (await until_ok(session, base + "/healthz"))
            ready = await until_ok(session, base + "/readyz")
            assert ready, ready
            async with session.get(base + "/v1/findings") as response:
                assert response.status == 401
            async with session.post(base + "/v1/webhooks", json={"name": "soc", "url": receiver.url},
                                    headers=headers) as response:
                assert response.status == 201, await response.text()
                receiver.secret = (await response.json())["secret"]
            async with session.post(base + "/v1/watchlists", headers=headers, json={
                    "name": "our vault", "entries": [f"local:{vault}"], "min_severity": "high",
                    "channels": ["soc"]}) as response:
                assert response.status == 201, await response.text()
            async with session.ws_connect(base + "/v1/stream?min_severity=high", headers=headers) as ws:
                attack = await asyncio.to_thread(run_reentrancy_drain, node)
                async with asyncio.timeout(30):
                    while True:
                        frame = await ws.receive_json()
                        hits = [e for e in frame["events"] if e["finding"]["tx_hash"] == attack.key_txs[0]]
                        if hits:
                            break
            assert {e["finding"]["severity"] for e in hits} <= {"high", "critical"}
            await wait_checkpoint_async(db, CHAIN_ID, int(node.rpc("eth_blockNumber"), 16), timeout=30)
            async with session.get(base + "/v1/findings", params={"min_severity": "high", "type": "exploit"},
                                   headers=headers) as response:
                listed = await response.json()
            assert response.status == 200
            assert attack.key_txs[0] in {f["tx_hash"] for f in listed["findings"]}
            assert attack.roles["victim"] == vault
            async with asyncio.timeout(30):
                while not any(r.finding["tx_hash"] == attack.key_txs[0] for r in receiver.received):
                    await asyncio.sleep(0.1)
            assert all(r.signed and r.event == "finding.created" for r in receiver.received)
            assert {r.finding["severity"] for r in receiver.received} <= {"high", "critical"}
    await receiver.stop()
    assert daemon.returncode == 0, daemon.stderr_text[-2000:]
