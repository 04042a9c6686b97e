"""`kamiyo forks`: everything in the family of one stored deployment, on every chain, and how it relates to it.

A deployment counts in the family of the code it runs: a proxy whose implementation is a stored deployment on
its chain counts in that implementation's family, anything else in its own class's (as the daemon decides).
Relations are read from the stored links only; nothing is compared again here.
"""

from __future__ import annotations

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..errors import InputError
from ..storage.reading import chunks, family_class, implementation_class, load_families, resolved_deployments
from ..storage.schema import deployments, known_code
from . import ChainNames, chain_name
from .table import render_table

SCHEMA_VERSION = 1
DEFAULT_LIMIT = 1000
IDENTICAL, PROXY, FAMILY = "identical", "proxy", "family"


class DeploymentNotFound(InputError):
    """No deployment is stored at that address on that chain."""


async def forks_report(engine: AsyncEngine, chain_id: int, address: str, names: ChainNames,
                       limit: int = DEFAULT_LIMIT) -> dict:
    """The subject at (chain_id, lowercase address) and what is related to it, `limit` of them, best first."""
    lineage = await load_families(engine)
    async with engine.connect() as conn:
        subject = (await conn.execute(resolved_deployments().where(and_(
            deployments.c.chain_id == chain_id, deployments.c.address == address)))).first()
        if subject is None:
            raise DeploymentNotFound(f"no deployment of {address} is stored for chain {chain_name(names, chain_id)}",
                                     chain_id=chain_id, address=address)
        runs = family_class(subject)
        members = lineage.members(runs) if runs in lineage else [runs]
        rows = await _deployments_counting_in(conn, members)
        imported = await _known_code_in(conn, members)

    best = {}  # the subject's direct links, by the class at their other end
    for link in lineage.links_of(runs):
        other = link.b if link.a == runs else link.a
        if other not in best or link.similarity > best[other].similarity:
            best[other] = link

    def relation(cls: str, delegates: bool) -> tuple[str, float | None]:
        if cls == runs:  # the very code the subject runs: a copy of it, or a proxy running it
            return (PROXY if delegates else IDENTICAL), 1.0
        if (link := best.get(cls)) is not None:
            return link.relation, link.similarity
        return FAMILY, None

    related = []
    for row in rows:
        if (row.chain_id, row.address) == (subject.chain_id, subject.address):
            continue
        kind, similarity = relation(family_class(row), row.runs_class is not None)
        related.append({"chain": chain_name(names, row.chain_id), "chain_id": row.chain_id, "address": row.address,
                        "relation": kind, "similarity": similarity})
    for row in imported:
        kind, similarity = relation(row.skeleton_hash, False)
        related.append({"chain": None, "chain_id": None, "address": row.ident, "relation": kind,
                        "similarity": similarity, "label": row.label})
    related.sort(key=_order)
    return {
        "subject": {"chain": chain_name(names, subject.chain_id), "chain_id": subject.chain_id,
                    "address": subject.address, "kind": subject.kind,
                    "family": lineage.family(runs) if runs in lineage else runs},
        "related": related[:limit],
        "total": len(related),
        "schema_version": SCHEMA_VERSION,
    }


def _order(entry: dict) -> tuple:
    """Identical copies first, then by similarity (unknown last), then chain (imported code last), address."""
    similarity = entry["similarity"]
    return (entry["relation"] != IDENTICAL, similarity is None, -(similarity or 0.0),
            entry["chain"] is None, entry["chain"] or "", entry["address"])


async def _deployments_counting_in(conn: AsyncConnection, members: list[str]) -> list:
    """Deployments whose family class is among `members`: those of a member class that do not run other code,
    and proxies running a member class."""
    wanted, found = set(members), {}
    for part in chunks(members):
        for query in (resolved_deployments().where(deployments.c.skeleton_hash.in_(part)),
                      resolved_deployments().where(implementation_class().in_(part))):
            for row in await conn.execute(query):
                if family_class(row) in wanted:
                    found[(row.chain_id, row.address)] = row
    return list(found.values())


async def _known_code_in(conn: AsyncConnection, members: list[str]) -> list:
    found = []
    for part in chunks(members):
        found.extend(await conn.execute(select(known_code).where(known_code.c.skeleton_hash.in_(part))))
    return found


def render_text(report: dict) -> str:
    subject, related = report["subject"], report["related"]
    lines = [f"{subject['chain']}:{subject['address']}  {subject['kind']}  family {subject['family']}", ""]
    if not related and not report["total"]:
        return "\n".join(lines) + "no other deployment or imported code in this family\n"
    rows = [(r["relation"], None if r["similarity"] is None else f"{r['similarity']:.4f}", r["chain"] or "known",
             r["address"], r.get("label")) for r in related]
    lines.append(render_table(("relation", "similarity", "chain", "address", "label"), rows, right={1}).rstrip("\n"))
    shown = len(related)
    lines += ["", f"{report['total']} related" + (f", the first {shown} shown" if shown < report["total"] else "")]
    return "\n".join(lines) + "\n"
