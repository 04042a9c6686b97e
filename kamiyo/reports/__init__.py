"""Reports over the daemon's database: forks of one contract, the live fork graph, findings.

Each module has one async function that reads through an AsyncEngine and returns plain JSON-able data, and a
text renderer for people. Reports never write, and they know chains only by the names they are handed: a chain
that is no longer configured is shown by its decimal chain id.
"""

from __future__ import annotations

from collections.abc import Mapping

ChainNames = Mapping[int, str]  # chain_id -> the slug in the configuration


def chain_name(names: ChainNames, chain_id: int | None) -> str | None:
    """The configured slug of a chain, else its id in decimal; None for imported code, which has no chain."""
    if chain_id is None:
        return None
    return names.get(chain_id, str(chain_id))
