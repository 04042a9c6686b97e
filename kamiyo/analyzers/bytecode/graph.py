"""Export a fork-family graph to the formats researchers load: node-link JSON, GraphML, GEXF, CSV and DOT.

Every export is deterministic (nodes, edges and attribute names sorted, undirected edges written with the
smaller endpoint first) so two exports of the same graph are byte-identical and can be diffed. This module
must not mutate the graph it is given and must not need graphviz, pydot or lxml: DOT is written here and
the XML formats go through networkx's pure-Python writers on a converted copy.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Hashable, Mapping
from typing import Any

import networkx as nx

from kamiyo.errors import InputError

__all__ = ["CSV_HEADER", "FORMATS", "SCHEMA_VERSION", "export_graph"]

FORMATS = ("node-link", "graphml", "gexf", "csv", "dot")
SCHEMA_VERSION = 1  # of the node-link document; bump when its node or edge attributes change meaning
CSV_HEADER = ("a", "b", "relation", "similarity", "family_a", "family_b", "evidence")

# Coerced in the XML formats: an attribute whose values mix int and float across nodes would otherwise be
# declared twice under one name with two types, which readers handle badly.
_NUMERIC: dict[str, Callable[[Any], Any]] = {"similarity": float, "size": int, "member_count": int}
_DOT_STYLES = {"clone": "solid", "fork": "dashed", "delegates": "dotted"}
# One pass over the text, so a backslash we insert is never escaped a second time.
_DOT_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r"})
# networkx stamps today's date into GEXF <meta>; dropping it keeps exports identical from one day to the next.
# User text cannot match: inside XML attribute values a double quote is written as &quot;.
_GEXF_DATE = re.compile(rb' lastmodifieddate="[^"]*"')


def export_graph(graph: nx.Graph, fmt: str) -> bytes:
    """Serialise a fork-family graph as ``fmt``, one of FORMATS.

    Raises InputError (a ValueError) naming the valid formats when ``fmt`` is not one of them.
    """
    writer = _WRITERS.get(fmt) if isinstance(fmt, str) else None
    if writer is None:
        raise InputError(f"unknown graph format {fmt!r}; expected one of: {', '.join(FORMATS)}", fmt=fmt)
    if graph.is_directed() or graph.is_multigraph():
        kind = type(graph).__name__
        raise TypeError(f"fork-family export expects an undirected networkx.Graph, got {kind}")
    return writer(graph)


def _sorted_nodes(graph: nx.Graph) -> list[Hashable]:
    return sorted(graph.nodes, key=str)


def _sorted_edges(graph: nx.Graph) -> list[tuple[Hashable, Hashable]]:
    pairs = [tuple(sorted(edge, key=str)) for edge in graph.edges]
    return sorted(pairs, key=lambda pair: (str(pair[0]), str(pair[1])))


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _attrs(data: Mapping[str, Any], scalar: bool) -> dict[str, Any]:
    items = sorted(data.items(), key=lambda item: str(item[0]))
    if not scalar:
        return dict(items)
    out: dict[str, Any] = {}
    for key, value in items:
        if value is None:  # GraphML and GEXF have no null; an absent attribute says the same
            continue
        if key in _NUMERIC:
            value = _NUMERIC[key](value)
        elif isinstance(value, (list, tuple, dict)):
            value = _json(value)
        out[key] = value
    return out


def _canonical(graph: nx.Graph, scalar: bool) -> nx.Graph:
    """A copy built in sorted order; with ``scalar``, lists and dicts become compact JSON strings."""
    out = nx.Graph()
    out.graph.update(_attrs(graph.graph, scalar))
    for node in _sorted_nodes(graph):
        data = dict(graph.nodes[node])
        if scalar:
            data["member_count"] = len(data.get("members") or ())
        out.add_node(node)
        out.nodes[node].update(_attrs(data, scalar))
    for a, b in _sorted_edges(graph):
        out.add_edge(a, b)
        out.edges[a, b].update(_attrs(graph.edges[a, b], scalar))
    return out


def _node_link(graph: nx.Graph) -> bytes:
    data = nx.node_link_data(_canonical(graph, scalar=False), edges="edges")
    document = {"schema_version": SCHEMA_VERSION, **data}
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode("utf-8")


def _graphml(graph: nx.Graph) -> bytes:
    buffer = io.BytesIO()
    # Not nx.write_graphml: that switches to lxml when it is installed, and lxml's bytes differ.
    nx.write_graphml_xml(_canonical(graph, scalar=True), buffer)
    return buffer.getvalue()


def _gexf(graph: nx.Graph) -> bytes:
    buffer = io.BytesIO()
    nx.write_gexf(_canonical(graph, scalar=True), buffer)
    return _GEXF_DATE.sub(b"", buffer.getvalue(), count=1)


def _similarity(data: Mapping[str, Any]) -> str:
    value = data.get("similarity")
    return "" if value is None else f"{float(value):.4f}"


def _csv(graph: nx.Graph) -> bytes:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")  # LF rather than CRLF: exports are meant to be diffed
    writer.writerow(CSV_HEADER)
    for a, b in _sorted_edges(graph):
        data = graph.edges[a, b]
        writer.writerow(
            [
                a,
                b,
                data.get("relation", ""),
                _similarity(data),
                graph.nodes[a].get("family", ""),
                graph.nodes[b].get("family", ""),
                _json(data.get("evidence") or {}),
            ]
        )
    return text.getvalue().encode("utf-8")


def _quote(text: Any) -> str:
    """A DOT double-quoted string: backslash, double quote, newline and CR escaped, so no input can end it
    early. Graphviz decodes these escapes in labels; in ids they stay verbatim, still one distinct id each."""
    return '"' + str(text).translate(_DOT_ESCAPES) + '"'


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _node_label(node: Hashable, data: Mapping[str, Any]) -> str:
    members = list(data.get("members") or ())
    name = data.get("label") or (members[0] if members else node)
    kind = data.get("kind")
    return f"{name}\n{kind + ', ' if kind else ''}{_count(len(members), 'member')}"


def _dot(graph: nx.Graph) -> bytes:
    families: dict[str, list[Hashable]] = {}
    for node in _sorted_nodes(graph):
        families.setdefault(str(graph.nodes[node].get("family", node)), []).append(node)
    lines = ["graph fork_families {", "  node [shape=box];"]
    for index, family in enumerate(sorted(families)):
        nodes = families[family]
        label = f"family {family}\n{_count(len(nodes), 'node')}"
        lines += [f"  subgraph cluster_{index} {{", f"    label={_quote(label)};"]
        for node in nodes:
            lines.append(f"    {_quote(node)} [label={_quote(_node_label(node, graph.nodes[node]))}];")
        lines.append("  }")
    for a, b in _sorted_edges(graph):
        data = graph.edges[a, b]
        relation = str(data.get("relation", ""))
        label = f"{relation} {_similarity(data)}".strip()
        style = _DOT_STYLES.get(relation, "solid")
        lines.append(f"  {_quote(a)} -- {_quote(b)} [label={_quote(label)}, style={style}];")
    lines.append("}")
    return ("\n".join(lines) + "\n").encode("utf-8")


_WRITERS: dict[str, Callable[[nx.Graph], bytes]] = {
    "node-link": _node_link,
    "graphml": _graphml,
    "gexf": _gexf,
    "csv": _csv,
    "dot": _dot,
}
