"""Family grouping: the support rule against chaining, stable ids, and the whole real corpus."""

from __future__ import annotations

from collections import Counter, defaultdict
from itertools import combinations

import pytest

from kamiyo.analyzers.bytecode.analysis import analyze_code
from kamiyo.analyzers.bytecode.classify import PROXY_KINDS
from kamiyo.analyzers.bytecode.families import build_families, group_families, to_graph
from kamiyo.analyzers.bytecode.interface import selector_of
from kamiyo.analyzers.bytecode.similarity import Link


def _clique(names, similarity):
    return [Link(a, b, "clone", similarity, {}) for a, b in combinations(names, 2)]


def test_one_ambiguous_contract_does_not_merge_two_families():
    a = [f"a{i}" for i in range(5)]
    b = [f"b{i}" for i in range(5)]
    bridge = [Link("x", m, "fork", 0.7, {}) for m in a + b]
    family_of = group_families(a + b + ["x"], _clique(a, 0.9) + _clique(b, 0.9) + bridge)
    assert len({family_of[m] for m in a}) == 1
    assert len({family_of[m] for m in b}) == 1
    assert family_of["a0"] != family_of["b0"]
    assert family_of["x"] in {family_of["a0"], family_of["b0"]}  # it joins one of them, not both


def test_groups_with_broad_support_join():
    a = [f"a{i}" for i in range(4)]
    b = [f"b{i}" for i in range(4)]
    cross = [Link(x, y, "fork", 0.6, {}) for x, y in zip(a, b)]  # four distinct members on each side
    family_of = group_families(a + b, _clique(a, 0.9) + _clique(b, 0.9) + cross)
    assert len(set(family_of.values())) == 1


def test_family_id_is_the_earliest_class():
    family_of = group_families(["late", "early"][::-1], [Link("late", "early", "clone", 0.9, {})])
    assert family_of == {"early": "early", "late": "early"}


def test_proxy_joins_its_implementations_family_when_known(npm_artifact):
    impl_address = "0x" + "ab" * 20
    proxy = bytes.fromhex("363d3d373d3d3d363d73" + "ab" * 20 + "5af43d82803e903d91602b57fd5bf3")
    result = build_families([(impl_address, analyze_code(npm_artifact("uniswap-v2-pair"))), ("p1", analyze_code(proxy))])
    families = result.families()
    assert len(families) == 1 and sorted(next(iter(families.values()))) == sorted([impl_address, "p1"])
    graph = to_graph(result)
    assert [d["relation"] for _, _, d in graph.edges(data=True)] == ["delegates"]


# Protocol lineages recognisable by selectors of their own (computed from signatures); a family must not mix
# them. Token standards are not lineages: one vendor's ERC-721 and ERC-1155 bases can share a real core.
LINEAGES = {
    "uniswap-v3-pool": ("slot0()", "observe(uint32[])", "flash(address,uint256,uint256,bytes)"),
    "uniswap-v2-pair": ("getReserves()", "skim(address)", "swap(uint256,uint256,address,bytes)"),
    "uniswap-v2-router": ("WETH()", "swapExactTokensForTokens(uint256,uint256,address[],address,uint256)"),
    "gnosis-safe": ("getOwners()", "getThreshold()", "execTransaction(address,uint256,bytes,uint8,uint256,uint256,uint256,address,address,bytes)"),
    "compound-ctoken": ("exchangeRateCurrent()", "borrow(uint256)", "redeem(uint256)"),
    "chainlink-aggregator": ("latestRoundData()", "getRoundData(uint80)"),
}


def _lineage(selectors: tuple[str, ...]) -> str | None:
    have = set(selectors)
    hits = [name for name, sigs in LINEAGES.items() if all(selector_of(s) in have for s in sigs)]
    return hits[0] if len(hits) == 1 else None


@pytest.fixture(scope="module")
def corpus_items(corpus):
    return [(row["id"], analyze_code(row["raw"])) for row in corpus]


@pytest.fixture(scope="module")
def corpus_result(corpus_items):
    return build_families(corpus_items)


@pytest.mark.corpus
def test_families_do_not_depend_on_input_order(corpus_items, corpus_result):
    def groups(result):
        return {frozenset(members) for members in result.families().values()}

    assert groups(build_families(corpus_items[::-1])) == groups(corpus_result)


def test_a_proxy_to_a_proxy_joins_the_family_of_the_code_it_runs(npm_artifact):
    impl, inner = "0x" + "ab" * 20, "0x" + "cd" * 20

    def clone_of(address: str) -> bytes:
        return bytes.fromhex("363d3d373d3d3d363d73" + address[2:] + "5af43d82803e903d91602b57fd5bf3")

    items = [("outer", analyze_code(clone_of(inner))), (inner, analyze_code(clone_of(impl))),
             (impl, analyze_code(npm_artifact("uniswap-v2-pair")))]
    for ordering in (items, items[::-1]):
        families = build_families(ordering).families()
        assert len(families) == 1 and sorted(next(iter(families.values()))) == sorted(["outer", inner, impl])
        assert next(iter(families)) == ordering[0][1].skeleton_hash  # named after the earliest class


@pytest.mark.corpus
def test_every_contract_is_in_exactly_one_family(corpus, corpus_result):
    members = [m for ms in corpus_result.families().values() for m in ms]
    assert Counter(members) == Counter(row["id"] for row in corpus)


@pytest.mark.corpus
def test_minimal_proxies_are_not_similarity_material(corpus_result):
    classes = corpus_result.classes
    proxies = {k for k, c in classes.items() if c.analysis.kind in PROXY_KINDS}
    assert len(proxies) > 100
    assert not [l for l in corpus_result.links if l.a in proxies or l.b in proxies]
    by_family = defaultdict(set)
    for key in proxies:
        if classes[key].analysis.kind == "eip1167":
            by_family[corpus_result.family_of[key]].add(classes[key].analysis.implementation)
    assert max(len(impls) for impls in by_family.values()) == 1  # never two implementations in one family


@pytest.mark.corpus
def test_no_family_joins_unrelated_lineages(corpus_result):
    lineages = defaultdict(Counter)
    for key, cls in corpus_result.classes.items():
        if (name := _lineage(cls.analysis.selectors)) is not None:
            lineages[corpus_result.family_of[key]][name] += len(cls.members)
    labelled = sum(sum(c.values()) for c in lineages.values())
    assert labelled > 200  # the check has real material to work on
    mixed = {fid: dict(c) for fid, c in lineages.items() if len(c) > 1}
    assert not mixed


@pytest.mark.corpus
def test_uniswap_v3_pools_form_one_large_family(corpus_result):
    """The data README: the largest near-duplicate family of the dataset is Uniswap V3 pools."""
    pools = Counter(
        corpus_result.family_of[k]
        for k, c in corpus_result.classes.items()
        if _lineage(c.analysis.selectors) == "uniswap-v3-pool"
        for _ in c.members
    )
    family, count = pools.most_common(1)[0]
    assert count >= 0.9 * sum(pools.values())
