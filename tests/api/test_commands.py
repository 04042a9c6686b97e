"""`kamiyo apikey create|list|revoke` and `kamiyo api`: keys in the database with only their secret's hash, a
secret printed once, and the read-only API as its own process, stopped by SIGTERM.

The commands are driven through their own `register` on a bare parser, as cli.py registers every group."""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from kamiyo.api.keys import TIERS, hash_secret
from kamiyo.commands import api as api_commands
from kamiyo.errors import InputError, KamiyoError
from tests.api.seed import config_text

REPO = Path(__file__).resolve().parents[2]
# `kamiyo` with only the API commands, run as a process the way the console script runs
ENTRY = ("import argparse, sys\n"
         "from kamiyo import log\n"
         "from kamiyo.commands import api\n"
         "parser = argparse.ArgumentParser(prog='kamiyo')\n"
         "api.register(parser.add_subparsers(dest='command', required=True))\n"
         "args = parser.parse_args()\n"
         "log.configure(json_lines=True)\n"
         "sys.exit(args.func(args))\n")


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="kamiyo")
    api_commands.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture
def config(seeded, tmp_path) -> Path:
    path = tmp_path / "kamiyo.toml"
    path.write_text(config_text(seeded.db))
    return path


def rows(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as con:
        return con.execute("SELECT id, name, secret_hash, tier, scopes, quotas, revoked_at FROM api_keys").fetchall()


def test_create_prints_the_secret_once_and_stores_only_its_hash(config, seeded, capsys):
    assert run(["apikey", "create", "team dashboard", "--scope", "read", "--scope", "watchlists",
                "--config", str(config)]) == 0
    out = capsys.readouterr().out
    fields = dict(line.split(":", 1) for line in out.splitlines() if line.startswith(("id:", "secret:")))
    ident, secret = fields["id"].strip(), fields["secret"].strip()
    assert ident.startswith("key_") and secret.startswith("kmy_") and len(secret) > 40
    [(stored_id, name, digest, tier, scopes, quotas, revoked)] = rows(seeded.db)
    assert (stored_id, name, tier, revoked) == (ident, "team dashboard", "pro", None)  # [api] default_tier
    assert digest == hash_secret(secret) and json.loads(scopes) == ["read", "watchlists"]
    assert json.loads(quotas) == TIERS["pro"].as_json()
    assert secret.encode() not in seeded.db.read_bytes()
    assert run(["apikey", "list", "--config", str(config)]) == 0
    listing = capsys.readouterr().out
    assert ident in listing and "team dashboard" in listing and secret not in listing


def test_without_an_api_table_a_key_is_free_and_json_is_offered(seeded, tmp_path, capsys):
    path = tmp_path / "plain.toml"
    path.write_text(config_text(seeded.db, api=False))
    assert run(["apikey", "create", "ci", "--format", "json", "--config", str(path)]) == 0
    made = json.loads(capsys.readouterr().out)
    assert made["tier"] == "free" and made["scopes"] == ["read"] and made["secret"].startswith("kmy_")
    assert run(["apikey", "create", "big", "--tier", "enterprise", "--scope", "admin", "--config", str(path)]) == 0
    assert {r[3] for r in rows(seeded.db)} == {"free", "enterprise"}


def test_revoke_and_its_mistakes(config, seeded, capsys):
    run(["apikey", "create", "old", "--config", str(config)])
    ident = rows(seeded.db)[0][0]
    capsys.readouterr()
    assert run(["apikey", "revoke", ident, "--config", str(config)]) == 0
    assert f"revoked {ident}" in capsys.readouterr().out and rows(seeded.db)[0][6] is not None
    with pytest.raises(InputError, match="no API key 'key_nope'"):
        run(["apikey", "revoke", "key_nope", "--config", str(config)])
    with pytest.raises(InputError, match="a name of 1 to 200"):
        run(["apikey", "create", " ", "--config", str(config)])
    with pytest.raises(SystemExit):
        run(["apikey", "create", "x", "--tier", "platinum", "--config", str(config)])


def test_api_refuses_a_configuration_without_an_api_table(seeded, tmp_path):
    path = tmp_path / "plain.toml"
    path.write_text(config_text(seeded.db, api=False))
    with pytest.raises(InputError, match=r"no \[api\] table"):
        run(["api", "--config", str(path)])


def test_api_never_creates_a_missing_database(tmp_path):
    path = tmp_path / "k.toml"
    path.write_text(config_text(tmp_path / "absent.db"))
    with pytest.raises(KamiyoError, match="no database here"):
        run(["api", "--config", str(path)])
    assert not (tmp_path / "absent.db").exists()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_api_process_serves_read_only_until_sigterm(seeded, tmp_path, capsys):
    port = free_port()
    path = tmp_path / "kamiyo.toml"
    path.write_text(config_text(seeded.db, listen=f"127.0.0.1:{port}"))
    run(["apikey", "create", "ops", "--tier", "pro", "--scope", "admin", "--config", str(path)])
    secret = next(line.split()[1] for line in capsys.readouterr().out.splitlines() if line.startswith("secret:"))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-c", ENTRY, "api", "--config", str(path)], cwd=REPO, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 30
        while True:
            try:
                if requests.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, "the API did not come up"
            time.sleep(0.1)
        headers = {"Authorization": f"Bearer {secret}"}
        assert requests.get(base + "/v1/findings?limit=2", headers=headers, timeout=10).status_code == 200
        refused = requests.post(base + "/v1/watchlists", headers=headers, timeout=10,
                                json={"name": "x", "entries": ["protocol:Uniswap"]})
        assert refused.status_code == 405 and refused.json()["error"] == "read_only"
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    events = [json.loads(line)["event"] for line in err.splitlines() if line.startswith("{")]
    assert "api.listening" in events and events[-1] == "api.stopped"


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_workers_share_the_port_and_stop_together(seeded, tmp_path, capsys):
    port = free_port()
    path = tmp_path / "kamiyo.toml"
    path.write_text(config_text(seeded.db, listen=f"127.0.0.1:{port}"))
    run(["apikey", "create", "ops", "--tier", "pro", "--config", str(path)])
    secret = next(line.split()[1] for line in capsys.readouterr().out.splitlines() if line.startswith("secret:"))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-m", "kamiyo.cli", "api", "--workers", "2", "--config", str(path)],
                               cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        base, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 30
        while len(children(process.pid)) < 2 or not _answers(base):
            assert process.poll() is None and time.monotonic() < deadline, "the workers did not come up"
            time.sleep(0.1)
        time.sleep(1.0)  # both listening (each logs api.listening): the kernel spreads new connections over them
        workers = children(process.pid)
        assert len(workers) == 2
        headers = {"Authorization": f"Bearer {secret}"}
        answers = [requests.get(base + "/v1/findings?limit=1", headers=headers, timeout=10) for _ in range(20)]
        assert {a.status_code for a in answers} == {200}
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=30)
        assert process.returncode == 0
        assert all(not Path(f"/proc/{pid}").exists() for pid in workers)
        assert err.count('"api.listening"') == 2
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def _answers(base: str) -> bool:
    try:
        return requests.get(base + "/healthz", timeout=2).status_code == 200
    except requests.ConnectionError:
        return False


def test_a_worker_count_out_of_range_is_one_line(capsys):
    with pytest.raises(SystemExit) as stopped:
        run(["api", "--workers", "0"])
    assert stopped.value.code == 2 and "from 1 to 64" in capsys.readouterr().err
