"""Linking deployments into classes and families across every followed chain, and deciding `fork-detected`.

One `Linker` per daemon, shared by all chain pipelines (classes link across chains). A new class is admitted to
the in-memory lineage at once, so the next deployment on any chain sees it; its row and links are written with
every block that uses it until one of those blocks commits (a block whose transaction failed takes nothing
with it, and its retry writes the class again).

The finding rule: a deployment whose code joins a family that holds code of another origin (a third party's copy,
or imported known code) is a fork. One origin's redeployments and one factory's products are not: the origin
of a factory's product is the factory's own origin. The fingerprint is (chain, origin, class): a factory that
stamps out a thousand copies of a fork is one finding.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..analyzers.bytecode.analysis import analyze_code, identify
from ..analyzers.bytecode.lineage import ClassInfo, Lineage
from ..analyzers.bytecode.similarity import Link
from ..findings import Finding, FindingType, Severity, fingerprint
from ..storage.lineage import KNOWN_PREFIX, add_origins, classes_since, load_lineage, write_class

FORK_DETECTED = "fork-detected"
RELATED_IN_EVIDENCE = 5


@dataclass(frozen=True, slots=True)
class Observed:
    key: str  # skeleton hash of the class
    kind: str
    implementation: str | None  # named by the code itself
    standard: str | None  # proxy standard
    new: bool  # first time this class was seen anywhere


class Linker:
    def __init__(self, lineage: Lineage) -> None:
        self.lineage = lineage
        self._unwritten: dict[str, tuple[ClassInfo, list[Link]]] = {}

    @classmethod
    async def load(cls, engine: AsyncEngine) -> Linker:
        return cls(await load_lineage(engine, with_index=True))

    async def refresh(self, engine: AsyncEngine) -> int:
        """Take in classes other processes stored since (`kamiyo index import`, `kamiyo backfill`): each is
        linked against everything here, and links the other process could not see are written. Returns how
        many classes were new to this lineage."""
        admitted = []
        for seq, info in await classes_since(engine, self.lineage.seq):
            self.lineage.seq = max(self.lineage.seq, seq)
            if info.key not in self.lineage:
                admitted.append((info, self.lineage.admit(info)))
        async with engine.begin() as conn:
            for info, links in admitted:
                await write_class(conn, info, links)
            await add_origins(conn, self.lineage)
        return len(admitted)

    def observe(self, code: bytes, chain_id: int | None, address: str, label: str | None = None) -> Observed:
        ident = identify(code)
        key, kind = ident.skeleton_hash, ident.classification
        new = key not in self.lineage
        if new:  # the full analysis (sketch, selectors) only for a class never seen: most deployments are clones
            info = ClassInfo.of(analyze_code(ident), chain_id, address, label)
            self._unwritten[key] = (info, self.lineage.admit(info))
        return Observed(key, kind.kind, kind.implementation, kind.standard, new)

    async def write(self, conn: AsyncConnection, keys: set[str]) -> None:
        """Write the classes among `keys` that no committed block has written yet."""
        for key in sorted(keys):
            if (pending := self._unwritten.get(key)) is not None:
                await write_class(conn, *pending)

    def committed(self, keys: set[str]) -> None:
        for key in keys:
            self._unwritten.pop(key, None)

    def fork_finding(self, row: dict, family_key: str, block_hash: str | None = None) -> Finding | None:
        """The finding for a deployment stored as `row` whose code counts in the family of `family_key`."""
        origin = row["origin"]
        other, labels = self.lineage.others(family_key, origin)
        self.lineage.add_origin(family_key, origin)
        if other is None and not labels:
            return None
        labels = sorted(labels)
        return Finding(
            kind=FORK_DETECTED,
            severity=Severity.LOW if labels else Severity.INFO,
            type=FindingType.INFO,
            chain_id=row["chain_id"],
            subject=row["address"],
            block=row["block_number"],
            tx_hash=row["tx_hash"],
            fingerprint=fingerprint(FORK_DETECTED, row["chain_id"], origin, row["skeleton_hash"]),
            evidence={
                "family": self.lineage.family(family_key),
                "class": row["skeleton_hash"],
                "code_class": family_key,
                "kind": row["kind"],
                "creator": row["creator"],
                "deployer": row["deployer"],
                "origin": origin,
                "other_origin": None if other is None or other.startswith(KNOWN_PREFIX) else other,
                "known_code": labels,
                "related": self.related(family_key, row["chain_id"], row["address"]),
            },
        )

    def related(self, key: str, chain_id: int, address: str) -> list[dict]:
        """For evidence: the class's first sighting when that was elsewhere, its strongest links, else the
        family's first class."""
        def entry(info: ClassInfo, relation: str, similarity: float | None, evidence: dict | None = None) -> dict:
            return {"class": info.key, "chain_id": info.first_chain_id, "address": info.first_address,
                    "label": info.label, "relation": relation, "similarity": similarity, "evidence": evidence or {}}

        out = []
        own = self.lineage.classes[key]
        if (own.first_chain_id, own.first_address) != (chain_id, address):
            out.append(entry(own, "identical", 1.0))
        links = sorted(self.lineage.links_of(key), key=lambda l: (-l.similarity, l.a, l.b))[:RELATED_IN_EVIDENCE]
        for link in links:
            out.append(entry(self.lineage.classes[link.b if link.a == key else link.a], link.relation,
                             link.similarity, dict(link.evidence)))
        if not out:
            out.append(entry(self.lineage.classes[self.lineage.family(key)], "family", None))
        return out
