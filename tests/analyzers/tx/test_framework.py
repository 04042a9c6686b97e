"""The analyzer framework: definition-time checks, the registry (built-ins and real entry-point plugins), settings
checked at config load, the runner's isolation and trace skipping, and `kamiyo analyzers`.

Plugins are real distributions: a module and a `*.dist-info` (METADATA + entry_points.txt) on a temporary
sys.path entry, found by importlib.metadata as an installed plugin would be. The built-in list is pointed at a
module of the same kind, so nothing here depends on which built-ins exist (but the one test that says so).
"""

from __future__ import annotations

import importlib
import json
import re
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from pydantic import BaseModel
from structlog.testing import capture_logs

from kamiyo.analyzers.tx import registry as registry_module
from kamiyo.analyzers.tx import runner as runner_module
from kamiyo.analyzers.tx.base import (
    LOGS, TRACES, Analyzer, AnalyzerDefinitionError, AnalyzerInfo, BlockActivity, NoSettings,
)
from kamiyo.analyzers.tx.registry import ENTRY_POINT_GROUP, AnalyzerRegistryError, load_registry
from kamiyo.analyzers.tx.runner import AnalyzerSet
from kamiyo.chains.blocks import BlockRef
from kamiyo.cli import main
from kamiyo.config import ConfigError, parse
from kamiyo.errors import KamiyoError
from kamiyo.findings import Finding, FindingType, Severity, fingerprint
from kamiyo.metrics import REGISTRY
from tests.support.config import MINIMAL

REPO = Path(__file__).resolve().parents[3]
BASE = MINIMAL
BLOCK = BlockRef(chain_id=1, number=19_000_000, hash="0x" + "ab" * 32, parent_hash="0x" + "cd" * 32)

# The module every fake analyzer lives in: real Python source on a real sys.path entry.
HEADER = """
from pydantic import Field
from kamiyo.analyzers.tx.base import LOGS, TRACES, Analyzer, AnalyzerInfo, NoSettings
from kamiyo.findings import Severity


def info(id, **kw):
    return AnalyzerInfo(id=id, title=kw.pop("title", "Title of " + id), description="Finds " + id + ".",
                        severity=kw.pop("severity", Severity.MEDIUM), confidence=kw.pop("confidence", 0.5),
                        consumes=frozenset(kw.pop("consumes", {LOGS})), **kw)
"""


class Site:
    """A temporary site-packages: modules and the dist-info that makes them installed plugins."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.prefix = f"kamiyo_test_{uuid.uuid4().hex[:10]}"  # fresh names: sys.modules outlives a test

    def module(self, name: str, body: str) -> str:
        module = f"{self.prefix}_{name}"
        (self.root / f"{module}.py").write_text(HEADER + textwrap.dedent(body))
        importlib.invalidate_caches()
        return module

    def dist(self, name: str, entry_points: dict[str, str]) -> None:
        info = self.root / f"{name.replace('-', '_')}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        lines = [f"[{ENTRY_POINT_GROUP}]", *(f"{key} = {value}" for key, value in entry_points.items())]
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
        importlib.invalidate_caches()


@pytest.fixture
def site(tmp_path, monkeypatch):
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setattr(registry_module, "BUILTINS", ())
    monkeypatch.setattr(runner_module, "_TRACELESS_REPORTED", set())
    made = Site(root)
    yield made
    for name in [m for m in sys.modules if m.startswith(made.prefix)]:
        del sys.modules[name]


@pytest.fixture
def builtins(site, monkeypatch):
    """Two built-ins (one with thresholds, one needing traces) and no plugins."""
    module = site.module("builtin", """
        class FlashSettings(NoSettings):
            min_profit_usd: float = Field(100_000.0, gt=0, description="smallest profit worth reporting")
            tokens: list[str] = []

        class FlashLoan(Analyzer):
            info = info("flash-loan", severity=Severity.HIGH, confidence=0.8, title="Flash-loan attack")
            Settings = FlashSettings
            def analyze(self, activity):
                return []

        class Reentrancy(Analyzer):
            info = info("reentrancy", consumes={TRACES, LOGS}, needs_traces=True)
            def analyze(self, activity):
                return []
    """)
    monkeypatch.setattr(registry_module, "BUILTINS", (f"{module}:FlashLoan", f"{module}:Reentrancy"))
    return module


def counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(f"{name}_total", labels) or 0.0


def activity(has_traces: bool = False) -> BlockActivity:
    return BlockActivity(block=BLOCK, transactions=(), has_traces=has_traces)


def finding(kind: str, subject: str = "0x" + "11" * 20) -> Finding:
    return Finding(kind=kind, severity=Severity.HIGH, type=FindingType.EXPLOIT, chain_id=BLOCK.chain_id,
                   subject=subject, block=BLOCK.number, tx_hash=None, fingerprint=fingerprint(kind, subject))


def make(analyzer_id: str, analyze, *, needs_traces: bool = False, settings: type[BaseModel] = NoSettings):
    consumes = frozenset({TRACES} if needs_traces else {LOGS})
    return type(analyzer_id.title().replace("-", ""), (Analyzer,), {
        "info": AnalyzerInfo(id=analyzer_id, title=f"T {analyzer_id}", description=f"D {analyzer_id}",
                             severity=Severity.LOW, confidence=0.5, consumes=consumes, needs_traces=needs_traces),
        "Settings": settings, "analyze": analyze,
    })


# ------------------------------------------------------------------------------------------ definition time


def _info(**overrides) -> AnalyzerInfo:
    fields = dict(id="flash-loan", title="Flash loan", description="Finds flash loans.", severity=Severity.HIGH,
                  confidence=0.7, consumes=frozenset({LOGS}))
    return AnalyzerInfo(**{**fields, **overrides})


class _NoEnabled(BaseModel):
    threshold: int = 1


@pytest.mark.parametrize(("namespace", "message"), [
    ({}, "declares no `info = AnalyzerInfo(...)`"),
    ({"info": _info(id="FlashLoan")}, "id 'FlashLoan' is not kebab-case (like 'flash-loan')"),
    ({"info": _info(id="flash_loan")}, "id 'flash_loan' is not kebab-case"),
    ({"info": _info(title="  ")}, "title and description must say what it finds"),
    ({"info": _info(severity="severe")}, "severity 'severe' is not one of critical, high, medium, low, info"),
    ({"info": _info(confidence=1.5)}, "confidence 1.5 is not within 0..1"),
    ({"info": _info(consumes=frozenset({"mempool"}))}, "consumes ['mempool'] must be some of"),
    ({"info": _info(consumes=frozenset())}, "consumes [] must be some of"),
    ({"info": _info(needs_traces=True)}, "needs_traces without consuming traces"),
    ({"info": _info(), "Settings": _NoEnabled}, "Settings must be a pydantic model with an `enabled` field"),
    ({"info": _info(), "Settings": dict}, "Settings must be a pydantic model with an `enabled` field"),
], ids=["no-info", "camel-id", "snake-id", "blank-title", "severity", "confidence", "unknown-event", "no-events",
        "traces-undeclared", "settings-without-enabled", "settings-not-a-model"])
def test_a_malformed_analyzer_is_refused_when_defined(namespace, message):
    body = {"analyze": lambda self, activity: [], **namespace}
    with pytest.raises(AnalyzerDefinitionError) as exc:
        type("Broken", (Analyzer,), body)
    assert message in str(exc.value)
    assert str(exc.value).startswith(f"analyzer {__name__}.Broken: ")
    assert isinstance(exc.value, KamiyoError) and exc.value.context == {"analyzer": "Broken"}


def test_every_problem_of_a_class_is_named_at_once():
    with pytest.raises(AnalyzerDefinitionError) as exc:
        type("Sloppy", (Analyzer,), {"info": _info(id="Sloppy", confidence=-0.1)})
    assert str(exc.value).split(": ", 1)[1].split("; ") == [
        "id 'Sloppy' is not kebab-case (like 'flash-loan')", "confidence -0.1 is not within 0..1",
        "does not implement analyze()",
    ]


def test_a_well_formed_analyzer_gets_default_settings():
    good = make("good-one", lambda self, activity: [])
    assert good().settings == NoSettings() and good().settings.enabled


# -------------------------------------------------------------------------------------------------- registry


def test_builtins_and_a_real_entry_point_plugin(site, builtins):
    plugin = site.module("plugin", """
        class Sandwich(Analyzer):
            info = info("sandwich")
            def analyze(self, activity):
                return []
    """)
    site.dist("acme-sandwich", {"sandwich": f"{plugin}:Sandwich"})
    found = load_registry()
    assert sorted(found) == ["flash-loan", "reentrancy", "sandwich"]
    assert found["sandwich"].__module__ == plugin and found["flash-loan"].__module__ == builtins
    assert registry_module.is_builtin(found["flash-loan"]) and not registry_module.is_builtin(found["sandwich"])
    assert sorted(load_registry(include_plugins=False)) == ["flash-loan", "reentrancy"]


def test_a_plugin_reusing_a_builtin_id_is_refused_naming_both(site, builtins):
    plugin = site.module("copycat", """
        class NotTheRealFlashLoan(Analyzer):
            info = info("flash-loan")
            def analyze(self, activity):
                return []
    """)
    site.dist("copycat-dist", {"copy": f"{plugin}:NotTheRealFlashLoan"})
    with pytest.raises(AnalyzerRegistryError) as exc:
        load_registry()
    message = str(exc.value)
    assert "two analyzers have the id 'flash-loan'" in message
    assert f"built-in {builtins}.FlashLoan" in message
    assert f"{plugin}.NotTheRealFlashLoan from entry point 'copy' of copycat-dist 1.0" in message
    assert sorted(load_registry(include_plugins=False)) == ["flash-loan", "reentrancy"]  # built-ins alone are fine


def test_two_plugins_with_one_id_are_refused_naming_both(site):
    first = site.module("first", """
        class Mev(Analyzer):
            info = info("mev-bot")
            def analyze(self, activity):
                return []
    """)
    second = site.module("second", """
        class OtherMev(Analyzer):
            info = info("mev-bot")
            def analyze(self, activity):
                return []
    """)
    site.dist("first-dist", {"mev": f"{first}:Mev"})
    site.dist("second-dist", {"mev2": f"{second}:OtherMev"})
    with pytest.raises(AnalyzerRegistryError) as exc:
        load_registry()
    message = str(exc.value)
    assert message.startswith("two analyzers have the id 'mev-bot': ")
    assert f"{first}.Mev from entry point 'mev' of first-dist 1.0" in message
    assert f"{second}.OtherMev from entry point 'mev2' of second-dist 1.0" in message


def test_broken_plugins_are_logged_and_skipped(site):
    good = site.module("good", """
        class Good(Analyzer):
            info = info("good-plugin")
            def analyze(self, activity):
                return []

        def not_a_class():
            pass
    """)
    raising = site.module("raising", """
        raise RuntimeError("plugin needs a GPU")
    """)
    malformed = site.module("malformed", """
        class Malformed(Analyzer):
            info = info("Malformed")
            def analyze(self, activity):
                return []
    """)
    site.dist("mixed-bag", {"good": f"{good}:Good", "function": f"{good}:not_a_class", "raising": f"{raising}:X",
                            "malformed": f"{malformed}:Malformed", "missing": f"{site.prefix}_absent:Y",
                            "base": "kamiyo.analyzers.tx.base:Analyzer"})
    with capture_logs() as logs:
        found = load_registry()
    assert list(found) == ["good-plugin"]
    failed = {entry["entry_point"]: entry for entry in logs if entry["event"] == "analyzers.plugin_failed"}
    assert sorted(failed) == ["base", "function", "malformed", "missing", "raising"]
    assert all(entry["dist"] == "mixed-bag 1.0" and entry["log_level"] == "error" for entry in failed.values())
    assert failed["raising"]["error"] == "cannot be loaded: RuntimeError: plugin needs a GPU"
    assert "AnalyzerDefinitionError" in failed["malformed"]["error"] and "kebab-case" in failed["malformed"]["error"]
    assert "ModuleNotFoundError" in failed["missing"]["error"]
    assert "is not an Analyzer subclass" in failed["function"]["error"] and failed["function"]["value"].endswith(
        ":not_a_class")


def test_a_builtin_that_does_not_load_refuses_the_registry(site, monkeypatch):
    monkeypatch.setattr(registry_module, "BUILTINS", (f"{site.prefix}_gone:Vanished",))
    with pytest.raises(AnalyzerRegistryError, match=rf"built-in analyzer {site.prefix}_gone:Vanished cannot be "
                                                    r"loaded: ModuleNotFoundError"):
        load_registry()


# ------------------------------------------------------------------------------------- settings at config load


def test_analyzer_tables_are_checked_against_each_analyzers_settings(site, builtins):
    plugin = site.module("thresholds", """
        class WhaleSettings(NoSettings):
            min_value_eth: int = Field(gt=0)

        class Whale(Analyzer):
            info = info("whale")
            Settings = WhaleSettings
            def analyze(self, activity):
                return []
    """)
    site.dist("whale-watch", {"whale": f"{plugin}:Whale"})
    with pytest.raises(ConfigError) as exc:
        parse(BASE.replace('name = "ethereum"', 'name = "Ethereum"') + """
[analyzers.flash-loan]
min_profit_usd = "a lot"
colour = "red"

[analyzers.whale]
min_value_eth = 0

[analyzers.sandwich]
enabled = false
""", "k.toml")
    assert exc.value.problems == [
        "chains[0].name: a chain name is a lowercase slug: letters, digits and dashes",
        "analyzers.sandwich: no analyzer has this id (known: flash-loan, reentrancy, whale)",
        "analyzers.flash-loan.min_profit_usd: Input should be a valid number, unable to parse string as a number",
        "analyzers.flash-loan.colour: unknown key",
        "analyzers.whale.min_value_eth: Input should be greater than 0",  # the plugin's own model
    ]
    settings = parse(BASE + "[analyzers.whale]\nmin_value_eth = 5\n[analyzers.reentrancy]\nenabled = false\n")
    assert settings.analyzers == {"whale": {"min_value_eth": 5}, "reentrancy": {"enabled": False}}


def test_a_registry_that_cannot_be_assembled_is_a_config_problem(site, builtins):
    copy = site.module("dup", """
        class Again(Analyzer):
            info = info("reentrancy")
            def analyze(self, activity):
                return []
    """)
    site.dist("dup-dist", {"again": f"{copy}:Again"})
    with pytest.raises(ConfigError) as exc:
        parse(BASE + "[analyzers.flash-loan]\nenabled = true\n")
    assert len(exc.value.problems) == 1
    assert exc.value.problems[0].startswith("analyzers: two analyzers have the id 'reentrancy'")


# ------------------------------------------------------------------------------------------------------ runner


def test_one_failing_analyzer_never_stops_the_others(site):
    def boom(self, act):
        raise ValueError(f"cannot decode block {act.block.number}")

    good_finding = finding("good-analyzer")
    analyzers = AnalyzerSet([make("good-analyzer", lambda self, act: [good_finding])(),
                             make("boom-analyzer", boom)()])
    assert analyzers.ids == ("boom-analyzer", "good-analyzer")
    before = counter("kamiyo_analyzer_failures", analyzer="boom-analyzer")
    with capture_logs() as logs:
        assert analyzers.run(activity()) == [good_finding]
        assert analyzers.run(activity()) == [good_finding]
    assert counter("kamiyo_analyzer_failures", analyzer="boom-analyzer") == before + 2
    assert counter("kamiyo_analyzer_failures", analyzer="good-analyzer") == 0
    failures = [entry for entry in logs if entry["event"] == "analyzer.failed"]
    assert len(failures) == 2
    assert {key: failures[0][key] for key in ("analyzer", "chain_id", "block", "block_hash", "error_type", "error",
                                              "log_level")} == {
        "analyzer": "boom-analyzer", "chain_id": 1, "block": 19_000_000, "block_hash": BLOCK.hash,
        "error_type": "ValueError", "error": "cannot decode block 19000000", "log_level": "error",
    }
    assert failures[0]["where"].endswith("in boom") and "test_framework.py:" in failures[0]["where"]


def test_findings_of_another_kind_are_dropped_and_counted(site):
    own, stray = finding("honest"), finding("fork-detected")
    analyzers = AnalyzerSet([make("honest", lambda self, act: [own, stray, {"kind": "honest"}])(),
                             make("nothing", lambda self, act: None)(),
                             make("lazy", lambda self, act: (finding("lazy", s) for s in ("0x1", "0x2")))()])
    before = {a: counter("kamiyo_analyzer_failures", analyzer=a) for a in ("honest", "nothing", "lazy")}
    with capture_logs() as logs:
        out = analyzers.run(activity())
    assert [(f.kind, f.subject) for f in out] == [("honest", own.subject), ("lazy", "0x1"), ("lazy", "0x2")]
    assert {a: counter("kamiyo_analyzer_failures", analyzer=a) - before[a] for a in before} == {
        "honest": 1, "nothing": 1, "lazy": 0}
    errors = {entry["analyzer"]: entry for entry in logs if entry["event"] == "analyzer.failed"}
    assert errors["honest"]["error_type"] == "AnalyzerOutputError"
    assert "2 result(s) that are not findings of kind 'honest'" in errors["honest"]["error"]
    assert "'fork-detected'" in errors["honest"]["error"] and "dict" in errors["honest"]["error"]
    assert errors["nothing"]["error_type"] == "TypeError"


def test_analyzers_needing_traces_are_skipped_without_them(site):
    calls = []
    traced = make("traced-only", lambda self, act: calls.append("traced") or [finding("traced-only")],
                  needs_traces=True)
    plain = make("plain-logs", lambda self, act: calls.append("plain") or [])
    analyzers = AnalyzerSet([traced(), plain()])
    assert analyzers.needs_traces and analyzers.consumes == {TRACES, LOGS}
    assert not AnalyzerSet([plain()]).needs_traces and AnalyzerSet([]).consumes == frozenset()
    before = counter("kamiyo_analyzer_skipped", analyzer="traced-only", reason="no-traces")
    with capture_logs() as logs:
        for _ in range(3):
            assert analyzers.run(activity(has_traces=False)) == []
    assert calls == ["plain"] * 3
    assert counter("kamiyo_analyzer_skipped", analyzer="traced-only", reason="no-traces") == before + 3
    assert counter("kamiyo_analyzer_skipped", analyzer="plain-logs", reason="no-traces") == 0
    skipped = [entry for entry in logs if entry["event"] == "analyzer.skipped"]
    assert len(skipped) == 1 and skipped[0]["analyzer"] == "traced-only" and skipped[0]["reason"] == "no-traces"
    calls.clear()
    assert [f.kind for f in analyzers.run(activity(has_traces=True))] == ["traced-only"]
    assert calls == ["plain", "traced"]  # id order


def test_from_settings_builds_the_enabled_analyzers_with_their_settings(site, builtins):
    settings = parse(BASE + "[analyzers.flash-loan]\nmin_profit_usd = 250000\ntokens = ['0xdead']\n"
                            "[analyzers.reentrancy]\nenabled = false\n")
    analyzers = AnalyzerSet.from_settings(settings)
    assert analyzers.ids == ("flash-loan",)
    (flash,) = analyzers.analyzers
    assert type(flash.settings).__name__ == "FlashSettings"
    assert (flash.settings.min_profit_usd, flash.settings.tokens) == (250_000.0, ["0xdead"])
    assert not analyzers.needs_traces and analyzers.consumes == {LOGS}
    everything = AnalyzerSet.from_settings(parse(BASE))
    assert everything.ids == ("flash-loan", "reentrancy") and everything.needs_traces
    assert everything.analyzers[0].settings.min_profit_usd == 100_000.0


def test_from_settings_refuses_what_this_registry_cannot_satisfy(site, builtins):
    required = make("needs-key", lambda self, act: [], settings=type("S", (NoSettings,), {
        "__annotations__": {"api_url": str}}))
    settings = parse(BASE + "[analyzers.flash-loan]\nenabled = false\n")
    with pytest.raises(ConfigError) as exc:
        AnalyzerSet.from_settings(settings, registry={"needs-key": required})
    assert exc.value.problems == [
        "analyzers.flash-loan: no analyzer has this id (known: needs-key)",
        "analyzers.needs-key.api_url: required key is missing",
    ]


# ----------------------------------------------------------------------------------------- kamiyo analyzers


@pytest.fixture
def listed(site, builtins):
    plugin = site.module("listed", """
        class Whale(Analyzer):
            info = info("whale", consumes={LOGS, "transactions"}, confidence=0.35, title="Whale transfer")
            def analyze(self, activity):
                return []
    """)
    site.dist("whale-watch", {"whale": f"{plugin}:Whale"})
    return plugin


def test_analyzers_command_text(capsys, tmp_path, listed):
    assert main(["analyzers"]) == 0
    out, err = capsys.readouterr()
    table, *sections = out.split("\n\n")
    lines = table.splitlines()
    assert lines[0].split() == ["id", "severity", "confidence", "needs", "traces", "consumes", "title"]
    assert lines[2].split() == ["flash-loan", "high", "0.80", "no", "logs", "Flash-loan", "attack"]
    assert lines[3].split()[:5] == ["reentrancy", "medium", "0.50", "yes", "logs,"]
    assert lines[4].split()[:6] == ["whale", "medium", "0.35", "no", "logs,", "transactions"]
    assert sections[0].startswith("flash-loan — Flash-loan attack (built-in)\n  Finds flash-loan.")
    assert "  min_profit_usd  float gt=0  100000.0  smallest profit worth reporting" in sections[0]
    assert "  enabled         bool        true" in sections[0]
    assert sections[2].startswith(f"whale — Whale transfer (plugin {listed}.Whale)")

    config = tmp_path / "k.toml"
    config.write_text(BASE + "[analyzers.flash-loan]\nmin_profit_usd = 5e5\n[analyzers.whale]\nenabled = false\n")
    assert main(["analyzers", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.split("\n\n")[0].splitlines()[2:]}
    assert rows["flash-loan"][5] == "yes" and rows["reentrancy"][6] == "yes" and rows["whale"][6] == "no"
    assert "  min_profit_usd  float gt=0  100000.0  500000.0  smallest profit worth reporting" in out


def test_analyzers_command_json(capsys, tmp_path, listed):
    assert main(["analyzers", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [e["id"] for e in doc] == ["flash-loan", "reentrancy", "whale"]
    flash = doc[0]
    assert {k: flash[k] for k in ("title", "description", "severity", "confidence", "needs_traces", "consumes",
                                  "builtin", "enabled", "configured")} == {
        "title": "Flash-loan attack", "description": "Finds flash-loan.", "severity": "high", "confidence": 0.8,
        "needs_traces": False, "consumes": ["logs"], "builtin": True, "enabled": True, "configured": False}
    assert flash["settings"] == [
        {"name": "enabled", "type": "bool", "constraints": [], "required": False, "default": True,
         "description": None},
        {"name": "min_profit_usd", "type": "float", "constraints": ["gt=0"], "required": False,
         "default": 100000.0, "description": "smallest profit worth reporting"},
        {"name": "tokens", "type": "list[str]", "constraints": [], "required": False, "default": [],
         "description": None},
    ]
    assert doc[1]["needs_traces"] is True and doc[1]["consumes"] == ["logs", "traces"]
    assert doc[2]["builtin"] is False and doc[2]["class"] == f"{listed}.Whale"

    config = tmp_path / "k.toml"
    config.write_text(BASE + "[analyzers.flash-loan]\ntokens = ['0xbeef']\n[analyzers.whale]\nenabled = false\n")
    assert main(["analyzers", "--format", "json", "--config", str(config)]) == 0
    doc = {e["id"]: e for e in json.loads(capsys.readouterr().out)}
    assert {i: (e["enabled"], e["configured"]) for i, e in doc.items()} == {
        "flash-loan": (True, True), "reentrancy": (True, True), "whale": (False, True)}
    assert {s["name"]: s["value"] for s in doc["flash-loan"]["settings"]} == {
        "enabled": True, "min_profit_usd": 100000.0, "tokens": ["0xbeef"]}


def test_analyzers_command_with_a_bad_config_is_one_error(capsys, tmp_path, listed):
    config = tmp_path / "bad.toml"
    config.write_text(BASE + "[analyzers.whale]\nthreshold = 3\n")
    assert main(["analyzers", "--config", str(config)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    assert err.splitlines() == [f"kamiyo: error: {config}: 1 problem(s) in the configuration",
                                "  analyzers.whale.threshold: unknown key"]


# ------------------------------------------------------------------------------------- the real built-ins


def test_the_real_builtins_load_and_the_example_config_tables_validate(capsys, monkeypatch):
    try:
        from kamiyo.analyzers.tx.privileged import PrivilegedChange
    except ImportError as exc:
        pytest.skip(f"the privileged-change analyzer is not available here: {exc}")
    found = load_registry(include_plugins=False)
    assert found["privileged-change"] is PrivilegedChange and registry_module.is_builtin(PrivilegedChange)
    example = (REPO / "config" / "kamiyo.toml").read_text()
    # the commented [[watch]] and [analyzers.…] examples, uncommented, are a valid configuration
    toml_line = re.compile(r"# (\[\[?[\w.-]+\]\]?\Z|[a-z_]+ = )")
    tail = example[example.index("# [[watch]]"):]
    uncommented = "\n".join(line.removeprefix("# ") for line in tail.splitlines() if toml_line.match(line))
    for name in re.findall(r'env = "([A-Z_]+)"', uncommented):  # the examples' secrets, as an operator sets them
        monkeypatch.setenv(name, "https://hooks.example.com/x" if name.endswith("URL") else "x")
    settings = parse(example + "\n" + uncommented)
    assert settings.watched("ethereum") == {"0x1f9840a85d5af5bf1d1762f925bdaddc4201f984": "UNI token"}
    analyzers = AnalyzerSet.from_settings(settings, registry=found)
    assert "privileged-change" in analyzers.ids
    assert main(["analyzers", "--format", "json"]) == 0
    assert "privileged-change" in [e["id"] for e in json.loads(capsys.readouterr().out)]
