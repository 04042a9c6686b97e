"""A team's watchlist, end to end on anvil: Uniswap's team watches its pair on one chain; while the daemon runs,
another team deploys the PancakeSwap fork's pairs on another chain. The team hears of the fork of its code (the
pair's fork family) on its channel, which takes nothing but its watchlists' findings; a watchlist added with the
CLI while the daemon runs takes effect without a restart; findings about unrelated code reach nobody."""

from __future__ import annotations

import asyncio

import pytest

from kamiyo.cli import main
from tests.alerts.receiver import Receiver
from tests.support import npm_artifacts
from tests.support.anvil import anvil, require_anvil
from tests.support.contracts import create_pair, creation_code, deploy, runtime_deployer, word
from tests.support.daemon import chain_toml, db_rows, running_daemon_async, storage_toml, wait_checkpoint_async

pytestmark = pytest.mark.npm
SECRET = "team-secret"


def head(node) -> int:
    return int(node.rpc("eth_blockNumber"), 16)


async def test_a_watched_pair_hears_of_its_fork_on_another_chain_without_a_restart(tmp_path):
    require_anvil()
    try:
        uni_factory, cake_factory = creation_code("uniswap-v2-factory"), creation_code("pancake-v2-factory")
    except npm_artifacts.ArtifactUnavailable as exc:
        pytest.skip(str(exc))
    receiver = await Receiver(SECRET).start()
    db, config = tmp_path / "k.db", tmp_path / "k.toml"
    tokens = ["0x" + f"{n:02x}" * 20 for n in (0x11, 0x22, 0x33)]
    try:
        with anvil(2001) as uni, anvil(2002) as cake:
            team, other = (a.lower() for a in uni.rpc("eth_accounts")[:2])
            factory_a = deploy(uni, team, uni_factory, word(team))
            pair_a = create_pair(uni, team, factory_a, tokens[0], tokens[1])
            config.write_text(storage_toml(db) + chain_toml("uni", uni) + chain_toml("cake", cake)
                              + '\n[alerts]\nallow_networks = ["127.0.0.0/8"]\n'
                              + f'\n[[channels]]\ntype = "webhook"\nname = "uniswap-team"\nurl = "{receiver.url}"\n'
                                f'secret = "{SECRET}"\nwatchlists_only = true\n')
            async with running_daemon_async(config) as daemon:
                await wait_checkpoint_async(db, 2001, head(uni), timeout=60)
                added = await asyncio.to_thread(main, [
                    "watchlist", "add", "Uniswap pairs", "--entry", f"uni:{pair_a}", "--channel", "uniswap-team",
                    "--min-severity", "info", "--config", str(config)])
                assert added == 0
                # on the other chain, while the daemon runs: the fork's factory and a pair, and unrelated code
                factory_b = await asyncio.to_thread(deploy, cake, other, cake_factory, word(other))
                pair_b = await asyncio.to_thread(create_pair, cake, other, factory_b, tokens[0], tokens[2])
                await asyncio.to_thread(deploy, cake, other, runtime_deployer("6000600055" * 40 + "00"))
                await wait_checkpoint_async(db, 2002, head(cake), timeout=60)
                for _ in range(200):
                    if any(r.finding["subject"] == pair_b for r in receiver.received):
                        break
                    await asyncio.sleep(0.05)
        assert daemon.returncode == 0, daemon.stderr_text[-2000:]
    finally:
        await receiver.stop()
    subjects = {(r.event, r.finding["kind"], r.finding["subject"]) for r in receiver.received}
    assert ("finding.created", "fork-detected", pair_b) in subjects
    # the factory's fork is a finding too, but not in the pair's family: not this team's
    assert all(s == pair_b for _, _, s in subjects), subjects
    everything = {row[0] for row in db_rows(db, "SELECT subject FROM findings")}
    assert factory_b in everything and everything - {pair_b}  # other findings exist; they reached nobody
