"""Code classes, their links and origins in the database: rows out of the in-memory lineage, and the lineage
rebuilt from rows at start (classes in admission order, stored links replayed, no comparison recomputed)."""

from __future__ import annotations

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..analyzers.bytecode.lineage import ClassInfo, Lineage
from ..analyzers.bytecode.similarity import Link
from ..analyzers.bytecode.sketch import deserialize, serialize
from .schema import class_links, code_classes, deployments, known_code, proxy_upgrades
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
    await conn.execute(insert_new(conn, code_classes, class_row(info), keys=("skeleton_hash",)))
    for link in links:
        await conn.execute(insert_new(conn, class_links, link_row(link), keys=("a", "b")))


def implementation_of(row) -> str | None:
    """The implementation a deployment runs now: its latest recorded upgrade, else what its code named."""
    return row.current if getattr(row, "current", None) else row.implementation


async def load_lineage(engine: AsyncEngine, with_index: bool = True) -> Lineage:
    lineage = Lineage(with_index=with_index)
    async with engine.connect() as conn:
        by_newer: dict[str, list[Link]] = {}
        for r in await conn.execute(select(class_links)):
            by_newer.setdefault(r.a, []).append(Link(r.a, r.b, r.relation, r.similarity, dict(r.evidence)))
        for row in await conn.execute(select(code_classes).order_by(code_classes.c.seq)):
            lineage.restore(_info(row), by_newer.get(row.skeleton_hash, []))
        for key, origin in await conn.execute(_origins_query()):
            if key in lineage and origin:
                lineage.add_origin(key, origin)
        for key, label in await conn.execute(select(known_code.c.skeleton_hash, known_code.c.label).distinct()):
            if key in lineage:
                lineage.add_origin(key, KNOWN_PREFIX + label)
    return lineage


def _origins_query():
    """(class whose family a deployment belongs to, its origin) pairs: a proxy counts for the code it runs."""
    impl = deployments.alias("impl")
    key = select(impl.c.skeleton_hash).where(and_(impl.c.chain_id == deployments.c.chain_id,
                                                  impl.c.address == deployments.c.implementation))
    resolved = key.scalar_subquery()
    from sqlalchemy import func

    return select(func.coalesce(resolved, deployments.c.skeleton_hash), deployments.c.origin).distinct()


async def current_implementations(conn: AsyncConnection, chain_id: int, addresses: list[str]) -> dict[str, str]:
    """address -> implementation from the latest recorded upgrade, for those proxies that were upgraded."""
    if not addresses:
        return {}
    rows = await conn.execute(
        select(proxy_upgrades.c.address, proxy_upgrades.c.implementation)
        .where(and_(proxy_upgrades.c.chain_id == chain_id, proxy_upgrades.c.address.in_(addresses)))
        .order_by(proxy_upgrades.c.block_number, proxy_upgrades.c.log_index)
    )
    return {address: impl for address, impl in rows}  # later rows win
