"""Configuration: strict, every problem at once with its key path, secrets resolved and never shown."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Annotated

import pytest
from pydantic import Field

from kamiyo.analyzers.tx.base import Analyzer, AnalyzerInfo, NoSettings
from kamiyo.cli import main
from kamiyo.config import ConfigError, config_path, load, parse
from kamiyo.findings import Severity
from tests.support.config import MINIMAL

REPO = Path(__file__).resolve().parents[1]


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        parse(text, "test.toml")
    return exc.value.problems


def test_the_annotated_example_is_valid():
    settings = load(str(REPO / "config" / "kamiyo.toml"))
    assert [c.name for c in settings.chains] == ["ethereum", "bsc"]
    assert settings.chain("bsc").confirmations == 3 and settings.chain("ethereum").ws


def test_defaults_of_the_stable_shape():
    chain = parse(MINIMAL).chains[0]
    assert (chain.confirmations, chain.max_reorg_depth, chain.start_block, chain.poll_interval) == (0, 64, "latest", 2.0)
    assert chain.ws == [] and chain.requests_per_second == 50


def test_every_problem_is_listed_at_once_with_its_key_path():
    problems = problems_of("""
[storage]
url = "mysql://db"
colour = "blue"

[[chains]]
name = "Ethereum"
chain_id = 0
rpc = []
confirmations = "soon"

[[chains]]
name = "bsc"
chain_id = 56
rpc = ["http://ok:8545", "ftp://bad"]
ws = ["http://not-ws"]
start_block = -5

[metrics]
listen = "localhost"
""")
    keys = [p.split(":", 1)[0] for p in problems]
    assert keys == [
        "storage.url", "storage.colour", "metrics.listen", "chains[0].name", "chains[0].chain_id", "chains[0].rpc",
        "chains[0].confirmations", "chains[1].rpc[1]", "chains[1].ws[0]", "chains[1].start_block",
    ]
    assert "unknown key" in problems[1]
    assert "'safe' or 'finalized'" in problems[6] and "host:port" in problems[2]


def test_missing_keys_and_bad_toml_are_named():
    assert problems_of("[[chains]]\nname = 'a'\n") == [
        "storage: required key is missing", "chains[0].chain_id: required key is missing",
        "chains[0].rpc: required key is missing",
    ]
    assert problems_of("[storage\nurl=1")[0].startswith("not valid TOML")


def test_chain_names_and_ids_are_unique():
    twice = MINIMAL + '[[chains]]\nname = "ethereum"\nchain_id = 2\nrpc = ["http://x"]\n'
    assert any("share the name 'ethereum'" in p for p in problems_of(twice))
    twice = MINIMAL + '[[chains]]\nname = "mainnet"\nchain_id = 1\nrpc = ["http://x"]\n'
    assert any("share the chain_id 1" in p for p in problems_of(twice))


def test_secrets_from_env_and_file_are_resolved_and_never_shown(tmp_path, monkeypatch):
    monkeypatch.setenv("KAMIYO_TEST_RPC", "https://rpc.example/v3/SECRET-KEY")
    db = tmp_path / "db-url"
    db.write_text("postgresql://kamiyo:hunter2@db/kamiyo\n")
    settings = parse(f"""
[storage]
url = {{ file = "{db}" }}
[[chains]]
name = "ethereum"
chain_id = 1
rpc = [{{ env = "KAMIYO_TEST_RPC" }}, "http://127.0.0.1:8545"]
""")
    assert settings.chains[0].rpc[0] == "https://rpc.example/v3/SECRET-KEY"
    assert settings.storage.async_url == "postgresql+asyncpg://kamiyo:hunter2@db/kamiyo"
    assert "SECRET-KEY" not in repr(settings) and "hunter2" not in repr(settings)


def test_secret_problems_point_at_the_value(tmp_path):
    problems = problems_of(f"""
[storage]
url = {{ file = "{tmp_path / 'absent'}" }}
[[chains]]
name = "ethereum"
chain_id = 1
rpc = [{{ env = "KAMIYO_TEST_UNSET_VARIABLE" }}, {{ env = "A", file = "b" }}]
""")
    assert problems[0].startswith("storage.url: cannot read secret file")
    assert problems[1] == "chains[0].rpc[0]: environment variable KAMIYO_TEST_UNSET_VARIABLE is not set"
    assert problems[2].startswith("chains[0].rpc[1]: a secret is written")


def test_sqlite_urls_map_to_the_async_driver():
    assert parse(MINIMAL).storage.async_url == "sqlite+aiosqlite:////tmp/kamiyo-test.db"


def test_config_path_precedence(monkeypatch):
    monkeypatch.delenv("KAMIYO_CONFIG", raising=False)
    assert config_path(None) == Path("/etc/kamiyo/kamiyo.toml")
    monkeypatch.setenv("KAMIYO_CONFIG", "/srv/k.toml")
    assert config_path(None) == Path("/srv/k.toml")
    assert config_path("/explicit.toml") == Path("/explicit.toml")


def test_check_config_command(tmp_path, capsys):
    good, bad = tmp_path / "good.toml", tmp_path / "bad.toml"
    good.write_text(MINIMAL)
    bad.write_text(MINIMAL.replace("chain_id = 1", "chain_id = -1\nconfirmation = 2"))
    assert main(["check-config", "--config", str(good)]) == 0
    assert "ok" in capsys.readouterr().out
    assert main(["check-config", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"kamiyo: error: {bad}: 2 problem(s)")
    assert "chains[0].chain_id:" in err and "chains[0].confirmation: unknown key" in err
    assert "Traceback" not in err


# ------------------------------------------------------------------------------------- [[watch]], [analyzers]

WATCHED = "0x1F9840a85d5aF5bf1D1762F925BDADdC4201F984"


def test_watched_addresses_are_lowercased_and_grouped_by_chain():
    settings = parse(MINIMAL + f"""
[[watch]]
chain = "ethereum"
address = "{WATCHED}"
label = "UNI token"

[[watch]]
chain = "ethereum"
address = "0x{'ab' * 20}"
""")
    assert settings.watch[0].address == WATCHED.lower()
    assert settings.watched("ethereum") == {WATCHED.lower(): "UNI token", "0x" + "ab" * 20: None}
    assert settings.watched("bsc") == {}
    assert parse(MINIMAL).watch == [] and parse(MINIMAL).analyzers == {}


def test_watch_problems_are_listed_with_the_rest():
    problems = problems_of(MINIMAL.replace("chain_id = 1", "chain_id = 0") + f"""
[[watch]]
chain = "bsc"
address = "{WATCHED}"

[[watch]]
chain = "ethereum"
address = "0x1234"
colour = "red"

[[watch]]
chain = "ethereum"
address = "{WATCHED}"
label = ""

[[watch]]
chain = "ethereum"
address = "{WATCHED.lower()}"
""")
    assert problems == [
        "chains[0].chain_id: Input should be greater than 0",
        "watch[1].address: expected an address: 0x and 40 hex digits",
        "watch[1].colour: unknown key",
        "watch[2].label: String should have at least 1 character",
        "watch[0].chain: no [[chains]] entry is named 'bsc' (configured: ethereum)",
        f"watch[3]: {WATCHED.lower()} on ethereum is watched twice",
    ]


class _FlashSettings(NoSettings):
    min_profit_usd: Annotated[float, Field(gt=0)] = 100_000.0


class _FlashLoan(Analyzer):
    info = AnalyzerInfo(id="flash-loan", title="Flash-loan attack", description="Borrow, drain, repay in one tx.",
                        severity=Severity.HIGH, confidence=0.7, consumes=frozenset({"logs"}))
    Settings = _FlashSettings

    def analyze(self, activity):
        return []


@pytest.fixture
def fake_registry(monkeypatch):
    """The registry is not what these tests are about (tests/analyzers/tx is): one known analyzer, and a count of
    how often the configuration asked for it."""
    from kamiyo.analyzers.tx import registry

    loads = []
    monkeypatch.setattr(registry, "load_registry", lambda include_plugins=True: loads.append(1) or {
        "flash-loan": _FlashLoan})
    return loads


def test_analyzer_tables_report_every_bad_key_with_its_path(fake_registry):
    problems = problems_of("""
[storage]
url = "mysql://db"

[analyzers.flash-loan]
min_profit_usd = -5
min_loss = 3

[analyzers.sandwich]
enabled = true

[analyzers]
whale = "on"
""")
    assert problems == [
        "storage.url: expected a sqlite:/// or postgresql:// URL",
        "analyzers.whale: Input should be a valid dictionary",
        "analyzers.sandwich: no analyzer has this id (known: flash-loan)",
        "analyzers.flash-loan.min_profit_usd: Input should be greater than 0",
        "analyzers.flash-loan.min_loss: unknown key",
    ]
    settings = parse(MINIMAL + "[analyzers.flash-loan]\nmin_profit_usd = 1e6\nenabled = false\n")
    assert settings.analyzers == {"flash-loan": {"min_profit_usd": 1e6, "enabled": False}}


def test_the_registry_is_consulted_only_for_analyzer_tables(fake_registry):
    parse(MINIMAL)
    assert fake_registry == []
    parse(MINIMAL + "[analyzers.flash-loan]\n")
    assert fake_registry == [1]


def test_importing_the_configuration_does_not_import_the_analyzers():
    code = "import sys, kamiyo.config; print(sorted(m for m in sys.modules if m.startswith('kamiyo.analyzers')))"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
