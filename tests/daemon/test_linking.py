"""The fork-detected rule on real protocol code, below the chain: who is the copy, whatever order chains are read in."""

from __future__ import annotations

import pytest

from kamiyo.analyzers.bytecode.lineage import Lineage
from kamiyo.daemon.linking import Linker
from tests.support import npm_artifacts

pytestmark = pytest.mark.npm


@pytest.fixture
def pairs():
    try:
        return npm_artifacts.artifact("uniswap-v2-pair"), npm_artifacts.artifact("pancake-v2-pair")
    except npm_artifacts.ArtifactUnavailable as exc:
        pytest.skip(str(exc))


def row(linker: Linker, code: bytes, chain_id: int, address: str, origin: str, timestamp: int) -> tuple[dict, str]:
    seen = linker.observe(code, chain_id, address)
    return {"chain_id": chain_id, "address": address, "block_number": 7, "tx_hash": "0x" + "ab" * 32,
            "creator": origin, "deployer": origin, "origin": origin, "kind": seen.kind,
            "skeleton_hash": seen.key, "block_timestamp": timestamp}, seen.key


def test_the_later_deployment_is_the_copy_even_when_its_chain_is_read_first(pairs):
    uniswap, pancake = pairs
    linker = Linker(Lineage())
    # the BSC-like chain is caught up first: PancakeSwap's pair (deployed in 2020-09) is seen before Uniswap's
    cake_row, cake_key = row(linker, pancake, 56, "0x" + "cc" * 20, "0x" + "0c" * 20, timestamp=1_600_000_000)
    assert linker.fork_findings(cake_row, cake_key) == []  # nothing else in its family yet
    uni_row, uni_key = row(linker, uniswap, 1, "0x" + "aa" * 20, "0x" + "0a" * 20, timestamp=1_589_000_000)
    assert linker.lineage.family(uni_key) == linker.lineage.family(cake_key)
    (finding,) = linker.fork_findings(uni_row, uni_key)
    assert (finding.chain_id, finding.subject) == (56, "0x" + "cc" * 20)  # Uniswap's pair is the original
    assert finding.evidence["original"]["address"] == "0x" + "aa" * 20
    assert finding.evidence["related"][0]["relation"] in ("fork", "clone")


def test_one_origin_redeploying_on_another_chain_is_no_finding_and_a_copy_is_one_finding_per_class(pairs):
    uniswap, pancake = pairs
    linker = Linker(Lineage())
    team, other = "0x" + "0a" * 20, "0x" + "0c" * 20
    first, key = row(linker, uniswap, 1, "0x" + "a1" * 20, team, timestamp=100)
    assert linker.fork_findings(first, key) == []
    again, key = row(linker, uniswap, 10, "0x" + "a1" * 20, team, timestamp=200)  # same team, another chain
    assert linker.fork_findings(again, key) == []
    copies = [row(linker, pancake, 56, "0x" + f"{n:02x}" * 20, other, timestamp=300 + n) for n in range(3)]
    found = [f for r, k in copies for f in linker.fork_findings(r, k)]
    assert len({f.fingerprint for f in found}) == 1  # the same finding each time: stored once
    assert found[0].evidence["original"]["origin"] == team
