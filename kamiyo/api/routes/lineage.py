"""Code lineage: one contract's forks (`kamiyo forks`), the live families, and the fork graph in the formats of
`kamiyo graph export`, all from reports/forks.py and reports/graph.py.

Each request rebuilds the families from the database, as the CLI does; serialising the graph (and drawing the
png) runs in a worker thread, off the event loop. matplotlib draws one picture at a time: it is not thread-safe.
"""

from __future__ import annotations

import asyncio
import importlib.util

from aiohttp import web

from ...analyzers.bytecode.graph import export_graph
from ...reports.forks import DeploymentNotFound, forks_report
from ...reports.graph import live_graph, render_text, to_networkx
from ..context import Route, context
from ..errors import UNSUPPORTED, ApiError, BadParameter, not_found
from ..keys import READ
from ..params import Query, address, encode_cursor, whole_number

# format -> (what export_graph calls it, or text / png; the response's content type)
GRAPH_FORMATS = {
    "json": ("node-link", "application/json"),
    "graphml": ("graphml", "application/graphml+xml"),
    "gexf": ("gexf", "application/gexf+xml"),
    "csv": ("csv", "text/csv"),
    "dot": ("dot", "text/vnd.graphviz"),
    "text": ("text", "text/plain"),
    "png": ("png", "image/png"),
}
_TEXTUAL = {"text/csv", "text/vnd.graphviz", "text/plain"}
_PICTURE = web.AppKey("kamiyo_api_picture_lock", asyncio.Lock)
LIST = "families"


async def contract_forks(request: web.Request) -> web.Response:
    q = Query(request, ("limit",))
    chain_id = whole_number("chain", request.match_info["chain"], minimum=1)
    where = address("address", request.match_info["address"])
    limit = q.limit()
    ctx = context(request)
    try:
        report = await forks_report(ctx.engine, chain_id, where, ctx.chain_names, limit)
    except DeploymentNotFound as exc:
        raise not_found(str(exc)) from exc
    return web.json_response(report)


def _earliest(deployment: dict) -> tuple:
    stamp = deployment["timestamp"]
    return (stamp is None, stamp or 0, deployment["chain_id"], deployment["block"], deployment["address"])


def families(graph: dict) -> list[dict]:
    """One entry per family of the live graph, by family id."""
    out: dict[str, dict] = {}
    for node in graph["nodes"]:
        family = out.setdefault(node["family"], {"id": node["family"], "classes": [], "deployments": [],
                                                 "known": 0})
        family["classes"].append(node["id"])
        family["deployments"].extend(node["deployments"])
        family["known"] += len(node["known"])
    shown = []
    for family_id in sorted(out):
        family = out[family_id]
        placed = family.pop("deployments")
        first = min(placed, key=_earliest, default=None)
        shown.append({**family, "classes": sorted(family["classes"]), "deployments": len(placed),
                      "size": len(placed) + family["known"],
                      "chains": sorted({d["chain"] for d in placed if d["chain"] is not None}),
                      "first": None if first is None else {k: first[k] for k in
                                                           ("chain", "chain_id", "address", "block", "timestamp")}})
    return shown


async def list_families(request: web.Request) -> web.Response:
    q = Query(request, ("min_size", "limit", "cursor"))
    min_size = q.integer("min_size", minimum=1, default=1)
    limit = q.limit()
    after = q.cursor(LIST, 1)
    if after is not None and not isinstance(after[0], str):
        raise BadParameter("cursor", "not a cursor this list gave out (pass next_cursor back as it was)")
    ctx = context(request)
    rows = [f for f in families(await live_graph(ctx.engine, ctx.chain_names)) if f["size"] >= min_size]
    if after is not None:
        rows = [f for f in rows if f["id"] > after[0]]
    cursor = encode_cursor(LIST, [rows[limit - 1]["id"]]) if len(rows) > limit else None
    return web.json_response({"families": rows[:limit], "next_cursor": cursor})


def _serialise(data: dict, fmt: str) -> bytes:
    if fmt == "text":
        return render_text(data).encode()
    if fmt == "png":
        from ...analyzers.bytecode.picture import render_png

        return render_png(to_networkx(data))
    return export_graph(to_networkx(data), fmt)


async def fork_graph(request: web.Request) -> web.Response:
    q = Query(request, ("format",))
    name = q.text("format", choices=GRAPH_FORMATS, default="json")
    fmt, content_type = GRAPH_FORMATS[name]
    if fmt == "png" and importlib.util.find_spec("matplotlib") is None:
        raise ApiError(501, UNSUPPORTED, "the png format needs matplotlib on the server (pip install matplotlib)")
    ctx = context(request)
    data = await live_graph(ctx.engine, ctx.chain_names)
    if fmt == "png":
        async with request.app[_PICTURE]:
            body = await asyncio.to_thread(_serialise, data, fmt)
    else:
        body = await asyncio.to_thread(_serialise, data, fmt)
    charset = "utf-8" if content_type in _TEXTUAL or content_type.endswith("+xml") else None
    return web.Response(body=body, content_type=content_type, charset=charset)


def setup(app: web.Application) -> None:
    app[_PICTURE] = asyncio.Lock()


ROUTES = [
    Route("GET", "/v1/contracts/{chain}/{address}/forks", contract_forks, READ, "getContractForks"),
    Route("GET", "/v1/families", list_families, READ, "listFamilies"),
    Route("GET", "/v1/graph", fork_graph, READ, "getForkGraph"),
]
