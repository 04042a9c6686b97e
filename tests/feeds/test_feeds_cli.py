"""`kamiyo feeds pull` and `kamiyo sources` over recorded payloads read from local paths (a DeFiHackLabs checkout
with its PoC index, an RSS file, an OSV record; DeFiLlama over HTTP is in test_pull): every source stored, a second
pass unchanged, a broken source failing alone."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from kamiyo.cli import main

REPO = Path(__file__).resolve().parents[2]
FEEDS = REPO.parent / "shared" / "data" / "feeds"
REKT = REPO / "tests" / "feeds" / "fixtures" / "rekt-rss.xml"


@pytest.fixture
def config(tmp_path) -> Path:
    if not FEEDS.exists():
        pytest.skip(f"{FEEDS} is not here")
    path = tmp_path / "k.toml"
    path.write_text(f"""
[storage]
url = "sqlite:///{tmp_path / 'k.db'}"

[[feeds]]
name = "defihacklabs"
type = "defihacklabs"
path = "{FEEDS / 'defihacklabs'}"
poc_index = "{FEEDS / 'defihacklabs' / 'poc-index.derived.json'}"

[[feeds]]
name = "rekt"
type = "rss"
path = "{REKT}"

[[feeds]]
name = "ghsa"
type = "osv"
path = "{FEEDS / 'osv-GHSA-4j93-fm92-rp4m.json'}"

[[feeds]]
name = "broken"
type = "rss"
path = "{tmp_path / 'missing.xml'}"
""")
    return path


def counts(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as con:
        return dict(con.execute("SELECT source, count(*) FROM feed_records GROUP BY source"))


def test_pull_every_source_then_nothing_changes_and_a_broken_one_fails_alone(config, capsys):
    assert main(["feeds", "pull", "--config", str(config)]) == 1  # one source is broken
    out = capsys.readouterr().out
    assert "broken" in out and "failed" in out
    stored = counts(config.parent / "k.db")
    assert stored["defihacklabs"] == 857 and stored["ghsa"] == 1 and stored["rekt"] >= 3
    assert "broken" not in stored

    assert main(["feeds", "pull", "--config", str(config), "--source", "defihacklabs"]) == 0
    assert "unchanged" in capsys.readouterr().out
    assert counts(config.parent / "k.db") == stored

    assert main(["sources", "--config", str(config)]) == 0
    table = capsys.readouterr().out
    rows = {line.split()[0]: line for line in table.splitlines()[2:] if line.strip()}
    assert " 857 " in rows["defihacklabs"] and rows["defihacklabs"].split()[-1].endswith("Z")  # last success
    assert "never" in rows["broken"] and "missing.xml" in rows["broken"]  # never succeeded; the last error

    assert main(["feeds", "pull", "--config", str(config), "--source", "nope"]) == 2
    assert "no feed named 'nope'" in capsys.readouterr().err
