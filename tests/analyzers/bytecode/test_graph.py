"""Fork-family graph exports: each format read back by a real parser, identical across insertion orders."""

from __future__ import annotations

import copy
import csv
import io
import json
import re
import shutil
import subprocess
from typing import Any

import networkx as nx
import pytest

from kamiyo.analyzers.bytecode.graph import CSV_HEADER, FORMATS, export_graph

A, B, C, D, E, S = ("0x" + digit * 32 for digit in "123456")
FAMILY_A, FAMILY_D, FAMILY_S = A, D, S
WEIRD_MEMBER = 'bsc:weird "quoted", id'
TRICKY_LABEL = "lib\\core\nv2"  # a backslash and a newline

NODES: list[tuple[str, dict[str, Any]]] = [
    # no label: DOT falls back to the first member, the one with a quote and a comma
    (A, {"members": [WEIRD_MEMBER, "eth:0x01"], "kind": "contract", "family": FAMILY_A, "size": 4810}),
    (B, {"members": ["eth:0x02"], "kind": "contract", "family": FAMILY_A, "size": 4790, "label": "token-b"}),
    (C, {"members": ["eth:0x03", "arb:0x03"], "kind": "library", "family": FAMILY_A, "size": 2100,
         "label": TRICKY_LABEL}),
    (D, {"members": ["eth:0x04"], "kind": "eip1167", "family": FAMILY_D, "size": 45,
         "label": "minimal proxy"}),
    (E, {"members": ["base:0x05"], "kind": "proxy", "family": FAMILY_D, "size": 45}),
    (S, {"members": ["eth:0x06"], "kind": "eip7702", "family": FAMILY_S, "size": 23}),  # singleton family
]
EDGES: list[tuple[str, str, dict[str, Any]]] = [
    (A, B, {"relation": "clone", "similarity": 1.0,
            "evidence": {"opcode_jaccard": 1.0, "selector_similarity": 1.0, "topic_similarity": 1.0}}),
    (A, C, {"relation": "fork", "similarity": 0.87314,
            "evidence": {"opcode_jaccard": 0.91, "selector_similarity": 0.8, "shared_selectors": 12}}),
    (D, E, {"relation": "clone", "similarity": 1.0, "evidence": {"opcode_jaccard": 1.0}}),
    (D, A, {"relation": "delegates", "similarity": 1.0, "evidence": {"via": "eip1167"}}),
]


def _reversed_dict(data: dict[str, Any]) -> dict[str, Any]:
    return {k: _reversed_dict(v) if isinstance(v, dict) else v for k, v in reversed(list(data.items()))}


def _build(scrambled: bool = False) -> nx.Graph:
    """The fixture graph; ``scrambled`` inserts nodes, edges, endpoints and attribute keys in reverse."""
    graph = nx.Graph()
    nodes, edges = copy.deepcopy(NODES), copy.deepcopy(EDGES)
    if scrambled:
        nodes = [(n, _reversed_dict(d)) for n, d in reversed(nodes)]
        edges = [(v, u, _reversed_dict(d)) for u, v, d in reversed(edges)]
    graph.add_nodes_from(nodes)
    graph.add_edges_from(edges)
    return graph


def _edges(graph: nx.Graph) -> dict[frozenset[str], dict[str, Any]]:
    return {frozenset((u, v)): dict(data) for u, v, data in graph.edges(data=True)}


def _decode_node(data: dict[str, Any]) -> dict[str, Any]:
    """Undo the scalar encoding of GraphML/GEXF: members from JSON, member_count checked and dropped."""
    decoded = dict(data)
    decoded["members"] = json.loads(decoded["members"])
    assert decoded.pop("member_count") == len(decoded["members"])
    return decoded


def _decode_edge(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "evidence": json.loads(data["evidence"])}


def test_node_link_round_trips_with_schema_version() -> None:
    graph = _build()
    document = json.loads(export_graph(graph, "node-link"))

    assert document["schema_version"] == 1
    assert [node["id"] for node in document["nodes"]] == sorted(graph.nodes)
    assert document["nodes"][0]["members"] == [WEIRD_MEMBER, "eth:0x01"]  # lists stay JSON lists
    back = nx.node_link_graph(document, edges="edges")
    assert dict(back.nodes(data=True)) == dict(graph.nodes(data=True))
    assert _edges(back) == _edges(graph)


def test_graphml_round_trips_with_json_string_attributes() -> None:
    graph = _build()
    back = nx.read_graphml(io.BytesIO(export_graph(graph, "graphml")))

    assert set(back.nodes) == set(graph.nodes)
    for node, data in back.nodes(data=True):
        assert isinstance(data["members"], str) and isinstance(data["size"], int)
        assert _decode_node(data) == graph.nodes[node]
    assert {key: _decode_edge(data) for key, data in _edges(back).items()} == _edges(graph)


def test_gexf_round_trips_with_json_string_attributes() -> None:
    graph = _build()
    raw = export_graph(graph, "gexf")
    back = nx.read_gexf(io.BytesIO(raw))

    assert b"lastmodifieddate" not in raw  # today's date would make exports differ day to day
    assert set(back.nodes) == set(graph.nodes)
    for node, data in back.nodes(data=True):
        expected = {"label": node, **graph.nodes[node]}  # GEXF gives every node a label, its id by default
        assert _decode_node(data) == expected
    edges = {key: _decode_edge(data) for key, data in _edges(back).items()}
    for data in edges.values():
        del data["id"]  # the writer numbers GEXF edges
    assert edges == _edges(graph)


def test_csv_has_one_sorted_row_per_edge() -> None:
    reader = csv.DictReader(io.StringIO(export_graph(_build(), "csv").decode("utf-8")))
    rows = list(reader)

    assert tuple(reader.fieldnames or ()) == CSV_HEADER
    assert [(r["a"], r["b"], r["relation"], r["similarity"], r["family_a"], r["family_b"]) for r in rows] == [
        (A, B, "clone", "1.0000", FAMILY_A, FAMILY_A),
        (A, C, "fork", "0.8731", FAMILY_A, FAMILY_A),
        (A, D, "delegates", "1.0000", FAMILY_A, FAMILY_D),
        (D, E, "clone", "1.0000", FAMILY_D, FAMILY_D),
    ]
    assert json.loads(rows[1]["evidence"]) == EDGES[1][2]["evidence"]
    assert json.loads(rows[2]["evidence"]) == {"via": "eip1167"}


_DOT_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')


def _dot_unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "r": "\r"}.get(m[1], m[1]), text)


def test_dot_has_one_cluster_per_family_and_escaped_strings() -> None:
    text = export_graph(_build(), "dot").decode("utf-8")
    lines = text.splitlines()

    assert lines[0] == "graph fork_families {" and lines[-1] == "}"
    # Every double quote belongs to a well-formed string that ends on its own line.
    assert all('"' not in _DOT_STRING.sub("", line) for line in lines)
    strings = {_dot_unescape(s) for line in lines for s in _DOT_STRING.findall(line)}
    assert f"{WEIRD_MEMBER}\ncontract, 2 members" in strings
    assert f"{TRICKY_LABEL}\nlibrary, 2 members" in strings
    assert "minimal proxy\neip1167, 1 member" in strings
    assert r'"lib\\core\nv2\nlibrary, 2 members"' in text
    assert r'"bsc:weird \"quoted\", id' in text

    blocks = re.findall(r"subgraph (cluster_\d+) \{\n(.*?)\n  \}", text, flags=re.S)
    assert [name for name, _ in blocks] == ["cluster_0", "cluster_1", "cluster_2"]
    by_label = {
        _dot_unescape(_DOT_STRING.search(body)[1]): set(re.findall(r'^    "(0x[0-9a-f]{32})" \[', body, re.M))
        for _, body in blocks
    }
    assert by_label == {
        f"family {FAMILY_A}\n3 nodes": {A, B, C},
        f"family {FAMILY_D}\n2 nodes": {D, E},
        f"family {FAMILY_S}\n1 node": {S},
    }
    assert f'  "{A}" -- "{B}" [label="clone 1.0000", style=solid];' in lines
    assert f'  "{A}" -- "{C}" [label="fork 0.8731", style=dashed];' in lines
    assert f'  "{A}" -- "{D}" [label="delegates 1.0000", style=dotted];' in lines


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz `dot` is not installed")
def test_dot_parses_with_graphviz() -> None:
    result = subprocess.run(
        ["dot", "-Tjson"], input=export_graph(_build(), "dot"), capture_output=True, check=True, timeout=60
    )
    objects = json.loads(result.stdout)["objects"]
    names = [obj["name"] for obj in objects]
    clusters = {obj["label"]: {names[i] for i in obj.get("nodes", [])} for obj in objects if "nodes" in obj}

    node_names = sorted(name for name in names if not name.startswith("cluster_"))
    assert node_names == sorted(node for node, _ in NODES)
    assert len(objects) == len(NODES) + 3  # six nodes and three clusters, nothing else
    assert clusters == {
        f"family {FAMILY_A}\\n3 nodes": {A, B, C},
        f"family {FAMILY_D}\\n2 nodes": {D, E},
        f"family {FAMILY_S}\\n1 node": {S},
    }
    assert len(json.loads(result.stdout)["edges"]) == len(EDGES)


@pytest.mark.parametrize("fmt", FORMATS)
def test_exports_are_byte_identical_across_insertion_orders(fmt: str) -> None:
    first, second = export_graph(_build(), fmt), export_graph(_build(scrambled=True), fmt)

    assert first == second
    assert len(first) > 200


def test_export_leaves_the_input_graph_untouched() -> None:
    graph = _build(scrambled=True)
    before = (list(graph.nodes(data=True)), list(graph.edges(data=True)), dict(graph.graph))
    snapshot = copy.deepcopy(before)

    for fmt in FORMATS:
        export_graph(graph, fmt)

    assert (list(graph.nodes(data=True)), list(graph.edges(data=True)), dict(graph.graph)) == snapshot
    assert "member_count" not in graph.nodes[A]


def test_unknown_format_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown graph format 'pdf'") as info:
        export_graph(_build(), "pdf")

    assert all(fmt in str(info.value) for fmt in FORMATS)


def test_directed_graph_is_rejected() -> None:
    with pytest.raises(TypeError, match="undirected"):
        export_graph(nx.DiGraph(_build()), "csv")
