"""The daemon on three real anvil chains at once: Uniswap V2 on one, the PancakeSwap fork on another, EIP-1167
clones from a factory on the third. Every deployment is found, forks are linked across chains, and only a third
party's copy is a finding (not one factory's products, not one deployer's redeployments)."""

from __future__ import annotations

import asyncio
import json

import pytest

from kamiyo.config import StorageSettings
from kamiyo.storage.engine import create_engine
from kamiyo.storage.lineage import load_lineage
from tests.support import npm_artifacts
from tests.support.anvil import anvil, require_anvil
from tests.support.contracts import clone_factory_creation, create_pair, creation_code, deploy, make_clone, word
from tests.support.daemon import chain_toml, db_rows, log_events, running_daemon, storage_toml, wait_checkpoints

pytestmark = pytest.mark.npm


def head(node) -> int:
    return int(node.rpc("eth_blockNumber"), 16)


def test_forks_are_linked_across_three_chains_and_only_third_party_copies_are_findings(tmp_path):
    require_anvil()
    try:
        uni_factory, uni_erc20 = creation_code("uniswap-v2-factory"), creation_code("uniswap-v2-erc20")
        cake_factory = creation_code("pancake-v2-factory")
    except npm_artifacts.ArtifactUnavailable as exc:
        pytest.skip(str(exc))
    db = tmp_path / "kamiyo.db"
    with anvil(1001) as uni, anvil(1002) as cake, anvil(1003) as clones:
        team, other, third = uni.rpc("eth_accounts")[:3]
        team, other, third = team.lower(), other.lower(), third.lower()
        tokens = ["0x" + f"{n:02x}" * 20 for n in (0x11, 0x22, 0x33)]  # a pair only needs two addresses
        # chain 1001: Uniswap's team deploys the factory; pairs come from the factory
        factory_a = deploy(uni, team, uni_factory, word(team))
        pairs_a = [create_pair(uni, team, factory_a, tokens[0], t) for t in tokens[1:]]
        # chain 1003: one deployer's implementation, cloned through its own factory (anyone may call it)
        impl = deploy(clones, third, uni_erc20)
        clone_factory = deploy(clones, third, clone_factory_creation(impl))
        made = [make_clone(clones, other, clone_factory) for _ in range(4)]
        config = tmp_path / "kamiyo.toml"
        config.write_text(storage_toml(db) + chain_toml("uni", uni) + chain_toml("cake", cake)
                          + chain_toml("clones", clones))
        with running_daemon(config) as daemon:
            wait_checkpoints(db, {1001: head(uni), 1003: head(clones)}, timeout=60)
            # chain 1002, while the daemon runs: another team deploys the PancakeSwap fork and its pairs
            factory_b = deploy(cake, other, cake_factory, word(other))
            pairs_b = [create_pair(cake, other, factory_b, tokens[0], t) for t in tokens[1:]]
            wait_checkpoints(db, {1002: head(cake)}, timeout=60)
    assert daemon.returncode == 0, daemon.stderr_text[-3000:]

    stored = {(c, a): (k, s, o) for c, a, k, s, o in
              db_rows(db, "SELECT chain_id, address, kind, skeleton_hash, origin FROM deployments")}
    expected = ({(1001, a) for a in [factory_a, *pairs_a]} | {(1002, a) for a in [factory_b, *pairs_b]}
                | {(1003, a) for a in [impl, clone_factory, *made]})
    assert set(stored) == expected  # every deployment, top-level and factory-made, on all three chains
    assert {stored[(1001, p)][2] for p in pairs_a} == {team}  # a factory's products carry the factory's origin
    assert {stored[(1003, c)][2] for c in made} == {third}
    assert {stored[(1003, c)][0] for c in made} == {"eip1167"}

    lineage = asyncio.run(_lineage(db))

    def family(chain: int, address: str) -> str:
        return lineage.family(stored[(chain, address)][1])

    assert family(1002, pairs_b[0]) == family(1001, pairs_a[0])  # PancakeSwap's pair is Uniswap's, recompiled
    assert family(1002, factory_b) == family(1001, factory_a)
    assert family(1001, pairs_a[0]) != family(1001, factory_a)  # a factory is not its product

    findings = db_rows(db, "SELECT kind, chain_id, subject, status, evidence FROM findings WHERE kind = 'fork-detected'")
    by_subject = {(c, s): json.loads(e) for _, c, s, _, e in findings}
    # the third party's copies: the fork of the factory, and one finding for all the pairs it makes
    assert set(by_subject) == {(1002, factory_b), (1002, pairs_b[0])}, findings
    assert {f[0] for f in findings} == {"fork-detected"} and {f[3] for f in findings} == {"active"}
    evidence = by_subject[(1002, pairs_b[0])]
    assert evidence["origin"] == other and evidence["other_origin"] == team
    assert evidence["related"][0]["chain_id"] == 1001 and evidence["related"][0]["relation"] in ("fork", "clone")
    logged = log_events(daemon.stderr_text)
    created = sorted(e["subject"] for e in logged if e["event"] == "finding.created" and e["kind"] == "fork-detected")
    assert created == sorted([factory_b, pairs_b[0]])


async def _lineage(db):
    engine = create_engine(StorageSettings(url=f"sqlite:///{db}"))
    try:
        return await load_lineage(engine, with_index=False)
    finally:
        await engine.dispose()
