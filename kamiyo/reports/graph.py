"""`kamiyo graph export`: the live fork graph, from the database, for the exporters of analyzers.bytecode.graph.

Nodes are the code classes that something stored still stands for (a deployment, or imported known code); a
class whose every deployment was rolled back by a reorg is no node, though it still shaped the families when
they were formed. Edges are the stored similarity links between nodes, and "delegates" edges from a proxy
class to the class of the implementation its deployments run.

A node's family is its class's family; a proxy class takes the family of the code its deployments run when that
is one family (one class of EIP-1167 clones names one implementation address, but on several chains that
address can hold different code, or none we stored).
"""

from __future__ import annotations

from collections import Counter

import networkx as nx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from ..analyzers.bytecode.lineage import Lineage
from ..storage.reading import family_class, load_families, resolved_deployments
from ..storage.schema import known_code
from . import ChainNames, chain_name
from .table import render_table

DELEGATES = "delegates"


def _family(lineage: Lineage, key: str) -> str:
    return lineage.family(key) if key in lineage else key  # a class row missing: the class stands alone


def _deployment(names: ChainNames, row) -> dict:
    return {"chain": chain_name(names, row.chain_id), "chain_id": row.chain_id, "address": row.address,
            "block": row.block_number, "timestamp": row.block_timestamp, "creator": row.creator, "tx": row.tx_hash}


def _first(entry: dict) -> tuple:
    """Earliest on chain first (by block time, where stored), then chain, block and address."""
    return (entry["timestamp"] is None, entry["timestamp"] or 0, entry["chain_id"], entry["block"], entry["address"])


async def live_graph(engine: AsyncEngine, names: ChainNames) -> dict:
    """{"nodes": [{"id", "kind", "family", "size", "label", "members", "deployments", "known"}], "edges": [{"a",
    "b", "relation", "similarity", "evidence"}]}, both sorted."""
    lineage = await load_families(engine)
    async with engine.connect() as conn:
        stored = (await conn.execute(resolved_deployments())).all()
        imported = (await conn.execute(select(known_code))).all()

    nodes: dict[str, dict] = {}
    runs_in: dict[str, set[str]] = {}  # class -> the families its deployments and imports count in
    delegations: Counter = Counter()  # (proxy class, implementation class) -> deployments

    def node(key: str, kind: str, size: int | None) -> dict:
        if key not in nodes:
            info = lineage.classes.get(key)
            nodes[key] = {"kind": info.kind if info else kind, "size": info.size if info else size,
                          "deployments": [], "known": []}
            runs_in[key] = set()
        return nodes[key]

    for row in stored:
        node(row.skeleton_hash, row.kind, row.size)["deployments"].append(_deployment(names, row))
        runs_in[row.skeleton_hash].add(_family(lineage, family_class(row)))
        if row.runs_class is not None and row.runs_class != row.skeleton_hash:
            delegations[(row.skeleton_hash, row.runs_class)] += 1
    for row in imported:
        node(row.skeleton_hash, row.kind, None)["known"].append({"label": row.label, "id": row.ident})
        runs_in[row.skeleton_hash].add(_family(lineage, row.skeleton_hash))

    for key, data in nodes.items():
        data["deployments"].sort(key=_first)
        data["known"].sort(key=lambda k: (k["label"], k["id"]))
        families = runs_in[key]
        data["family"] = next(iter(families)) if len(families) == 1 else _family(lineage, key)
        data["members"] = [f"{d['chain']}:{d['address']}" for d in data["deployments"]] + \
                          [k["id"] for k in data["known"]]
        data["label"] = data["members"][0]

    edges: dict[frozenset, dict] = {}
    for key in nodes:
        for link in lineage.links_of(key):
            if link.a in nodes and link.b in nodes:
                edges.setdefault(frozenset((link.a, link.b)), {
                    "a": link.a, "b": link.b, "relation": link.relation, "similarity": link.similarity,
                    "evidence": dict(link.evidence)})
    for (proxy, impl), count in sorted(delegations.items()):
        edges.setdefault(frozenset((proxy, impl)), {
            "a": proxy, "b": impl, "relation": DELEGATES, "similarity": 1.0,
            "evidence": {"proxy": proxy, "implementation": impl, "deployments": count}})
    return {
        "nodes": [{"id": key, **nodes[key]} for key in sorted(nodes)],
        "edges": sorted(edges.values(), key=lambda e: (e["a"], e["b"])),
    }


def to_networkx(data: dict) -> nx.Graph:
    """The graph export_graph takes: undirected, attributes as in `live_graph` (the id becomes the node)."""
    graph = nx.Graph()
    for entry in data["nodes"]:
        attrs = dict(entry)
        graph.add_node(attrs.pop("id"), **attrs)
    for edge in data["edges"]:
        graph.add_edge(edge["a"], edge["b"], relation=edge["relation"], similarity=edge["similarity"],
                       evidence=edge["evidence"])
    return graph


def summary(data: dict) -> dict:
    return {"nodes": len(data["nodes"]), "edges": len(data["edges"]),
            "families": len({n["family"] for n in data["nodes"]})}


def render_text(data: dict) -> str:
    """One line per family, largest first: its classes, deployments, imported code, chains and first member."""
    families: dict[str, dict] = {}
    for entry in data["nodes"]:
        fam = families.setdefault(entry["family"], {"classes": 0, "deployments": [], "known": 0})
        fam["classes"] += 1
        fam["deployments"].extend(entry["deployments"])
        fam["known"] += len(entry["known"])
    rows = []
    for family, fam in families.items():
        first = min(fam["deployments"], key=_first, default=None)
        chains = sorted({d["chain"] for d in fam["deployments"]})
        rows.append((family, fam["classes"], len(fam["deployments"]), fam["known"], ",".join(chains) or None,
                     f"{first['chain']}:{first['address']}" if first else None))
    rows.sort(key=lambda r: (-r[2] - r[3], -r[1], r[0]))
    counts = summary(data)
    head = f"{counts['nodes']} classes, {counts['edges']} edges, {counts['families']} families\n\n"
    return head + render_table(("family", "classes", "deployments", "known", "chains", "first deployment"), rows,
                               right={1, 2, 3})
