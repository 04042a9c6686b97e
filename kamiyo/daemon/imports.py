"""`kamiyo index import`: known code (protocols deployed before the daemon started, or on chains it does not
follow) added to the lineage under a label, so that a later deployment copying it is recognised as a fork of it.

Imported code is an origin of its own ("known:LABEL"): a deployment that joins its family is someone else's copy.
Everything is written in one transaction; importing the same input again changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from eth_hash.auto import keccak
from sqlalchemy.ext.asyncio import AsyncEngine

from ..storage.lineage import known_sighting
from ..storage.schema import known_code
from ..storage.upsert import insert_new
from .linking import Linker


@dataclass(slots=True)
class ImportResult:
    contracts: int = 0
    new_classes: int = 0
    links: int = 0
    families: set[str] | None = None


async def import_known_code(engine: AsyncEngine, linker: Linker, label: str, items: Iterable[tuple[str, bytes]],
                            progress: Callable[[int], None] = lambda n: None) -> ImportResult:
    result, rows, keys = ImportResult(families=set()), [], set()
    for ident, code in items:
        seen = linker.observe(code, None, ident, label)
        linker.lineage.add_sighting(seen.key, known_sighting(seen.key, label, ident))
        rows.append({"label": label, "ident": ident, "skeleton_hash": seen.key,
                     "code_hash": "0x" + keccak(code).hex(), "kind": seen.kind})
        keys.add(seen.key)
        result.contracts += 1
        result.new_classes += seen.new
        result.links += len(linker.lineage.links_of(seen.key)) if seen.new else 0
        progress(1)
    async with engine.begin() as conn:
        await linker.write(conn, keys)
        await insert_new(conn, known_code, rows, keys=("label", "ident"))
    linker.committed(keys)
    result.families = {linker.lineage.family(k) for k in keys}
    return result
