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
from ..analyzers.bytecode.lineage import ClassInfo, Lineage, Sighting
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
        self.exploited: dict[str, list] = {}  # class -> the exploits.Exploited records naming its code

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

    def remember_exploited(self, exploited) -> None:
        known = self.exploited.setdefault(exploited.key, [])
        if exploited not in known:
            known.append(exploited)
        self.lineage.mark_exploited(exploited.key)

    async def forget_sightings(self, conn: AsyncConnection, chain_id: int, first_dropped: int) -> None:
        """After a rollback's deletes (same transaction): origins seen only in dropped blocks leave their
        families, and the families that lost one get back the earliest sightings storage still holds."""
        touched = self.lineage.drop_sightings(chain_id, first_dropped)
        if touched:
            await add_origins(conn, self.lineage, {m for root in touched for m in self.lineage.members(root)})

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

    def fork_findings(self, row: dict, family_key: str) -> list[Finding]:
        """Findings for a deployment stored as `row` whose code counts in the family of `family_key`.

        Usually the copy is the deployment at hand. When the chains were read out of order and the family's
        other origin turns out to be *later* (its chain was caught up first), that later code is the copy, and
        the finding is about it."""
        me = Sighting(float(row["block_timestamp"] or 0), row["origin"], row["chain_id"], row["address"],
                      row["block_number"], row["tx_hash"], row["skeleton_hash"])
        other = self.lineage.earliest_other(family_key, me.origin)
        self.lineage.add_sighting(family_key, me)
        if other is None:
            return []
        copy, original = (me, other) if other.timestamp <= me.timestamp else (other, me)  # a tie: seen first
        return [self._fork(copy, original, family_key, row if copy is me else None)]

    def _fork(self, copy: Sighting, original: Sighting, family_key: str, row: dict | None) -> Finding:
        known = sorted(s.origin.removeprefix(KNOWN_PREFIX) for s in self.lineage.sightings(family_key)
                       if s.origin.startswith(KNOWN_PREFIX))
        return Finding(
            kind=FORK_DETECTED,
            severity=Severity.LOW if known else Severity.INFO,
            type=FindingType.INFO,
            chain_id=copy.chain_id,
            subject=copy.address,
            block=copy.block,
            tx_hash=copy.tx_hash,
            fingerprint=fingerprint(FORK_DETECTED, copy.chain_id, copy.origin, copy.key),
            evidence={
                "family": self.lineage.family(family_key),
                "class": copy.key,
                "code_class": family_key,
                "kind": row["kind"] if row else self.lineage.classes[copy.key].kind,
                "creator": row["creator"] if row else None,
                "deployer": row["deployer"] if row else None,
                "origin": copy.origin,
                "original": {"chain_id": original.chain_id, "address": original.address, "block": original.block,
                             "origin": None if original.origin.startswith(KNOWN_PREFIX) else original.origin,
                             "label": original.origin.removeprefix(KNOWN_PREFIX)
                             if original.origin.startswith(KNOWN_PREFIX) else None,
                             "timestamp": None if original.timestamp == float("-inf") else int(original.timestamp)},
                "other_origin": None if original.origin.startswith(KNOWN_PREFIX) else original.origin,
                "known_code": known,
                "related": self.related(copy.key, copy.chain_id, copy.address),
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
