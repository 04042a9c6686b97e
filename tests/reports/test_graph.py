"""The live fork graph out of the database: which classes are nodes, what they carry, and that every exporter's
output reads back with networkx (nested deployment lists included)."""

from __future__ import annotations

import csv
import io
import json

import networkx as nx
import pytest

from kamiyo.analyzers.bytecode.graph import CSV_HEADER, export_graph
from kamiyo.reports.graph import live_graph, render_text, summary, to_networkx
from tests.support.stored_world import A1, A2, BSC, BSCSWAP_ID, BSCSWAP_LABEL, C1, ETH, P1, P2, TEAM, UNCONFIGURED

pytestmark = pytest.mark.npm
NAMES = {ETH: "eth", BSC: "bsc"}
DEPLOYMENT_FIELDS = {"chain", "chain_id", "address", "block", "timestamp", "creator", "tx"}


@pytest.fixture
async def data(engine):
    return await live_graph(engine, NAMES)


def nodes_of(data) -> dict[str, dict]:
    return {n["id"]: n for n in data["nodes"]}


def test_nodes_are_the_classes_something_stored_stands_for(world, data):
    k = world.keys
    assert set(nodes_of(data)) == {k["A1"], k["E1"], k["B1"], k[BSCSWAP_LABEL], k["C1"], k["P1"], k["P3"]}
    assert k["Z1"] in world.lineage.classes  # its class was stored, but its only deployment was rolled back


def test_a_node_lists_its_deployments_with_every_field_earliest_first(world, data):
    pair = nodes_of(data)[world.keys["A1"]]
    assert [d["address"] for d in pair["deployments"]] == [A1, A2]  # R1 (same class) was rolled back
    first = pair["deployments"][0]
    assert set(first) == DEPLOYMENT_FIELDS
    assert first == {"chain": "eth", "chain_id": ETH, "address": A1, "block": 100, "timestamp": 1_600_000_000,
                     "creator": TEAM, "tx": "0x" + f"{100:064x}"}
    assert pair["label"] == f"eth:{A1}" and pair["kind"] == "contract" and pair["known"] == []
    assert pair["members"] == [f"eth:{A1}", f"eth:{A2}"]
    assert pair["size"] == world.lineage.classes[world.keys["A1"]].size
    sushi = nodes_of(data)[world.keys["C1"]]
    assert sushi["deployments"][0]["chain"] == str(UNCONFIGURED) and sushi["label"] == f"{UNCONFIGURED}:{C1}"


def test_imported_code_is_a_node_with_its_label_and_id(world, data):
    known = nodes_of(data)[world.keys[BSCSWAP_LABEL]]
    assert known["known"] == [{"label": BSCSWAP_LABEL, "id": BSCSWAP_ID}]
    assert known["deployments"] == [] and known["label"] == BSCSWAP_ID


def test_families_and_a_proxy_class_that_runs_more_than_one_family_keeps_its_own(world, data):
    k, nodes = world.keys, nodes_of(data)
    uniswap = world.lineage.family(k["A1"])
    assert {nodes[k[n]]["family"] for n in ("A1", "B1", "C1", BSCSWAP_LABEL, "P3")} == {uniswap}
    # P1 (eth) runs Uniswap's pair; P2 (bsc) has the same code but runs nothing stored: the class stays apart
    assert [d["address"] for d in nodes[k["P1"]]["deployments"]] == [P1, P2]
    assert nodes[k["P1"]]["family"] == k["P1"]
    assert nodes[k["E1"]]["family"] == k["E1"]
    assert summary(data) == {"nodes": 7, "edges": 8, "families": 3}


def test_edges_are_the_stored_links_and_delegations(world, data):
    k = world.keys
    edges = {frozenset((e["a"], e["b"])): e for e in data["edges"]}
    stored = {frozenset((l.a, l.b)): l for key in (k["A1"], k["B1"], k["C1"]) for l in world.lineage.links_of(key)}
    delegations = {frozenset((k["P1"], k["A1"])): 1, frozenset((k["P3"], k["B1"])): 1}
    assert set(edges) == set(stored) | set(delegations)
    for pair, link in stored.items():
        assert (edges[pair]["relation"], edges[pair]["similarity"]) == (link.relation, link.similarity)
        assert edges[pair]["evidence"] == dict(link.evidence)
    clone = edges[frozenset((k["A1"], k["B1"]))]
    assert clone["relation"] == "clone" and clone["evidence"]  # opcode and interface evidence, as stored
    for pair in delegations:
        edge = edges[pair]
        assert edge["relation"] == "delegates"
        assert edge["evidence"]["deployments"] == 1 and edge["a"] == edge["evidence"]["proxy"]


def test_node_link_json_reads_back_with_every_deployment(data):
    document = json.loads(export_graph(to_networkx(data), "node-link"))
    graph = nx.node_link_graph(document, edges="edges")
    assert document["schema_version"] == 1
    assert graph.number_of_nodes() == 7 and graph.number_of_edges() == 8
    for node in data["nodes"]:
        assert graph.nodes[node["id"]]["deployments"] == node["deployments"]
        assert graph.nodes[node["id"]]["known"] == node["known"]


@pytest.mark.parametrize("fmt", ["graphml", "gexf"])
def test_xml_formats_keep_the_nested_lists_as_json_text(data, fmt):
    payload = export_graph(to_networkx(data), fmt)
    graph = (nx.read_graphml if fmt == "graphml" else nx.read_gexf)(io.BytesIO(payload))
    assert graph.number_of_nodes() == 7 and graph.number_of_edges() == 8
    for node in data["nodes"]:
        attrs = graph.nodes[node["id"]]
        assert json.loads(attrs["deployments"]) == node["deployments"]
        assert json.loads(attrs["known"]) == node["known"]
        assert int(attrs["member_count"]) == len(node["deployments"]) + len(node["known"])
        assert attrs["family"] == node["family"]


def test_csv_has_one_row_per_edge_with_families(world, data):
    rows = list(csv.reader(io.StringIO(export_graph(to_networkx(data), "csv").decode())))
    assert tuple(rows[0]) == CSV_HEADER and len(rows) == 9
    k = world.keys
    clone = next(r for r in rows[1:] if {r[0], r[1]} == {k["A1"], k["B1"]})
    assert clone[2] == "clone" and clone[4] == clone[5] == world.lineage.family(k["A1"])


def test_text_lists_families_largest_first(world, data):
    lines = render_text(data).splitlines()
    assert lines[0] == "7 classes, 8 edges, 3 families"
    assert lines[2].split() == ["family", "classes", "deployments", "known", "chains", "first", "deployment"]
    assert lines[4].split() == [world.lineage.family(world.keys["A1"]), "5", "5", "1", "137,bsc,eth", f"eth:{A1}"]
    assert len(lines) == 7
