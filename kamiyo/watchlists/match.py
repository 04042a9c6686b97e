"""Which watchlists a finding concerns.

A contract entry covers:
- findings about the contract itself, or naming it among their addresses (a victim, a proxy, a pool);
- findings about any contract in its fork family: its code forked or cloned (`fork-detected`), a fork of it or
  the code it was forked from exploited (`fork-of-exploited`, and any exploit finding on a family member).
The family is the lineage's, looked up when the matcher is built (a proxy counts in the family of the code it
runs), so a family that grew since is seen at the next fan-out. A protocol entry covers findings whose evidence
names that protocol (a fork of a protocol's exploited code names the incident's protocol).
"""

from __future__ import annotations

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from ..analyzers.bytecode.lineage import Lineage
from ..storage.schema import deployments
from .store import Watchlist


def _normal(name: str) -> str:
    return " ".join(name.lower().split())


class Matcher:
    def __init__(self, lists: list[Watchlist], families: dict[tuple[int, str], str],
                 lineage: Lineage | None) -> None:
        self.lists = lists
        self.families = families  # (chain_id, address) -> family root, for watched and seen subjects
        self.lineage = lineage

    @classmethod
    async def build(cls, conn: AsyncConnection, lists: list[Watchlist], lineage: Lineage | None,
                    subjects: set[tuple[int, str]] = frozenset()) -> Matcher:
        """`subjects` are the (chain, address) pairs of the findings about to be matched: their families are
        looked up with the watched contracts', in one query."""
        wanted = {(e.chain_id, e.address) for w in lists for e in w.entries if e.address} | set(subjects)
        return cls(lists, await _families(conn, wanted, lineage) if lineage is not None else {}, lineage)

    def watchlists_for(self, finding: dict) -> list[Watchlist]:
        chain, subject = finding["chain_id"], finding["subject"]
        evidence = finding.get("evidence") or {}
        named = {str(a.get("address", "")).lower() for a in evidence.get("addresses", ()) if isinstance(a, dict)}
        protocol = _normal(str(evidence.get("protocol") or ""))
        family = self._family_of(chain, subject, evidence)
        out = []
        for watchlist in self.lists:
            for entry in watchlist.entries:
                if entry.address is not None:
                    if entry.chain_id == chain and (entry.address == subject or entry.address in named):
                        out.append(watchlist)
                        break
                    watched = self.families.get((entry.chain_id, entry.address))
                    if family is not None and watched is not None and watched == family:
                        out.append(watchlist)
                        break
                elif protocol and _normal(entry.protocol) in protocol:
                    out.append(watchlist)
                    break
        return out

    def _family_of(self, chain: int, subject: str, evidence: dict) -> str | None:
        if evidence.get("family") and self.lineage is not None and evidence["family"] in self.lineage.classes:
            return self.lineage.family(evidence["family"])
        return self.families.get((chain, subject))


async def _families(conn: AsyncConnection, pairs: set[tuple[int, str]], lineage: Lineage) -> dict:
    """(chain, address) -> family root, for the pairs the database has deployed (a proxy by its implementation)."""
    out: dict[tuple[int, str], str] = {}
    pairs = sorted(pairs)
    for start in range(0, len(pairs), 500):
        chunk = pairs[start : start + 500]
        rows = (await conn.execute(select(deployments.c.chain_id, deployments.c.address, deployments.c.skeleton_hash,
                                          deployments.c.implementation)
                                   .where(tuple_(deployments.c.chain_id, deployments.c.address).in_(chunk)))).all()
        implementations = {(r.chain_id, r.implementation) for r in rows if r.implementation}
        behind = {}
        if implementations:
            behind = {(r.chain_id, r.address): r.skeleton_hash for r in await conn.execute(
                select(deployments.c.chain_id, deployments.c.address, deployments.c.skeleton_hash)
                .where(tuple_(deployments.c.chain_id, deployments.c.address).in_(sorted(implementations))))}
        for r in rows:
            key = behind.get((r.chain_id, r.implementation), r.skeleton_hash) if r.implementation else r.skeleton_hash
            if key in lineage.classes:
                out[(r.chain_id, r.address)] = lineage.family(key)
    return out
