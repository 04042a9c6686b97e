"""Operator commands against a real anvil chain and a real database: `backfill`, `index import`, `db backup`."""

from __future__ import annotations

import asyncio
import json

import pytest

from kamiyo.cli import main
from kamiyo.config import StorageSettings
from kamiyo.daemon.linking import Linker
from kamiyo.storage.engine import create_engine
from kamiyo.storage.migrations import upgrade
from tests.support import npm_artifacts
from tests.support.anvil import anvil, require_anvil
from tests.support.contracts import create_pair, creation_code, deploy, word
from tests.support.daemon import chain_toml, db_rows, storage_toml

pytestmark = pytest.mark.npm
TOKENS = ["0x" + f"{n:02x}" * 20 for n in (0x11, 0x22, 0x33)]


def write_config(tmp_path, node, **chain) -> str:
    path = tmp_path / "k.toml"  # the daemon's start_block and poll_interval unless `chain` gives them
    path.write_text(storage_toml(tmp_path / "k.db")
                    + chain_toml("cake", node, **({"start_block": None, "poll_interval": None} | chain)))
    return str(path)


@pytest.fixture
def codes():
    try:
        return {"cake-factory": creation_code("pancake-v2-factory"),
                "uni-factory": npm_artifacts.artifact_path("uniswap-v2-factory"),
                "uni-pair": npm_artifacts.artifact_path("uniswap-v2-pair")}
    except npm_artifacts.ArtifactUnavailable as exc:
        pytest.skip(str(exc))


def test_imported_known_code_makes_a_later_copy_a_fork_of_it_and_backfill_leaves_the_checkpoint(tmp_path, codes,
                                                                                                    capsys):
    require_anvil()
    db = tmp_path / "k.db"
    with anvil(1002) as node:
        other = node.rpc("eth_accounts")[1].lower()
        config = write_config(tmp_path, node, start_block=0)
        assert main(["index", "import", "--config", config, "--label", "uniswap-v2",
                     "--input", str(codes["uni-factory"]), "--input", str(codes["uni-pair"])]) == 0
        assert "uniswap-v2: 2 contracts imported, 2 new classes" in capsys.readouterr().out
        assert main(["index", "import", "--config", config, "--label", "uniswap-v2",
                     "--input", str(codes["uni-pair"])]) == 0  # again: nothing new
        assert "0 new classes" in capsys.readouterr().out
        assert db_rows(db, "SELECT label, count(*) FROM known_code GROUP BY label") == [("uniswap-v2", 2)]

        factory = deploy(node, other, codes["cake-factory"], word(other))
        pairs = [create_pair(node, other, factory, TOKENS[0], t) for t in TOKENS[1:]]
        head = int(node.rpc("eth_blockNumber"), 16)
        assert main(["backfill", "--config", config, "--chain", "cake", "--from", "0", "--to", str(head)]) == 0
        assert f"{head + 1} blocks, 3 deployments, 2 new findings" in capsys.readouterr().out
        assert db_rows(db, "SELECT count(*) FROM checkpoints") == [(0,)]  # a backfill is not the follower
        findings = {s: (sev, json.loads(e))
                    for s, sev, e in db_rows(db, "SELECT subject, severity, evidence FROM findings")}
        assert set(findings) == {factory, pairs[0]}  # the PancakeSwap fork of known Uniswap code, once per class
        severity, evidence = findings[pairs[0]]
        assert severity == "low" and evidence["known_code"] == ["uniswap-v2"]
        assert evidence["related"][0]["label"] == "uniswap-v2"

        assert main(["backfill", "--config", config, "--chain", "cake", "--from", "0", "--to", str(head)]) == 0
        assert "0 new findings" in capsys.readouterr().out  # running it again stores nothing twice
        assert db_rows(db, "SELECT count(*) FROM deployments") == [(3,)]

        assert main(["backfill", "--config", config, "--chain", "cake", "--from", "0", "--to", str(head + 5)]) == 2
        assert "beyond the confirmed head 3 of chain 'cake'" in capsys.readouterr().err
        assert main(["backfill", "--config", config, "--chain", "nope", "--from", "0", "--to", "1"]) == 2
        assert "no chain named 'nope'" in capsys.readouterr().err


def test_a_running_daemon_takes_in_imported_code_at_reload(tmp_path, codes):
    require_anvil()
    engine = create_engine(StorageSettings(url=f"sqlite:///{tmp_path / 'k.db'}"))
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(upgrade(engine))
        daemon_side = loop.run_until_complete(Linker.load(engine))  # what a running daemon holds
        with anvil(1002) as node:  # another process imports meanwhile
            assert main(["index", "import", "--config", write_config(tmp_path, node), "--label", "uniswap-v2",
                         "--input", str(codes["uni-pair"])]) == 0
        (pair_key,) = db_rows(tmp_path / "k.db", "SELECT skeleton_hash FROM known_code")[0]
        assert pair_key not in daemon_side.lineage
        assert loop.run_until_complete(daemon_side.refresh(engine)) == 1
        assert pair_key in daemon_side.lineage
        assert daemon_side.lineage.earliest_other(pair_key, "0xsomeone").origin == "known:uniswap-v2"
        assert loop.run_until_complete(daemon_side.refresh(engine)) == 0
    finally:
        loop.run_until_complete(engine.dispose())
        loop.close()


def test_db_backup_copies_a_consistent_database_and_refuses_to_overwrite(tmp_path, capsys):
    config = tmp_path / "k.toml"
    config.write_text(storage_toml(tmp_path / "k.db"))
    assert main(["db", "upgrade", "--config", str(config)]) == 0
    assert main(["db", "backup", "--config", str(config), str(tmp_path / "copy.db")]) == 0
    assert "pages" in capsys.readouterr().out
    assert db_rows(tmp_path / "copy.db", "PRAGMA integrity_check") == [("ok",)]
    assert {t for (t,) in db_rows(tmp_path / "copy.db", "SELECT name FROM sqlite_master WHERE type = 'table'")} >= {
        "checkpoints", "deployments", "code_classes", "findings"}
    assert main(["db", "backup", "--config", str(config), str(tmp_path / "copy.db")]) == 2
    err = capsys.readouterr().err
    assert "already exists (pass --overwrite" in err and "Traceback" not in err
    assert main(["db", "backup", "--overwrite", "--config", str(config), str(tmp_path / "copy.db")]) == 0
