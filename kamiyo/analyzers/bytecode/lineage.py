"""Live fork families: classes admitted one at a time, each linked against all before it and grouped on arrival.

`build_families` sees a whole batch at once; the daemon sees classes one by one across chains. Here a new class is
verified against the similarity index, inserted, and its links applied to the groups under the same support rule
as the batch (families.supported). The decisions depend only on the admission order and the links, both of which
storage keeps, so `restore` rebuilds the same families at start without a single comparison.

Besides classes and links, a family remembers who stands behind its code: the earliest sighting of each of its
first two origins (a deployer, a factory's origin, an import label), which is enough to answer "whose code did
this deployment copy, if anyone's?" whichever order the chains were read in.
Proxy classes take no part in similarity; callers resolve a proxy to the family of the code it runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .analysis import CodeAnalysis
from .families import Groups, supported
from .index import SimilarityIndex
from .similarity import ClassProfile, Link

KEPT_ORIGINS = 2  # the two earliest origins: for any origin, the earliest other one is among them


@dataclass(frozen=True, slots=True, order=True)
class Sighting:
    """Where and when an origin's code was first seen in a family. Known code sorts before everything."""

    timestamp: float  # block timestamp; -inf for imported known code
    origin: str
    chain_id: int | None = None
    address: str = ""
    block: int | None = None
    tx_hash: str | None = None
    key: str = ""  # the class seen


@dataclass(frozen=True, slots=True)
class ClassInfo:
    """What is kept of a class: the index's material and where it was first seen (a deployment or import)."""

    key: str  # skeleton hash
    kind: str
    size: int
    sketch: np.ndarray | None  # None for proxies and stubs: never similarity material
    selectors: tuple[str, ...]
    topics: tuple[str, ...]
    first_chain_id: int | None  # None for imported known code
    first_address: str  # an address, or the import's id
    label: str | None = None  # the import label of known code

    @classmethod
    def of(cls, analysis: CodeAnalysis, chain_id: int | None, address: str, label: str | None = None) -> ClassInfo:
        return cls(analysis.skeleton_hash, analysis.kind, analysis.size, analysis.sketch, analysis.selectors,
                   analysis.event_topics, chain_id, address, label)

    def profile(self) -> ClassProfile:
        return ClassProfile.of(self.key, self.sketch, self.selectors, self.topics)


class Lineage:
    def __init__(self, with_index: bool = True) -> None:
        """`with_index=False` for readers (CLI queries) that only replay stored links and never admit new code."""
        self.index = SimilarityIndex() if with_index else None
        self.classes: dict[str, ClassInfo] = {}
        self._rank: dict[str, int] = {}
        self._groups = Groups()
        self._neighbours: dict[str, set[str]] = {}
        self._links: dict[str, list[Link]] = {}  # by either end
        self._earliest: dict[str, str] = {}  # group root -> its earliest class
        self._origins: dict[str, list[Sighting]] = {}  # group root -> earliest sightings of its first origins
        self._deferred: dict[str, list[Link]] = {}  # restored links waiting for their older end
        self._exploited: dict[str, set[str]] = {}  # group root -> classes in it whose code was exploited
        self.seq = 0  # the storage sequence number of the last class restored (0: none)

    def __contains__(self, key: str) -> bool:
        return key in self.classes

    def __len__(self) -> int:
        return len(self.classes)

    def admit(self, info: ClassInfo) -> list[Link]:
        """Link a new class against everything admitted before it, index it, group it; returns its links."""
        if info.key in self.classes:
            return []
        links: list[Link] = []
        if info.sketch is not None and self.index is not None:
            profile = info.profile()
            links = self.index.links(profile)
            self.index.insert(profile)
        self._register(info)
        self._apply(links)
        return links

    def restore(self, info: ClassInfo, links: list[Link]) -> None:
        """Re-admit a stored class with its stored links (in admission order): indexed, never compared again."""
        if info.key in self.classes:
            return
        if info.sketch is not None and self.index is not None:
            self.index.insert(info.profile())
        self._register(info)
        ready = []
        for link in links:  # two chains can commit in the other order than they admitted: wait for the older end
            (ready if link.b in self.classes else self._deferred.setdefault(link.b, [])).append(link)
        self._apply(ready + self._deferred.pop(info.key, []))

    def _register(self, info: ClassInfo) -> None:
        key = info.key
        self.classes[key] = info
        self._rank[key] = len(self._rank)
        self._groups.add(key)
        self._earliest[key] = key
        self._origins[key] = []

    def _apply(self, links: list[Link]) -> None:
        for link in links:
            self._neighbours.setdefault(link.a, set()).add(link.b)
            self._neighbours.setdefault(link.b, set()).add(link.a)
            self._links.setdefault(link.a, []).append(link)
            self._links.setdefault(link.b, []).append(link)
        for link in sorted(links, key=lambda l: (-l.similarity, l.b)):
            ra, rb = self._groups.find(link.a), self._groups.find(link.b)
            if ra != rb and supported(self._groups, ra, rb, self._neighbours):
                self._merge(ra, rb)

    def _merge(self, ra: str, rb: str) -> None:
        earliest = min(self._earliest.pop(ra), self._earliest.pop(rb), key=self._rank.__getitem__)
        sightings = self._origins.pop(ra) + self._origins.pop(rb)
        exploited = self._exploited.pop(ra, set()) | self._exploited.pop(rb, set())
        root = self._groups.union(ra, rb)
        self._earliest[root] = earliest
        self._origins[root] = _earliest_origins(sightings)
        if exploited:
            self._exploited[root] = exploited

    def family(self, key: str) -> str:
        """The family id: the skeleton hash of its earliest admitted class."""
        return self._earliest[self._groups.find(key)]

    def members(self, key: str) -> list[str]:
        """Every class in the family of `key`, in admission order."""
        return sorted(self._groups.members[self._groups.find(key)], key=self._rank.__getitem__)

    def links_of(self, key: str) -> list[Link]:
        return self._links.get(key, [])

    def add_sighting(self, key: str, sighting: Sighting) -> None:
        root = self._groups.find(key)
        self._origins[root] = _earliest_origins(self._origins[root] + [sighting])

    def earliest_other(self, key: str, origin: str) -> Sighting | None:
        """The earliest sighting in the family of code from an origin other than `origin`."""
        return next((s for s in self._origins[self._groups.find(key)] if s.origin != origin), None)

    def drop_sightings(self, chain_id: int, first_block: int) -> list[str]:
        """Forget sightings from blocks a reorg dropped; returns a class of each family that lost one (the
        caller re-adds what storage still holds for those families)."""
        touched = []
        for root, kept in self._origins.items():
            keep = [s for s in kept if not (s.chain_id == chain_id and s.block is not None and s.block >= first_block)]
            if len(keep) != len(kept):
                self._origins[root] = keep
                touched.append(root)
        return touched

    def mark_exploited(self, key: str) -> None:
        """`key`'s code was drained somewhere: every class that is or joins its family is at risk."""
        self._exploited.setdefault(self._groups.find(key), set()).add(key)

    def exploited_in_family(self, key: str) -> set[str]:
        return set(self._exploited.get(self._groups.find(key), ()))

    def relation(self, a: str, b: str) -> tuple[str, float | None]:
        """How two classes of one family are related: identical, a direct link's relation, else family."""
        if a == b:
            return "identical", 1.0
        for link in self._links.get(a, ()):
            if b in (link.a, link.b):
                return link.relation, link.similarity
        return "family", None

    def sightings(self, key: str) -> list[Sighting]:
        return list(self._origins[self._groups.find(key)])


def _earliest_origins(sightings: list[Sighting]) -> list[Sighting]:
    first: dict[str, Sighting] = {}
    for s in sorted(sightings):
        first.setdefault(s.origin, s)
    return list(first.values())[:KEPT_ORIGINS]
