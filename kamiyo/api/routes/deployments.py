"""`/v1/deployments`: the contracts stored for one chain, by block then address, in pages keyed on the same.

Reads the `deployments` table only: a deployment's family and relations are `/v1/contracts/{chain}/{address}/forks`.
"""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import and_, or_, select

from ...storage.schema import deployments
from ..context import Route, context
from ..errors import BadParameter
from ..keys import READ
from ..params import MAX_INT, Query, encode_cursor

LIST = "deployments"
PARAMETERS = ("chain", "from_block", "to_block", "limit", "cursor")


def deployment_json(row) -> dict:
    return {"chain_id": row.chain_id, "address": row.address, "block": row.block_number,
            "timestamp": row.block_timestamp, "tx_hash": row.tx_hash, "creator": row.creator,
            "deployer": row.deployer, "origin": row.origin, "internal": bool(row.internal), "kind": row.kind,
            "implementation": row.implementation, "code_hash": row.code_hash, "size": row.size,
            "code_class": row.skeleton_hash}


async def list_deployments(request: web.Request) -> web.Response:
    q = Query(request, PARAMETERS)
    chain = q.integer("chain", minimum=1, required=True)
    first, last = q.integer("from_block"), q.integer("to_block")  # from_block after to_block: an empty range
    limit = q.limit()
    after = q.cursor(LIST, 2)
    if after is not None and not (isinstance(after[0], int) and not isinstance(after[0], bool)
                                  and 0 <= after[0] <= MAX_INT and isinstance(after[1], str)):
        raise BadParameter("cursor", "not a cursor this list gave out (pass next_cursor back as it was)")

    c = deployments.c
    conditions = [c.chain_id == chain]
    if first is not None:
        conditions.append(c.block_number >= first)
    if last is not None:
        conditions.append(c.block_number <= last)
    if after is not None:
        conditions.append(or_(c.block_number > after[0], and_(c.block_number == after[0], c.address > after[1])))
    query = select(deployments).where(and_(*conditions)).order_by(c.block_number, c.address).limit(limit + 1)
    async with context(request).engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    cursor = encode_cursor(LIST, [rows[limit - 1].block_number, rows[limit - 1].address]) if len(rows) > limit \
        else None
    return web.json_response({"deployments": [deployment_json(r) for r in rows[:limit]], "next_cursor": cursor})


ROUTES = [Route("GET", "/v1/deployments", list_deployments, READ, "listDeployments")]
