"""`kamiyo forks`, `kamiyo graph export` and `kamiyo findings` through `kamiyo.cli.main`, on a database stored the
way the daemon stores it: output shapes, filters, files written, and every user mistake as one line, exit 2."""

from __future__ import annotations

import csv
import io
import json
import sqlite3

import networkx as nx
import pytest

from kamiyo import cli
from tests.support.stored_world import (A1, A2, B1, BSC, BSCSWAP_ID, C1, ETH, P1, P3, R1, UNCONFIGURED,
                                        write_config)

pytestmark = pytest.mark.npm
DEPLOYMENT_FIELDS = {"chain", "chain_id", "address", "block", "timestamp", "creator", "tx"}


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = cli.main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def failing(capsys, *argv: str) -> tuple[int, str]:
    rc, _, err = run(capsys, *argv)
    return rc, err


def assert_user_error(rc: int, err: str, *fragments: str) -> None:
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("kamiyo: error: ") and "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# -------------------------------------------------------------------------------------------------- forks


def test_forks_json_of_the_uniswap_pair(world, capsys):
    rc, out, err = run(capsys, "forks", f"eth:{A1.upper().replace('0X', '0x')}", "--config", str(world.config))
    assert rc == 0 and err == ""
    doc = json.loads(out)
    assert set(doc) == {"subject", "related", "total", "schema_version"}
    assert doc["subject"] == {"chain": "eth", "chain_id": ETH, "address": A1, "kind": "contract",
                              "family": world.lineage.family(world.keys["A1"])}
    by_address = {r["address"]: r for r in doc["related"]}
    assert set(by_address) == {A2, B1, P3, P1, BSCSWAP_ID, C1} and doc["total"] == 6
    pancake = by_address[B1]
    assert set(pancake) == {"chain", "chain_id", "address", "relation", "similarity"}
    assert (pancake["chain"], pancake["chain_id"], pancake["relation"]) == ("bsc", BSC, "clone")
    assert 0.8 <= pancake["similarity"] <= 1.0
    assert by_address[C1]["relation"] == "fork" and by_address[C1]["chain"] == str(UNCONFIGURED)
    assert by_address[P1]["relation"] == "proxy" and by_address[A2]["relation"] == "identical"
    assert doc["related"][0]["address"] == A2


def test_forks_by_the_pancakeswap_side_finds_uniswap_on_the_other_chain(world, capsys):
    rc, out, _ = run(capsys, "forks", f"bsc:{B1}", "--config", str(world.config), "--limit", "3")
    doc = json.loads(out)
    assert rc == 0 and doc["total"] == 6 and len(doc["related"]) == 3
    assert [(r["chain"], r["address"], r["relation"]) for r in doc["related"]] == [
        ("bsc", P3, "proxy"), ("eth", A1, "clone"), ("eth", A2, "clone")]


def test_forks_text(world, capsys):
    rc, out, err = run(capsys, "forks", f"eth:{P1}", "--config", str(world.config), "--format", "text")
    assert rc == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].startswith(f"eth:{P1}  eip1167  family ")
    assert lines[2].split() == ["relation", "similarity", "chain", "address", "label"]
    assert lines[4].split() == ["identical", "1.0000", "eth", A1, "-"]
    assert lines[-1] == "6 related"


@pytest.mark.parametrize(("subject", "fragments"), [
    ("polygon:" + "0x" + "11" * 20, ("no chain named 'polygon'", "configured: eth, bsc")),
    ("eth:0x1234", ("'0x1234'", "not an address")),
    ("eth:" + "11" * 20, ("not an address",)),
    ("0x" + "11" * 20, ("expected CHAIN:ADDRESS",)),
    ("eth:0x" + "de" * 20, ("no deployment of 0x" + "de" * 20, "chain eth")),
    (f"bsc:{R1}", (f"no deployment of {R1}",)),  # it was, until a reorg took it back
])
def test_forks_user_errors_are_one_line(world, capsys, subject, fragments):
    rc, out, err = run(capsys, "forks", subject, "--config", str(world.config))
    assert_user_error(rc, err, *fragments)
    assert out == ""


def test_forks_takes_a_decimal_chain_id_for_a_chain_no_longer_configured(world, capsys):
    rc, out, _ = run(capsys, "forks", f"{UNCONFIGURED}:{C1}", "--config", str(world.config))
    doc = json.loads(out)
    assert rc == 0 and doc["subject"]["chain"] == str(UNCONFIGURED)
    assert {r["address"]: r["relation"] for r in doc["related"]}[BSCSWAP_ID] == "clone"


def test_limit_must_be_a_whole_number(world, capsys):
    assert_user_error(*failing(capsys, "forks", f"eth:{A1}", "--config", str(world.config), "--limit", "-1"),
                      "--limit '-1'")


# ------------------------------------------------------------------------------------------- graph export


def test_graph_export_json_is_node_link_with_deployments(world, capsys, tmp_path):
    target = tmp_path / "graph.json"
    rc, out, err = run(capsys, "graph", "export", "--config", str(world.config), "--format", "json",
                       "--out", str(target))
    assert rc == 0 and out == ""
    assert err.strip() == f"{target}: 7 nodes, 8 edges, 3 families (json)"
    document = json.loads(target.read_text())
    graph = nx.node_link_graph(document, edges="edges")
    pair = graph.nodes[world.keys["A1"]]
    assert [d["address"] for d in pair["deployments"]] == [A1, A2]
    assert all(set(d) == DEPLOYMENT_FIELDS for n in graph.nodes for d in graph.nodes[n]["deployments"])
    assert pair["family"] == graph.nodes[world.keys["B1"]]["family"]
    assert graph.edges[world.keys["A1"], world.keys["B1"]]["relation"] == "clone"
    assert graph.edges[world.keys["P1"], world.keys["A1"]]["relation"] == "delegates"
    assert graph.nodes[world.keys["bscswap"]]["known"] == [{"label": "bscswap", "id": BSCSWAP_ID}]
    assert not list(tmp_path.glob(".graph.json.*"))  # the temporary file was renamed into place


def test_graph_export_graphml_reads_back(world, capsys, tmp_path):
    target = tmp_path / "graph.graphml"
    rc, _, err = run(capsys, "graph", "export", "--config", str(world.config), "--format", "graphml",
                     "--out", str(target))
    assert rc == 0 and "7 nodes" in err
    graph = nx.read_graphml(target)
    deployments = json.loads(graph.nodes[world.keys["A1"]]["deployments"])
    assert [d["address"] for d in deployments] == [A1, A2] and set(deployments[0]) == DEPLOYMENT_FIELDS
    assert graph.nodes[world.keys["A1"]]["label"] == f"eth:{A1}"


def test_graph_export_to_stdout_prints_no_summary(world, capsys):
    rc, out, err = run(capsys, "graph", "export", "--config", str(world.config), "--format", "csv", "--out", "-")
    assert rc == 0 and err == ""
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0][:4] == ["a", "b", "relation", "similarity"] and len(rows) == 9
    assert {r[2] for r in rows[1:]} == {"clone", "fork", "delegates"}


@pytest.mark.parametrize("fmt", ["gexf", "dot", "text"])
def test_graph_export_other_formats(world, capsys, fmt):
    rc, out, _ = run(capsys, "graph", "export", "--config", str(world.config), "--format", fmt, "--out", "-")
    assert rc == 0
    if fmt == "gexf":
        assert nx.read_gexf(io.BytesIO(out.encode())).number_of_nodes() == 7
    elif fmt == "dot":
        assert out.startswith("graph fork_families {") and "style=dotted" in out
    else:
        assert out.splitlines()[0] == "7 classes, 8 edges, 3 families"


def test_graph_export_to_a_missing_folder_is_one_line(world, capsys, tmp_path):
    rc, _, err = run(capsys, "graph", "export", "--config", str(world.config), "--format", "json",
                     "--out", str(tmp_path / "no" / "graph.json"))
    assert_user_error(rc, err, "graph.json: cannot write")


# ----------------------------------------------------------------------------------------------- findings


def findings(capsys, world, *flags: str) -> list[dict]:
    rc, out, err = run(capsys, "findings", "--config", str(world.config), *flags)
    assert rc == 0 and err == "", err
    doc = json.loads(out)
    assert set(doc) == {"findings"}
    return doc["findings"]


def test_findings_default_to_active_oldest_first(world, capsys):
    got = findings(capsys, world)
    assert [f["subject"] for f in got] == [B1, C1, P1]
    assert got[0] == {"id": world.findings["B1"], "kind": "fork-detected", "severity": "info", "type": "info",
                      "chain": "bsc", "subject": B1, "block": 200, "tx_hash": got[0]["tx_hash"], "status": "active",
                      "labels": [], "evidence": got[0]["evidence"], "created_at": "2024-01-01T00:00:00Z"}
    assert [f["created_at"] for f in got] == ["2024-01-01T00:00:00Z", "2024-01-02T12:00:00Z", "2024-01-03T00:00:00Z"]


def test_findings_filters(world, capsys):
    assert [f["subject"] for f in findings(capsys, world, "--status", "retracted")] == [R1]
    assert len(findings(capsys, world, "--status", "all")) == 4
    assert [f["subject"] for f in findings(capsys, world, "--chain", "bsc", "--status", "all")] == [B1, R1]
    assert [f["subject"] for f in findings(capsys, world, "--chain", str(UNCONFIGURED))] == [C1]
    assert findings(capsys, world, "--kind", "exploit-detected") == []
    assert len(findings(capsys, world, "--kind", "fork-detected")) == 3
    assert [f["subject"] for f in findings(capsys, world, "--since", "2024-01-02")] == [C1, P1]
    assert [f["subject"] for f in findings(capsys, world, "--since", "2024-01-02T13:00:00+01:00")] == [C1, P1]
    assert [f["subject"] for f in findings(capsys, world, "--since", "2024-01-02T12:00:01Z")] == [P1]


def test_findings_limit_says_on_stderr_that_more_match(world, capsys):
    rc, out, err = run(capsys, "findings", "--config", str(world.config), "--limit", "2")
    assert rc == 0 and [f["subject"] for f in json.loads(out)["findings"]] == [B1, C1]
    assert err.strip() == "kamiyo: more findings match than the 2 shown (narrow with --since, or raise --limit)"
    rc, _, err = run(capsys, "findings", "--config", str(world.config), "--limit", "3")
    assert rc == 0 and err == ""


def test_findings_text(world, capsys):
    rc, out, _ = run(capsys, "findings", "--config", str(world.config), "--format", "text", "--status", "all")
    lines = out.splitlines()
    assert rc == 0
    assert lines[0].split() == ["created_at", "severity", "type", "kind", "chain", "subject", "block", "status"]
    assert [line.split()[5] for line in lines[2:]] == [B1, C1, P1, R1]
    assert lines[3].split() == ["2024-01-02T12:00:00Z", "info", "info", "fork-detected", str(UNCONFIGURED), C1, "300",
                                "active"]


@pytest.mark.parametrize(("flags", "fragments"), [
    (("--since", "yesterday"), ("--since 'yesterday'", "ISO 8601")),
    (("--since", "2024-13-01"), ("--since '2024-13-01'",)),
    (("--chain", "polygon"), ("no chain named 'polygon'",)),
    (("--limit", "ten"), ("--limit 'ten'",)),
])
def test_findings_user_errors_are_one_line(world, capsys, flags, fragments):
    rc, out, err = run(capsys, "findings", "--config", str(world.config), *flags)
    assert_user_error(rc, err, *fragments)
    assert out == ""


# ----------------------------------------------------------------------------------------------- database


@pytest.mark.parametrize("argv", [("forks", f"eth:{A1}"), ("graph", "export", "--format", "json", "--out", "-"),
                                  ("findings",)])
def test_a_missing_database_is_one_line_and_is_not_created(capsys, tmp_path, argv):
    db = tmp_path / "state" / "kamiyo.db"
    config = write_config(tmp_path / "kamiyo.toml", db)
    rc, out, err = run(capsys, *argv, "--config", str(config))
    assert_user_error(rc, err, str(db), "no database here", "kamiyo db upgrade")
    assert out == "" and not db.parent.exists()


def test_a_database_without_our_schema_or_at_an_older_version_is_refused(capsys, tmp_path):
    db = tmp_path / "kamiyo.db"
    config = str(write_config(tmp_path / "kamiyo.toml", db))
    sqlite3.connect(db).close()  # an empty SQLite file
    assert_user_error(*failing(capsys, "findings", "--config", config), "no Kamiyo schema", "kamiyo db upgrade")
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, description TEXT, applied_at TEXT)")
        con.executemany("INSERT INTO schema_migrations VALUES (?, ?, '2024-01-01')", [(1, "one"), (2, "two")])
    assert_user_error(*failing(capsys, "findings", "--config", config), "schema version 2", "kamiyo db upgrade")
    with sqlite3.connect(db) as con:  # the read commands created and migrated nothing
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    assert tables == ["schema_migrations"]


def test_a_file_that_is_not_a_database_is_one_line(capsys, tmp_path):
    db = tmp_path / "kamiyo.db"
    db.write_bytes(b"not a database at all, just text" * 64)
    config = str(write_config(tmp_path / "kamiyo.toml", db))
    assert_user_error(*failing(capsys, "forks", f"eth:{A1}", "--config", config), "cannot read the database")
