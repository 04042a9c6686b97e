"""Real protocol code from the npm registry: known forks are linked, known non-forks are not."""

from __future__ import annotations

import pytest

from kamiyo.analyzers.bytecode import decode
from kamiyo.analyzers.bytecode.analysis import analyze_code
from kamiyo.analyzers.bytecode.families import build_families
from kamiyo.analyzers.bytecode.normalize import normalize
from kamiyo.analyzers.bytecode.sketch import shingles

pytestmark = pytest.mark.npm

NAMES = (
    "uniswap-v2-pair", "uniswap-v2-factory", "uniswap-v2-erc20", "pancake-v2-pair", "pancake-v2-factory",
    "uniswap-v3-pool", "uniswap-v3-factory", "pancake-v3-pool", "pancake-v3-factory", "oz-erc20", "oz-erc721",
    "bscswap-pair", "bscswap-factory", "swapr-pair", "swapr-factory",
)


@pytest.fixture(scope="module")
def result(npm_artifact, sushiswap_pair):
    items = [(name, analyze_code(npm_artifact(name))) for name in NAMES]
    items.append(("sushi-pair", analyze_code(sushiswap_pair)))
    return build_families(items)


def _edge(result, a: str, b: str):
    key = {m: k for k, c in result.classes.items() for m in c.members}
    ka, kb = key[a], key[b]
    return next((l for l in result.links if {l.a, l.b} == {ka, kb}), None)


def _same_family(result, a: str, b: str) -> bool:
    key = {m: k for k, c in result.classes.items() for m in c.members}
    return result.family_of[key[a]] == result.family_of[key[b]]


@pytest.mark.parametrize(
    ("a", "b"), [("uniswap-v2-pair", "pancake-v2-pair"), ("uniswap-v2-factory", "pancake-v2-factory")]
)
def test_same_compiler_copies_are_clones(result, a, b):
    link = _edge(result, a, b)
    assert link is not None and link.relation == "clone", link
    assert _same_family(result, a, b)


def test_recompiled_sushiswap_pair_is_a_fork_of_uniswaps(result):
    link = _edge(result, "uniswap-v2-pair", "sushi-pair")
    assert link is not None and link.relation == "fork", link
    assert link.evidence["selector_similarity"] == 1.0
    assert link.evidence["opcode_jaccard"] < 0.8  # recompiled: opcode evidence alone would say "not a clone"
    assert _same_family(result, "uniswap-v2-pair", "sushi-pair")


@pytest.mark.parametrize("fork", ["bscswap", "swapr"])
def test_held_out_uniswap_v2_forks_join_the_family(result, fork):
    """BSCswap and Swapr (DXswap) were first checked after the linking rules were set: their pair and factory
    land in the Uniswap V2 families, and the pair does not join the factory's."""
    assert _same_family(result, "uniswap-v2-pair", f"{fork}-pair")
    assert _same_family(result, "uniswap-v2-factory", f"{fork}-factory")
    assert not _same_family(result, f"{fork}-pair", f"{fork}-factory")


def test_uniswap_and_pancakeswap_v3_pools_are_linked(result):
    link = _edge(result, "uniswap-v3-pool", "pancake-v3-pool")
    assert link is not None and link.relation in {"clone", "fork"}
    assert _same_family(result, "uniswap-v3-pool", "pancake-v3-pool")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("uniswap-v2-factory", "uniswap-v2-pair"),  # the factory embeds the pair's creation code
        ("uniswap-v2-erc20", "oz-erc20"),  # both ERC-20s, different lineages
        ("oz-erc20", "oz-erc721"),  # one library, one compiler, different standards
    ],
)
def test_unrelated_code_is_not_linked(result, a, b):
    assert _edge(result, a, b) is None
    assert not _same_family(result, a, b)


def test_reachability_removes_embedded_child_code(npm_artifact):
    """Raw 5-grams make the V2 factory look like its pair (0.84); reachable code alone does not (~0.1)."""
    factory, pair = npm_artifact("uniswap-v2-factory"), npm_artifact("uniswap-v2-pair")

    def jaccard(a: set, b: set) -> float:
        return len(a & b) / len(a | b)

    raw = jaccard(*(shingles(bytes(i.op for i in decode.instructions(c))) for c in (factory, pair)))
    reachable = jaccard(*(shingles(normalize(c).reachable_ops) for c in (factory, pair)))
    assert raw > 0.75
    assert reachable < 0.2
    assert analyze_code(factory).creates_contracts


def test_factory_carries_the_pairs_trailer_and_its_own(npm_artifact):
    factory = analyze_code(npm_artifact("uniswap-v2-factory"))
    assert len(factory.trailers) >= 2
    assert factory.metadata_json()["version"] == "0.5.16"
