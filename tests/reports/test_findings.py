"""Stored findings read back: oldest first, in UTC with Z, and every filter narrowing what it should."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from kamiyo.reports.findings import findings_report, render_text
from tests.support.stored_world import B1, BSC, C1, ETH, P1, R1, UNCONFIGURED

pytestmark = pytest.mark.npm
NAMES = {ETH: "eth", BSC: "bsc"}


def subjects(report) -> list[str]:
    return [f["subject"] for f in report["findings"]]


async def test_active_findings_oldest_first_with_every_field(world, engine):
    report = await findings_report(engine, NAMES)
    assert subjects(report) == [B1, C1, P1]  # R1's finding was retracted by the reorg
    first = report["findings"][0]
    assert set(first) == {"id", "kind", "severity", "type", "chain", "subject", "block", "tx_hash", "status", "labels",
                          "evidence", "created_at"}
    assert (first["type"], first["labels"]) == ("info", [])
    assert first["id"] == world.findings["B1"] and first["kind"] == "fork-detected" and first["severity"] == "info"
    assert (first["chain"], first["block"], first["status"]) == ("bsc", 200, "active")
    assert first["created_at"] == "2024-01-01T00:00:00Z"
    assert first["evidence"]["code_class"] == world.keys["B1"]
    assert report["findings"][1]["chain"] == str(UNCONFIGURED)


async def test_status_filter(world, engine):
    retracted = await findings_report(engine, NAMES, status="retracted")
    assert [(f["id"], f["status"]) for f in retracted["findings"]] == [(world.findings["R1"], "retracted")]
    assert len((await findings_report(engine, NAMES, status="all"))["findings"]) == 4


async def test_kind_and_chain_filters(engine):
    assert len((await findings_report(engine, NAMES, kind="fork-detected"))["findings"]) == 3
    assert (await findings_report(engine, NAMES, kind="exploit-detected"))["findings"] == []
    assert subjects(await findings_report(engine, NAMES, chain_id=BSC)) == [B1]
    assert subjects(await findings_report(engine, NAMES, chain_id=UNCONFIGURED)) == [C1]
    assert subjects(await findings_report(engine, NAMES, chain_id=BSC, status="all")) == [B1, R1]


async def test_since_is_inclusive_and_a_naive_time_is_utc(engine):
    assert subjects(await findings_report(engine, NAMES, since=datetime(2024, 1, 2, 12))) == [C1, P1]
    assert subjects(await findings_report(engine, NAMES, since=datetime(2024, 1, 2, 12, 0, 1))) == [P1]
    # 13:00 at +01:00 is 12:00 UTC: the same instant as C1's finding
    plus_one = timezone(timedelta(hours=1))
    assert subjects(await findings_report(engine, NAMES, since=datetime(2024, 1, 2, 13, tzinfo=plus_one))) == [C1, P1]


async def test_limit_keeps_the_oldest(engine):
    assert subjects(await findings_report(engine, NAMES, limit=2)) == [B1, C1]


async def test_text_table(engine):
    lines = render_text(await findings_report(engine, NAMES, status="all")).splitlines()
    assert lines[0].split() == ["created_at", "severity", "type", "kind", "chain", "subject", "block", "status"]
    assert lines[2].split() == ["2024-01-01T00:00:00Z", "info", "info", "fork-detected", "bsc", B1, "200", "active"]
    assert lines[-1].split()[-1] == "retracted" and len(lines) == 6
    assert render_text({"findings": []}) == "no findings match\n"
