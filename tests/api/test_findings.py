"""`/v1/findings`: filters, keyset pages (every finding exactly once, also while new ones are committed), one by
id, and 400s that name the parameter."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from kamiyo.findings import Severity
from kamiyo.storage.findings import record_finding
from tests.api.seed import BSC, ETH, fork_finding


async def walk(client, query: str, limit: int, between=None) -> tuple[list[str], int]:
    """Every id over every page, and how many pages; `between(page_number)` runs after each page."""
    ids, cursor, pages = [], None, 0
    while True:
        suffix = f"&cursor={cursor}" if cursor else ""
        page = (await client.get(f"/v1/findings?limit={limit}{query}{suffix}")).json()
        pages += 1
        ids += [f["id"] for f in page["findings"]]
        assert len(page["findings"]) <= limit
        if between is not None:
            await between(pages)
        cursor = page["next_cursor"]
        if cursor is None:
            return ids, pages


async def test_oldest_first_in_the_alert_shape_active_by_default(pro, seeded):
    found = (await pro.get("/v1/findings?limit=500")).json()
    ids = [f["id"] for f in found["findings"]]
    assert found["next_cursor"] is None
    assert seeded.retracted not in ids and len(ids) == 31  # 30 + 2 exploits, less the retracted one
    times = [f["created_at"] for f in found["findings"]]
    assert times == sorted(times)
    first = found["findings"][0]
    assert set(first) == {"id", "kind", "severity", "type", "chain_id", "subject", "block", "tx_hash", "status",
                          "labels", "evidence", "created_at"}
    assert first["labels"] == first["evidence"].get("labels", [])


async def test_filters(pro, seeded):
    async def ids(query: str) -> list[str]:
        return [f["id"] for f in (await pro.get(f"/v1/findings?limit=500&{query}")).json()["findings"]]

    everything = (await pro.get("/v1/findings?limit=500&status=all")).json()["findings"]
    assert len(everything) == 32
    assert await ids("status=retracted") == [seeded.retracted]
    assert set(await ids(f"chain={BSC}")) == {f["id"] for f in everything
                                              if f["chain_id"] == BSC and f["status"] == "active"}
    assert set(await ids("type=exploit")) == {seeded.old_exploit, seeded.fresh_exploit}
    assert await ids("kind=large-outflow") == [seeded.fresh_exploit]
    high = {f["id"] for f in everything if Severity(f["severity"]).rank >= Severity.HIGH.rank
            and f["status"] == "active"}
    assert set(await ids("min_severity=high")) == high and high
    cut = everything[10]["created_at"]
    assert await ids(f"status=all&since={cut}") == [f["id"] for f in everything[10:]]
    assert await ids(f"status=all&until={cut}") == [f["id"] for f in everything[:10]]
    today = datetime.now(timezone.utc).date().isoformat()
    assert seeded.fresh_exploit in await ids(f"since={today}")  # a date is its midnight
    assert await ids(f"chain={ETH}&kind=nothing-like-this") == []


async def test_walking_every_page_yields_every_finding_exactly_once(pro):
    whole = [f["id"] for f in (await pro.get("/v1/findings?limit=500&status=all")).json()["findings"]]
    for limit in (1, 3, 7, 32, 100):
        ids, pages = await walk(pro, "&status=all", limit)
        assert ids == whole, limit
        assert pages == -(-len(whole) // limit)  # a last page that is full says so: no empty page after it


async def test_findings_committed_between_pages_neither_repeat_nor_hide_the_others(pro, engine, seeded):
    before = [f["id"] for f in (await pro.get("/v1/findings?limit=500")).json()["findings"]]
    added: list[str] = []

    async def commit_some(page: int) -> None:
        if page > 4:
            return
        async with engine.begin() as conn:  # new findings, as the daemon commits them, between two pages
            for n in range(2):
                finding = fork_finding(100 + 10 * page + n, datetime.now(timezone.utc) + timedelta(microseconds=n))
                assert await record_finding(conn, finding)
                added.append(finding.fingerprint)

    ids, _pages = await walk(pro, "", 4, between=commit_some)
    assert len(ids) == len(set(ids))  # nothing twice
    assert ids[:len(before)] == before  # everything there at the start, in order
    assert ids[len(before):] == added  # and what arrived meanwhile, after it, once each


async def test_the_data_delay_holds_across_pages(api, make_key, seeded):
    _k, free = await make_key("free")
    ids, _pages = await walk(api.with_key(free), "", 5)
    assert seeded.fresh_exploit not in ids and seeded.old_exploit in ids and len(ids) == 30


async def test_one_finding_by_id(pro, seeded):
    retracted = (await pro.get(f"/v1/findings/{seeded.retracted}")).json()["finding"]
    assert retracted["id"] == seeded.retracted and retracted["status"] == "retracted"
    assert (await pro.get(f"/v1/findings/{seeded.retracted.upper().replace('0X', '0x')}")).status == 200
    missing = await pro.get("/v1/findings/0x" + "0" * 64)
    assert missing.status == 404 and missing.json()["error"] == "not_found"


@pytest.mark.parametrize(("query", "parameter"), [
    ("limit=0", "limit"), ("limit=501", "limit"), ("limit=ten", "limit"), ("chain=eth", "chain"),
    ("chain=0", "chain"), ("chain=99999999999999999999", "chain"), ("status=gone", "status"),
    ("min_severity=urgent", "min_severity"), ("type=bad", "type"), ("since=yesterday", "since"),
    ("since=2024-01-01T10:00:00", "since"), ("until=2024-02-30", "until"), ("cursor=bm90LWEtY3Vyc29y", "cursor"),
    ("cursor=%%%", "cursor"), ("kind=a%00b", "kind"), ("colour=red", "colour"), ("limit=1&limit=2", "limit"),
])
async def test_a_bad_parameter_is_a_400_that_names_it(pro, query, parameter):
    answer = await pro.get(f"/v1/findings?{query}")
    assert answer.status == 400, query
    body = answer.json()
    assert body["error"] == "invalid_parameter" and body["parameter"] == parameter
    assert body["detail"].startswith(f"{parameter}: ")


async def test_a_cursor_of_another_list_is_refused(pro):
    other = (await pro.get(f"/v1/deployments?chain={ETH}&limit=1")).json()["next_cursor"]
    answer = await pro.get(f"/v1/findings?cursor={other}")
    assert answer.status == 400 and answer.json()["parameter"] == "cursor"
