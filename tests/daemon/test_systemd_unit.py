"""systemd/kamiyo.service: the keys the daemon relies on, checked against the code's own defaults, and
`systemd-analyze verify` when it is installed."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from kamiyo.config import DEFAULT_PATH, DaemonSettings, StorageSettings
from kamiyo.daemon.notify import SystemdNotifier

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "kamiyo.service"


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Sections → key → every value in order. configparser would keep only the last value of a key that is
    repeated (SystemCallFilter=, Environment=), and those repeats are exactly what a unit file means."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    pending = ""
    for raw in text.splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1].rstrip() + " "
            continue
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"assignment outside a section: {line!r}"
        key, sep, value = line.partition("=")
        assert sep, f"not an assignment: {line!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600, "hr": 3600}


def seconds(span: str) -> float:
    """systemd.time(7) spans: `30`, `30s`, `1min 30s`, `5min`."""
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", span):
        total += float(number) * _UNITS[unit or "s"]
    return total


@pytest.fixture(scope="module")
def unit() -> dict[str, dict[str, list[str]]]:
    return parse_unit(UNIT.read_text(encoding="utf-8"))


def one(unit, section: str, key: str) -> str:
    values = unit[section].get(key)
    assert values, f"[{section}] {key}= is missing"
    return values[-1]


def test_the_tiny_parser_keeps_repeats_and_joins_continued_lines():
    parsed = parse_unit("[Service]\n# note\nA=1\nA=2\nB=x \\\n  y\n; other\n")
    assert parsed == {"Service": {"A": ["1", "2"], "B": ["x y"]}}


def test_time_spans_are_read_as_systemd_reads_them():
    assert seconds("30") == 30 and seconds("30s") == 30 and seconds("1min 30s") == 90 and seconds("5min") == 300


def test_notify_type_with_a_sighup_reload_and_restarts_on_failure(unit):
    assert one(unit, "Service", "Type") in ("notify", "notify-reload")
    assert one(unit, "Service", "NotifyAccess") == "main"  # the daemon notifies from its main process only
    assert one(unit, "Service", "ExecReload") == "/bin/kill -HUP $MAINPID"
    assert one(unit, "Service", "Restart") == "on-failure"
    assert one(unit, "Install", "WantedBy") == "multi-user.target"


def test_execstart_runs_the_daemon_on_the_default_config_path(unit):
    argv = one(unit, "Service", "ExecStart").split()
    assert argv[0].startswith("/") and argv[0].endswith("/kamiyo")
    assert argv[1] == "run"
    config = Path(argv[argv.index("--config") + 1])
    assert config == DEFAULT_PATH  # so `kamiyo check-config` and `db upgrade` find it without --config
    assert config.parent == Path("/etc") / one(unit, "Service", "ConfigurationDirectory")


def test_stop_timeout_outlasts_the_default_shutdown_grace(unit):
    grace = DaemonSettings().shutdown_grace
    assert seconds(one(unit, "Service", "TimeoutStopSec")) >= 2 * grace


def test_watchdog_sec_becomes_the_interval_the_notifier_pings_at_half_of(unit):
    watchdog = seconds(one(unit, "Service", "WatchdogSec"))
    assert watchdog == 60
    usec = str(int(watchdog * 1_000_000))  # what systemd puts in WATCHDOG_USEC
    notifier = SystemdNotifier({"NOTIFY_SOCKET": "/run/systemd/notify", "WATCHDOG_USEC": usec}, pid=4242)
    assert notifier.watchdog_interval() == watchdog


def test_the_example_database_lives_in_the_state_directory(unit):
    state = Path("/var/lib") / one(unit, "Service", "StateDirectory")
    example = tomllib.loads((REPO / "config" / "kamiyo.toml").read_text(encoding="utf-8"))
    url = StorageSettings.model_validate(example["storage"]).url
    assert url == "sqlite:////var/lib/kamiyo/kamiyo.db"
    assert Path(url.removeprefix("sqlite:///")).parent == state
    assert one(unit, "Service", "WorkingDirectory") == str(state)


def test_runs_unprivileged_and_hardened(unit):
    service = unit["Service"]
    if "DynamicUser" in service:
        assert one(unit, "Service", "DynamicUser") == "yes"
    else:
        assert one(unit, "Service", "User") not in ("", "root", "0")
    for key, value in {
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "NoNewPrivileges": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "RestrictSUIDSGID": "yes",
        "CapabilityBoundingSet": "",
    }.items():
        assert one(unit, "Service", key) == value, key
    assert "PYTHONUNBUFFERED=1" in " ".join(service["Environment"]).split()


def test_the_sandbox_still_allows_what_a_networked_python_daemon_needs(unit):
    families = set(one(unit, "Service", "RestrictAddressFamilies").split())
    assert {"AF_INET", "AF_INET6"} <= families  # RPC over HTTP and WebSocket
    assert "AF_UNIX" in families  # journald and $NOTIFY_SOCKET
    assert "IPAddressDeny" not in unit["Service"]  # RPC endpoints may be anywhere
    # A deny-list of syscall groups must not deny the network or the event loop's epoll.
    denied = " ".join(v for v in unit["Service"].get("SystemCallFilter", []) if v.startswith("~"))
    assert "@network-io" not in denied and "@io-event" not in denied


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_accepts_the_unit_without_a_warning(tmp_path):
    # The binary ExecStart names is not installed on a build machine, and verify rightly refuses a unit whose
    # command does not exist. Verify a copy that differs only in that path, pointing at a binary that exists.
    executable = shutil.which("true")
    assert executable
    text = UNIT.read_text(encoding="utf-8")
    copy = re.sub(r"^ExecStart=\S+", f"ExecStart={executable}", text, count=1, flags=re.M)
    assert copy != text
    path = tmp_path / "kamiyo.service"
    path.write_text(copy, encoding="utf-8")
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(path)], capture_output=True, text=True, timeout=60
    )
    # verify exits 0 on an unknown key or an unparsable value and only warns: any line about our file fails.
    about_us = [line for line in (result.stdout + result.stderr).splitlines() if "kamiyo.service" in line]
    assert result.returncode == 0 and about_us == [], result.stdout + result.stderr
