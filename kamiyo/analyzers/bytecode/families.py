"""Fork families: exact-clone classes, verified links between classes, and groups that do not chain.

Rule for groups (why not connected components): links are taken best first and join two groups at once
when one side is a single class (an ambiguous contract joins the family it resembles most). Two groups of
several classes join only with support from several member pairs: at least max(2, ⌈s/4⌉) distinct classes on
*each* side, s the smaller group's size, must link across. So a contract that resembles two families less than
their members resemble each other arrives when both have formed, and is one class on its side: it cannot merge
them. (Taking links best first, a bridge stronger than the families' own links can still join them.)

Proxy-kind classes are never linked by similarity; a proxy joins the family of the code it runs when that
implementation is among the inputs (ids that are addresses, as in the daemon), else it stands alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import networkx as nx

from .analysis import CodeAnalysis
from .classify import PROXY_KINDS
from .index import SimilarityIndex
from .similarity import ClassProfile, FeatureFrequency, Link


@dataclass(slots=True)
class CodeClass:
    skeleton_hash: str
    analysis: CodeAnalysis  # of the first member seen
    members: list[str] = field(default_factory=list)


@dataclass(slots=True)
class FamilyResult:
    classes: dict[str, CodeClass]  # insertion order = first appearance
    links: list[Link]
    family_of: dict[str, str]  # skeleton hash -> family id
    delegations: list[tuple[str, str]]  # (proxy class, implementation class)

    def families(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for key, cls in self.classes.items():
            out.setdefault(self.family_of[key], []).extend(cls.members)
        return out


class Groups:
    """Union-find over classes that remembers each group's members, for the support rule."""

    def __init__(self, keys: Iterable[str] = ()) -> None:
        self.parent = {k: k for k in keys}
        self.members = {k: [k] for k in self.parent}

    def add(self, k: str) -> None:
        if k not in self.parent:
            self.parent[k] = k
            self.members[k] = [k]

    def find(self, k: str) -> str:
        while self.parent[k] != k:
            self.parent[k] = self.parent[self.parent[k]]
            k = self.parent[k]
        return k

    def union(self, a: str, b: str) -> str:
        """Join two roots; returns the surviving root."""
        if len(self.members[a]) < len(self.members[b]):
            a, b = b, a
        self.parent[b] = a
        self.members[a].extend(self.members.pop(b))
        return a


def supported(groups: Groups, ra: str, rb: str, neighbours: dict[str, set[str]]) -> bool:
    a, b = groups.members[ra], groups.members[rb]
    if min(len(a), len(b)) == 1:
        return True
    need = max(2, math.ceil(min(len(a), len(b)) / 4))
    side_b = set(b)
    linked_a = [x for x in a if neighbours.get(x, set()) & side_b]
    if len(linked_a) < need:
        return False
    linked_b = {y for x in linked_a for y in neighbours[x] if y in side_b}
    return len(linked_b) >= need


def group_families(order: list[str], links: list[Link]) -> dict[str, str]:
    """skeleton hash -> family id (the hash of the family's earliest class in `order`)."""
    groups = Groups(order)
    neighbours: dict[str, set[str]] = {}
    for link in links:
        neighbours.setdefault(link.a, set()).add(link.b)
        neighbours.setdefault(link.b, set()).add(link.a)
    for link in sorted(links, key=lambda l: (-l.similarity, l.a, l.b)):
        ra, rb = groups.find(link.a), groups.find(link.b)
        if ra != rb and supported(groups, ra, rb, neighbours):
            groups.union(ra, rb)
    rank = {k: i for i, k in enumerate(order)}
    family_of = {}
    for root, members in groups.members.items():
        family_id = min(members, key=rank.__getitem__)
        for m in members:
            family_of[m] = family_id
    return family_of


def build_families(
    items: Iterable[tuple[str, CodeAnalysis]], progress: Callable[[int, int], None] | None = None
) -> FamilyResult:
    classes: dict[str, CodeClass] = {}
    for contract_id, analysis in items:
        cls = classes.get(analysis.skeleton_hash)
        if cls is None:
            cls = classes[analysis.skeleton_hash] = CodeClass(analysis.skeleton_hash, analysis)
        cls.members.append(contract_id)

    # Indexed in a canonical order (by skeleton hash): the links found, and so the families, must not depend on
    # the order the inputs were listed in. That order only names families (after their earliest class).
    profiles = sorted(
        (
            ClassProfile.of(c.skeleton_hash, c.analysis.sketch, c.analysis.selectors, c.analysis.event_topics)
            for c in classes.values()
            if c.analysis.is_similarity_material
        ),
        key=lambda p: p.key,
    )
    frequency = FeatureFrequency()
    for p in profiles:
        frequency.add(frequency.intern(p.features))
    index = SimilarityIndex(frequency)
    links: list[Link] = []
    for n, profile in enumerate(profiles, 1):
        links.extend(index.links(profile))
        index.insert(profile)
        if progress is not None:
            progress(n, len(profiles))

    order = list(classes)
    family_of = group_families(order, links)
    delegations = _attach_proxies(classes, family_of)
    _name_by_earliest(order, family_of)
    return FamilyResult(classes, links, family_of, delegations)


def _attach_proxies(classes: dict[str, CodeClass], family_of: dict[str, str]) -> list[tuple[str, str]]:
    """Proxy classes join the family of the code they end up running: the first non-proxy class along the
    chain of implementations (a proxy may point at another proxy), when that class is among the inputs."""
    by_address = {m.lower(): key for key, c in classes.items() for m in c.members if m.lower().startswith("0x")}

    def target(key: str) -> str | None:
        impl = classes[key].analysis.implementation
        return by_address.get(impl) if classes[key].analysis.kind in PROXY_KINDS and impl else None

    delegations, runs_code_of = [], {}
    for key in classes:
        if (first := target(key)) is None or first == key:
            continue
        delegations.append((key, first))
        seen, current = {key}, first
        while current not in seen and (following := target(current)) is not None:
            seen.add(current)
            current = following
        if classes[current].analysis.kind not in PROXY_KINDS:
            runs_code_of[key] = current
    for key, code_class in runs_code_of.items():  # decided first, applied after: no dependence on order
        family_of[key] = family_of[code_class]
    return delegations


def _name_by_earliest(order: list[str], family_of: dict[str, str]) -> None:
    """A family's id is the skeleton hash of its earliest class (input order), also after proxies joined it."""
    earliest: dict[str, str] = {}
    for key in order:
        earliest.setdefault(family_of[key], key)
    for key in order:
        family_of[key] = earliest[family_of[key]]


def to_graph(result: FamilyResult) -> nx.Graph:
    graph = nx.Graph()
    for key, cls in result.classes.items():
        graph.add_node(
            key,
            members=list(cls.members),
            kind=cls.analysis.kind,
            family=result.family_of[key],
            size=cls.analysis.size,
            label=cls.members[0],
        )
    for link in result.links:
        graph.add_edge(link.a, link.b, relation=link.relation, similarity=link.similarity, evidence=dict(link.evidence))
    for proxy, impl in result.delegations:
        graph.add_edge(proxy, impl, relation="delegates", similarity=1.0, evidence={})
    return graph
