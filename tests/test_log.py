"""Structured logs: JSON lines for machines, secrets never written."""

from __future__ import annotations

import json

from kamiyo import log


def test_json_lines_carry_event_level_and_context_with_secrets_redacted(capsys):
    log.configure(json_lines=True)
    log.get("test").info("checkpoint.committed", chain="ethereum", number=12, api_key="abc", rpc_token="t0k")
    record = json.loads(capsys.readouterr().err.strip())
    assert record["event"] == "checkpoint.committed" and record["level"] == "info"
    assert record["chain"] == "ethereum" and record["number"] == 12
    assert record["api_key"] == "***" and record["rpc_token"] == "***"
    assert "abc" not in json.dumps(record) and "timestamp" in record


def test_console_lines_for_people(capsys):
    log.configure(json_lines=False)
    log.get("test").warning("feed.failed", source="rekt")
    err = capsys.readouterr().err
    assert "feed.failed" in err and "source=rekt" in err and not err.lstrip().startswith("{")
