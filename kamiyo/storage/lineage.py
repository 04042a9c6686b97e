"""Code classes, their links and origins in the database: rows out of the in-memory lineage, and the lineage
rebuilt from rows at start (classes in admission order, stored links replayed, no comparison recomputed)."""

from __future__ import annotations

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..analyzers.bytecode.lineage import ClassInfo, Lineage, Sighting
from ..analyzers.bytecode.similarity import Link
from ..analyzers.bytecode.sketch import deserialize, serialize
from .schema import class_links, code_classes, deployments, known_code
from .upsert import insert_new

KNOWN_PREFIX = "known:"  # the origin of imported code: its label, never an address


def class_row(info: ClassInfo) -> dict:
    return {
        "skeleton_hash": info.key, "kind": info.kind, "size": info.size,
        "sketch": serialize(info.sketch) if info.sketch is not None else None,
        "selectors": list(info.selectors), "topics": list(info.topics),
        "first_chain_id": info.first_chain_id, "first_address": info.first_address, "label": info.label,
    }


def link_row(link: Link) -> dict:
    return {"a": link.a, "b": link.b, "relation": link.relation, "similarity": link.similarity,
            "evidence": dict(link.evidence)}


def _info(row) -> ClassInfo:
    return ClassInfo(row.skeleton_hash, row.kind, row.size, deserialize(row.sketch) if row.sketch else None,
                     tuple(row.selectors), tuple(row.topics), row.first_chain_id, row.first_address, row.label)


async def write_class(conn: AsyncConnection, info: ClassInfo, links: list[Link]) -> None:
    """Idempotent: a class written twice (two chains saw it, or a block was retried) stays one row."""
    await insert_new(conn, code_classes, class_row(info), keys=("skeleton_hash",))
    await insert_new(conn, class_links, [link_row(link) for link in links], keys=("a", "b"))


async def load_lineage(engine: AsyncEngine, with_index: bool = True) -> Lineage:
    lineage = Lineage(with_index=with_index)
    async with engine.connect() as conn:
        by_newer: dict[str, list[Link]] = {}
        for r in await conn.execute(select(class_links)):
            by_newer.setdefault(r.a, []).append(Link(r.a, r.b, r.relation, r.similarity, dict(r.evidence)))
        for row in await conn.execute(select(code_classes).order_by(code_classes.c.seq)):
            lineage.restore(_info(row), by_newer.get(row.skeleton_hash, []))
            lineage.seq = row.seq
        await add_origins(conn, lineage)
    return lineage


async def classes_since(engine: AsyncEngine, seq: int) -> list[tuple[int, ClassInfo]]:
    """Classes another process (an import, a backfill) stored after `seq`, in admission order."""
    async with engine.connect() as conn:
        rows = await conn.execute(select(code_classes).where(code_classes.c.seq > seq).order_by(code_classes.c.seq))
        return [(row.seq, _info(row)) for row in rows]


async def add_origins(conn: AsyncConnection, lineage: Lineage, classes: set[str] | None = None) -> None:
    """Every stored origin's earliest sighting into the lineage's families (adding one twice is harmless);
    with `classes`, only for those."""
    first: dict[tuple[str, str], Sighting] = {}
    for key, origin, timestamp, chain_id, address, block, tx in await conn.execute(_origins_query()):
        if classes is not None and key not in classes:
            continue
        if key in lineage and origin and (key, origin) not in first:
            first[(key, origin)] = Sighting(float(timestamp or 0), origin, chain_id, address, block, tx, key)
    for key, label, ident in await conn.execute(select(known_code.c.skeleton_hash, known_code.c.label,
                                                       known_code.c.ident)):
        if key in lineage and (classes is None or key in classes):
            first.setdefault((key, KNOWN_PREFIX + label), known_sighting(key, label, ident))
    for (key, _origin), sighting in first.items():
        lineage.add_sighting(key, sighting)


def known_sighting(key: str, label: str, ident: str) -> Sighting:
    return Sighting(float("-inf"), KNOWN_PREFIX + label, None, ident, None, None, key)


def _origins_query():
    """Deployments as (class whose family they count in, origin, when, where), earliest first: a proxy counts
    for the code it runs."""
    d, impl = deployments, deployments.alias("impl")
    resolved = select(impl.c.skeleton_hash).where(and_(
        impl.c.chain_id == d.c.chain_id, impl.c.address == d.c.implementation
    )).scalar_subquery()
    return (select(func.coalesce(resolved, d.c.skeleton_hash), d.c.origin, d.c.block_timestamp, d.c.chain_id,
                   d.c.address, d.c.block_number, d.c.tx_hash)
            .order_by(d.c.block_timestamp, d.c.chain_id, d.c.block_number))
