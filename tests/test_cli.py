"""The `kamiyo` command: analyze output shape, every input kind of `families`, exports, and one-line user errors."""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest

from kamiyo.cli import main

IMPL = "be" * 20
EIP1167 = bytes.fromhex(f"363d3d373d3d3d363d73{IMPL}5af43d82803e903d91602b57fd5bf3")
HASH16 = re.compile(r"0x[0-9a-f]{32}\Z")
SELECTOR = re.compile(r"0x[0-9a-f]{8}\Z")
TOPIC = re.compile(r"0x[0-9a-f]{64}\Z")
GET_RESERVES = "0x0902f1ac"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def assert_user_error(rc: int, err: str, *fragments: str) -> str:
    """Exit 2, exactly one line on stderr, which starts 'kamiyo: error:' and names what went wrong."""
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("kamiyo: error: ")
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def codes(npm_artifact) -> dict[str, bytes]:
    names = ("uniswap-v2-pair", "pancake-v2-pair", "uniswap-v2-factory", "uniswap-v2-erc20", "oz-erc20", "oz-erc721")
    return {name: npm_artifact(name) for name in names}


# ------------------------------------------------------------------------------------------------ analyze


def test_analyze_json_of_real_pair(capsys, codes):
    code = codes["uniswap-v2-pair"]
    rc, out, err = run(capsys, "analyze", "0x" + code.hex())
    assert rc == 0 and err == ""
    doc = json.loads(out)
    assert doc["schema_version"] == 1
    assert doc["size"] == len(code)
    assert doc["kind"] == "contract"
    assert doc["implementation"] is None
    assert doc["metadata"]["compiler"] == "solc" and doc["metadata"]["version"] == "0.5.16"
    assert len(doc["metadata"]["trailers"]) == 1 and doc["metadata"]["trailers"][0]["end"] == len(code)
    assert HASH16.match(doc["skeleton_hash"])
    assert GET_RESERVES in doc["selectors"]
    assert doc["selectors"] == sorted(doc["selectors"]) and len(set(doc["selectors"])) == len(doc["selectors"])
    assert all(SELECTOR.match(s) for s in doc["selectors"])
    assert doc["event_topics"] and all(TOPIC.match(t) for t in doc["event_topics"])
    # Transfer(address,address,uint256): the pair is an ERC-20 of its own
    assert "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef" in doc["event_topics"]
    assert isinstance(doc["instructions"], int) and 1000 < doc["instructions"] < len(code)
    assert "disassembly" not in doc


def test_analyze_minimal_proxy(capsys):
    rc, out, _ = run(capsys, "analyze", EIP1167.hex())  # bare hex works as well as 0x-hex
    doc = json.loads(out)
    assert rc == 0
    assert doc["schema_version"] == 1 and doc["size"] == 45
    assert doc["kind"] == "eip1167"
    assert doc["implementation"] == "0x" + IMPL
    assert doc["metadata"] == {"trailers": [], "compiler": None, "version": None}
    assert doc["selectors"] == [] and doc["event_topics"] == []
    assert HASH16.match(doc["skeleton_hash"])
    assert doc["instructions"] == 24


def test_analyze_at_file_equals_inline(capsys, tmp_path, codes):
    code = codes["uniswap-v2-erc20"]
    path = tmp_path / "erc20.hex"
    path.write_text("\n  0x" + code.hex() + "\n")  # whitespace around is fine
    _, inline, _ = run(capsys, "analyze", "0x" + code.hex())
    rc, from_file, err = run(capsys, "analyze", f"@{path}")
    assert rc == 0 and err == ""
    assert json.loads(from_file) == json.loads(inline)


def test_analyze_text_table(capsys, codes):
    rc, out, _ = run(capsys, "analyze", "0x" + codes["uniswap-v2-pair"].hex(), "--format", "text")
    assert rc == 0
    with pytest.raises(json.JSONDecodeError):
        json.loads(out)
    table = dict(re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in out.splitlines() if line[:1].strip())
    assert table["size"] == "11293 bytes"
    assert table["kind"] == "contract"
    assert table["compiler"] == "solc 0.5.16"
    assert HASH16.match(table["skeleton hash"])
    assert GET_RESERVES in table["selectors"].split(", ")
    # values line up in one column
    starts = {re.match(r"\S+(?: \S+)*\s{2,}", line).end() for line in out.splitlines() if line[:1].strip()}
    assert len(starts) == 1


def test_analyze_disasm_listing(capsys):
    rc, out, _ = run(capsys, "analyze", EIP1167.hex(), "--disasm")
    doc = json.loads(out)
    assert rc == 0
    listing = doc["disassembly"]
    assert len(listing) == doc["instructions"] == 24
    assert listing[0].split() == ["0:", "CALLDATASIZE"]
    assert any("DELEGATECALL" in line for line in listing)
    assert any(IMPL in line and "PUSH20" in line for line in listing)

    rc, text, _ = run(capsys, "analyze", EIP1167.hex(), "--disasm", "--format", "text")
    assert rc == 0
    assert "DELEGATECALL" in text and "kind" in text
    assert text.index("skeleton hash") < text.index("CALLDATASIZE")


@pytest.mark.parametrize(
    ("value", "fragment"),
    [("0xzz", "'z'"), ("0x123", "odd number of hex digits"), ("0x60 80", "' '")],
    ids=["bad-char", "odd-length", "inner-space"],
)
def test_analyze_malformed_hex(capsys, value, fragment):
    rc, out, err = run(capsys, "analyze", value)
    assert out == ""
    assert_user_error(rc, err, "not hex bytecode", fragment)


def test_analyze_unreadable_file(capsys, tmp_path):
    missing = tmp_path / "missing.hex"
    rc, _, err = run(capsys, "analyze", f"@{missing}")
    assert_user_error(rc, err, str(missing), "cannot read")

    rc, _, err = run(capsys, "analyze", f"@{tmp_path}")  # a directory
    assert_user_error(rc, err, str(tmp_path), "cannot read")

    binary = tmp_path / "binary.hex"
    binary.write_bytes(b"\xff\xfe\x00\x01")
    rc, _, err = run(capsys, "analyze", f"@{binary}")
    assert_user_error(rc, err, str(binary), "cannot read")

    bad = tmp_path / "bad.hex"
    bad.write_text("0x6080zz")
    rc, _, err = run(capsys, "analyze", f"@{bad}")
    assert_user_error(rc, err, str(bad), "not hex bytecode")


def _subprocess(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kamiyo.cli", *argv], capture_output=True, text=True, timeout=120, cwd=cwd,
        env={"PYTHONPATH": str(Path(__file__).resolve().parents[1]), "PATH": "/usr/bin:/bin"},
    )


def test_real_process_reports_a_user_mistake_in_one_line(tmp_path):
    proc = _subprocess("analyze", "0xzz", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == ["kamiyo: error: not hex bytecode: unexpected character 'z'"]

    proc = _subprocess("families", "--input", str(tmp_path / "nope.jsonl"), cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == [f"kamiyo: error: {tmp_path / 'nope.jsonl'}: no such file or directory"]


# ------------------------------------------------------------------------------------- families: errors


def _jsonl(path: Path, rows: list[dict], gz: bool = False) -> Path:
    text = "".join(json.dumps(r) + "\n" for r in rows)
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


def test_families_bad_json_line_names_file_and_line(capsys, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"id": "a", "code": "0x6001"}) + "\n\n{not json\n")
    rc, out, err = run(capsys, "families", "--input", str(path))
    assert out == ""
    assert_user_error(rc, err, f"{path}:3:", "not a JSON line")


def test_families_jsonl_line_without_code(capsys, tmp_path):
    path = _jsonl(tmp_path / "nocode.jsonl", [{"id": "a", "code": "0x6001"}, {"id": "b", "bytecode": "0x6001"}])
    rc, _, err = run(capsys, "families", "--input", str(path))
    assert_user_error(rc, err, f"{path}:2:", '"code"')


def test_families_jsonl_line_with_bad_hex(capsys, tmp_path):
    path = _jsonl(tmp_path / "badhex.jsonl", [{"id": "a", "code": "0x600"}])
    rc, _, err = run(capsys, "families", "--input", str(path))
    assert_user_error(rc, err, f"{path}:1:", "odd number of hex digits")


def test_families_unsupported_and_missing_paths(capsys, tmp_path):
    text = tmp_path / "codes.txt"
    text.write_text("0x6001")
    rc, _, err = run(capsys, "families", "--input", str(text))
    assert_user_error(rc, err, str(text), "unsupported input")

    missing = tmp_path / "absent" / "codes.jsonl"
    rc, _, err = run(capsys, "families", "--input", str(missing))
    assert_user_error(rc, err, str(missing), "no such file or directory")


def test_families_unknown_format(capsys, tmp_path):
    path = _jsonl(tmp_path / "ok.jsonl", [{"id": "a", "code": "0x6001"}])
    rc, out, err = run(capsys, "families", "--input", str(path), "--format", "xml")
    assert out == ""
    assert_user_error(rc, err, "unknown format 'xml'", "graphml")


def test_families_unwritable_out(capsys, tmp_path):
    path = _jsonl(tmp_path / "ok.jsonl", [{"id": "a", "code": "0x6001"}])
    rc, _, err = run(capsys, "families", "--input", str(path), "--out", str(tmp_path))  # a directory
    assert_user_error(rc, err, str(tmp_path), "cannot write")


def test_families_duplicate_ids(capsys, tmp_path, codes):
    pair, erc20 = "0x" + codes["uniswap-v2-pair"].hex(), "0x" + codes["uniswap-v2-erc20"].hex()
    one = _jsonl(tmp_path / "one.jsonl", [{"id": "pair", "code": pair}, {"id": "erc20", "code": erc20}])
    two = _jsonl(tmp_path / "two.jsonl.gz", [{"id": "pair", "code": pair.upper().replace("0X", "0x")}], gz=True)
    rc, out, err = run(capsys, "families", "--input", str(one), "--input", str(two))
    assert rc == 0, err
    doc = json.loads(out)
    members = [m for fam in doc["families"] for m in fam["members"]]
    assert sorted(members) == ["erc20", "pair"]  # the repeated contract counted once
    assert doc["stats"]["contracts"] == 2

    clash = _jsonl(tmp_path / "clash.jsonl", [{"id": "pair", "code": erc20}])
    rc, out, err = run(capsys, "families", "--input", str(one), "--input", str(clash))
    assert out == ""
    assert_user_error(rc, err, "'pair'", "different code")


# --------------------------------------------------------------------------------- families: input kinds


def _check_families_doc(doc: dict, expected_ids: set[str]) -> None:
    assert doc["schema_version"] == 1
    assert {"families", "classes", "edges", "stats"} <= doc.keys()
    members = [m for fam in doc["families"] for m in fam["members"]]
    assert sorted(members) == sorted(expected_ids)  # every id in exactly one family
    class_members = [m for cls in doc["classes"] for m in cls["members"]]
    assert sorted(class_members) == sorted(expected_ids)
    keys = {cls["skeleton_hash"] for cls in doc["classes"]}
    assert all(HASH16.match(k) for k in keys) and len(keys) == len(doc["classes"])
    for edge in doc["edges"]:
        assert edge["a"] in keys and edge["b"] in keys and edge["a"] != edge["b"]
        assert edge["relation"] in ("clone", "fork")
        assert 0 < edge["similarity"] <= 1
    assert doc["stats"]["contracts"] == len(expected_ids)


def _family_of(doc: dict) -> dict[str, str]:
    return {m: fam["id"] for fam in doc["families"] for m in fam["members"]}


@pytest.mark.parametrize("gz", [False, True], ids=["jsonl", "jsonl.gz"])
def test_families_from_jsonl(capsys, tmp_path, codes, gz):
    rows = [{"id": name, "code": "0x" + code.hex()} for name, code in codes.items()]
    rows.append({"id": "clone-proxy", "code": "0x" + EIP1167.hex()})
    path = _jsonl(tmp_path / ("c.jsonl.gz" if gz else "c.jsonl"), rows, gz=gz)
    rc, out, err = run(capsys, "families", "--input", str(path))
    assert rc == 0, err
    doc = json.loads(out)
    _check_families_doc(doc, {r["id"] for r in rows})
    # PancakeSwap's pair is Uniswap V2's, renamed: one family, linked by an edge
    family = _family_of(doc)
    assert family["uniswap-v2-pair"] == family["pancake-v2-pair"]
    assert family["clone-proxy"] != family["uniswap-v2-pair"]
    assert doc["edges"]
    assert doc["stats"]["skipped"] == 0


def test_families_from_hex_directory(capsys, tmp_path, codes):
    folder = tmp_path / "hex"
    (folder / "nested").mkdir(parents=True)
    (folder / "pair.hex").write_text("0x" + codes["uniswap-v2-pair"].hex())
    (folder / "nested" / "pancake.hex").write_text(codes["pancake-v2-pair"].hex() + "\n")
    (folder / "proxy.hex").write_text(EIP1167.hex())
    rc, out, err = run(capsys, "families", "--input", str(folder))
    assert rc == 0, err
    doc = json.loads(out)
    _check_families_doc(doc, {"pair", "pancake", "proxy"})
    assert _family_of(doc)["pair"] == _family_of(doc)["pancake"]


def test_families_from_bad_hex_file_in_directory(capsys, tmp_path):
    (tmp_path / "broken.hex").write_text("0xabc")
    rc, _, err = run(capsys, "families", "--input", str(tmp_path))
    assert_user_error(rc, err, str(tmp_path / "broken.hex"), "odd number")


PLACEHOLDER = "__$" + "0123456789abcdef0123456789abcdef01" + "$__"


def test_families_from_artifact_directory(capsys, tmp_path, codes):
    art = tmp_path / "artifacts"
    for sub in ("contracts/Pair.sol", "contracts/Token.sol", "v1/Token.sol", "v2/Token.sol", "lib"):
        (art / sub).mkdir(parents=True)
    pair_hex = codes["uniswap-v2-pair"].hex()
    factory_hex = codes["uniswap-v2-factory"].hex()
    linked = factory_hex[:200] + PLACEHOLDER + factory_hex[240:]  # a library link reference in the code
    zero_filled = factory_hex[:200] + "0" * 40 + factory_hex[240:]
    files = {
        "contracts/Pair.sol/Pair.json": {"contractName": "Pair", "deployedBytecode": "0x" + pair_hex},
        # a truffle/solc-standard shape: evm.deployedBytecode.object, no 0x
        "contracts/Token.sol/ERC20.json": {"evm": {"deployedBytecode": {"object": codes["oz-erc20"].hex()}}},
        "lib/Linked.json": {"deployedBytecode": "0x" + linked},
        "lib/IThing.json": {"contractName": "IThing", "bytecode": "0x", "deployedBytecode": "0x"},
        "v1/Token.sol/Token.json": {"deployedBytecode": "0x" + codes["uniswap-v2-erc20"].hex()},
        "v2/Token.sol/Token.json": {"deployedBytecode": "0x" + codes["oz-erc721"].hex()},
    }
    for rel, data in files.items():
        (art / rel).write_text(json.dumps(data))
    # The zero-filled code under the same id from another input: accepted only if the placeholder became zeros.
    expected = _jsonl(tmp_path / "linked.jsonl", [{"id": "Linked", "code": "0x" + zero_filled}])

    rc, out, err = run(capsys, "families", "--input", str(art), "--input", str(expected))
    assert rc == 0, err
    doc = json.loads(out)
    ids = {"Pair", "ERC20", "Linked", "v1/Token.sol/Token", "v2/Token.sol/Token"}
    _check_families_doc(doc, ids)
    assert doc["stats"]["skipped"] == 1
    skipped = [line for line in err.splitlines() if line.startswith("kamiyo: ")]
    assert len(skipped) == 1
    assert str(art / "lib/IThing.json") in skipped[0] and "IThing" in skipped[0] and "no runtime bytecode" in skipped[0]
    assert "error" not in err

    # zero-filling, seen directly: any other fill is a different code for the id "Linked"
    other = _jsonl(tmp_path / "other.jsonl", [{"id": "Linked", "code": "0x" + factory_hex[:200] + "1" * 40 + factory_hex[240:]}])
    rc, _, err = run(capsys, "families", "--input", str(art), "--input", str(other))
    assert_user_error(rc, err, "'Linked'", "different code")


def test_families_from_single_artifact_file(capsys, tmp_path, codes):
    path = tmp_path / "UniswapV2Pair.json"
    path.write_text(json.dumps({"abi": [], "bytecode": "0x00", "deployedBytecode": "0x" + codes["uniswap-v2-pair"].hex()}))
    rc, out, err = run(capsys, "families", "--input", str(path))
    assert rc == 0, err
    _check_families_doc(json.loads(out), {"UniswapV2Pair"})


def test_families_from_unreadable_artifact(capsys, tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"deployedBytecode": ')
    rc, _, err = run(capsys, "families", "--input", str(path))
    assert_user_error(rc, err, str(path), "not a readable JSON artifact")


def test_families_from_solc_combined_json(capsys, tmp_path, codes):
    path = tmp_path / "combined.json"
    path.write_text(json.dumps({
        "contracts": {
            "a.sol:A": {"bin-runtime": codes["uniswap-v2-pair"].hex(), "abi": []},
            "src/b.sol:B": {"bin-runtime": codes["pancake-v2-pair"].hex()},
            "a.sol:IA": {"bin-runtime": ""},  # interface: skipped
        },
        "version": "0.5.16+commit.9c3226ce",
    }))
    rc, out, err = run(capsys, "families", "--input", str(path))
    assert rc == 0, err
    doc = json.loads(out)
    # ids are `file:Contract`, the file named by its stem
    _check_families_doc(doc, {"a:A", "b:B"})
    assert doc["stats"]["skipped"] == 1
    assert "a:IA has no runtime bytecode" in err


def test_families_from_solc_standard_json(capsys, tmp_path, codes):
    path = tmp_path / "out.json"
    path.write_text(json.dumps({
        "contracts": {
            "contracts/Pair.sol": {"Pair": {"evm": {"deployedBytecode": {"object": codes["uniswap-v2-pair"].hex()}}}},
            "contracts/Tok.sol": {"Tok": {"evm": {"deployedBytecode": {"object": codes["uniswap-v2-erc20"].hex()}}}},
        }
    }))
    rc, out, err = run(capsys, "families", "--input", str(path))
    assert rc == 0, err
    _check_families_doc(json.loads(out), {"Pair:Pair", "Tok:Tok"})


# ------------------------------------------------------------------------------------- families: exports


@pytest.fixture(scope="module")
def corpus_jsonl(tmp_path_factory, codes) -> Path:
    rows = [{"id": name, "code": "0x" + code.hex()} for name, code in codes.items()]
    rows.append({"id": "0x" + "ab" * 20, "code": "0x" + codes["uniswap-v2-erc20"].hex()})
    rows.append({"id": "proxy", "code": "0x363d3d373d3d3d363d73" + "ab" * 20 + "5af43d82803e903d91602b57fd5bf3"})
    return _jsonl(tmp_path_factory.mktemp("export") / "corpus.jsonl", rows)


def _read_dot(data: bytes) -> list[str]:
    text = data.decode()
    assert re.match(r"\s*(strict\s+)?graph\b", text)
    assert text.rstrip().endswith("}")
    return text.splitlines()


@pytest.mark.parametrize("fmt", ["node-link", "graphml", "gexf", "csv", "dot"])
def test_families_exports_parse(capsys, tmp_path, corpus_jsonl, fmt):
    out_path = tmp_path / f"families.{fmt}"
    rc, out, err = run(capsys, "families", "--input", str(corpus_jsonl), "--format", fmt, "--out", str(out_path))
    assert rc == 0, err
    assert out == ""  # written to --out, not stdout
    data = out_path.read_bytes()
    assert data
    _, ref, _ = run(capsys, "families", "--input", str(corpus_jsonl))
    doc = json.loads(ref)
    classes = {c["skeleton_hash"] for c in doc["classes"]}
    if fmt == "node-link":
        graph = json.loads(data)
        assert {n["id"] for n in graph["nodes"]} == classes
    elif fmt == "graphml":
        graph = nx.read_graphml(io.BytesIO(data))
        assert set(graph.nodes) == classes
        assert graph.number_of_edges() >= len(doc["edges"])  # links plus delegations
    elif fmt == "gexf":
        graph = nx.read_gexf(io.BytesIO(data))
        assert set(graph.nodes) == classes
    elif fmt == "csv":
        table = list(csv.reader(io.StringIO(data.decode())))
        assert len(table) >= 2 and len(set(map(len, table))) == 1
    else:
        assert len(_read_dot(data)) > len(classes)


def test_families_json_to_out_equals_stdout(capsys, tmp_path, corpus_jsonl):
    out_path = tmp_path / "families.json"
    rc, out, _ = run(capsys, "families", "--input", str(corpus_jsonl), "--out", str(out_path))
    assert rc == 0 and out == ""
    _, stdout, _ = run(capsys, "families", "--input", str(corpus_jsonl))
    assert json.loads(out_path.read_text()) == json.loads(stdout)


def test_proxy_joins_family_of_its_implementation_when_listed(capsys, corpus_jsonl):
    _, out, _ = run(capsys, "families", "--input", str(corpus_jsonl))
    doc = json.loads(out)
    family = _family_of(doc)
    assert family["proxy"] == family["0x" + "ab" * 20]
    assert doc["stats"]["delegations"] == 1


def test_families_writes_several_formats_from_one_run(tmp_path, npm_artifact):
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(json.dumps({"id": n, "code": "0x" + npm_artifact(n).hex()})
                             for n in ("uniswap-v2-pair", "pancake-v2-pair", "oz-erc20")))
    out, png, dot = tmp_path / "f.json", tmp_path / "f.png", tmp_path / "f.dot"
    assert main(["families", "--input", str(src), "--out", str(out), "--export", f"png={png}", "--export", f"dot={dot}"]) == 0
    assert json.loads(out.read_text())["schema_version"] == 1
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert dot.read_text().startswith("graph fork_families {")


def test_families_rejects_a_malformed_export(tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "a", "code": "0x00"}\n')
    with pytest.raises(SystemExit) as exc:
        main(["families", "--input", str(src), "--export", "png"])
    assert exc.value.code == 2
    assert "FORMAT=FILE" in capsys.readouterr().err
    assert main(["families", "--input", str(src), "--export", "pdf=x.pdf"]) == 2
    assert "unknown format 'pdf'" in capsys.readouterr().err


def test_combined_json_sources_sharing_a_stem_keep_their_paths(tmp_path, capsys, npm_artifact):
    pair, erc20 = npm_artifact("uniswap-v2-pair").hex(), npm_artifact("oz-erc20").hex()
    combined = {"contracts": {"src/a.sol:A": {"bin-runtime": pair}, "lib/a.sol:A": {"bin-runtime": erc20},
                              "b.sol:B": {"bin-runtime": erc20}}}
    path = tmp_path / "combined.json"
    path.write_text(json.dumps(combined))
    assert main(["families", "--input", str(path)]) == 0
    ids = {m for f in json.loads(capsys.readouterr().out)["families"] for m in f["members"]}
    assert ids == {"src/a:A", "lib/a:A", "b:B"}


HOSTILE_JSONL = {
    "deeply-nested.jsonl": "[" * 100_000 + "]" * 100_000 + "\n",  # once killed the process (C stack overflow)
    "huge-int.jsonl": '{"id": "a", "code": "0x00", "n": ' + "9" * 5000 + "}\n",
    "surrogate-id.jsonl": '{"id": "\\ud800", "code": "0x00"}\n',
    "control-id.jsonl": '{"id": "a\\u0001b", "code": "0x00"}\n',
    "null-code.jsonl": '{"id": "a", "code": null}\n',
}


@pytest.mark.parametrize("name", sorted(HOSTILE_JSONL))
def test_hostile_jsonl_lines_are_one_clear_error(tmp_path, capsys, name):
    path = tmp_path / name
    path.write_text(HOSTILE_JSONL[name])
    rc, _, err = run(capsys, "families", "--input", str(path), "--format", "text")
    assert_user_error(rc, err, f"{path}:1:")


def test_a_corrupted_gzip_is_one_clear_error(tmp_path, capsys):
    path = tmp_path / "broken.jsonl.gz"
    good = gzip.compress(b'{"id": "a", "code": "0x00"}\n' * 100)
    path.write_bytes(good[:20] + bytes(len(good) - 20))
    rc, _, err = run(capsys, "families", "--input", str(path))
    assert_user_error(rc, err, str(path), "cannot read")


def test_json_that_is_not_an_artifact_is_reported(tmp_path, capsys):
    for name, text in {"list.json": "[1, 2, 3]", "number.json": "5", "odd.json": '{"contracts": {"a.sol": "x"}}'}.items():
        (tmp_path / name).write_text(text)
    rc, out, err = run(capsys, "families", "--input", str(tmp_path))
    assert rc == 0 and json.loads(out)["stats"]["contracts"] == 0
    assert sum("not a compiler artifact" in line for line in err.splitlines()) == 3


def test_combined_json_with_odd_source_paths(tmp_path, capsys, npm_artifact):
    code = npm_artifact("oz-erc20").hex()
    (tmp_path / "c.json").write_text(json.dumps({"contracts": {"/:C": {"bin-runtime": code}, "//:C": {"bin-runtime": code}}}))
    rc, out, _ = run(capsys, "families", "--input", str(tmp_path / "c.json"))
    assert rc == 0
    assert sorted(m for f in json.loads(out)["families"] for m in f["members"]) == sorted(["/:C", "//:C"])


def test_one_user_id_for_two_codes_names_where(tmp_path, capsys):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text('{"id": "x", "code": "0x00"}\n')
    b.write_text('{"id": "y", "code": "0x00"}\n{"id": "x", "code": "0x01"}\n')
    rc, _, err = run(capsys, "families", "--input", str(a), "--input", str(b))
    assert_user_error(rc, err, f"{b}:2:", "'x'", "different code")
