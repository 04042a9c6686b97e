"""`/v1/incidents` (as `kamiyo incidents`, paged), `/v1/incidents/{id}` (as `kamiyo incidents show`: why and every
record), `/v1/deployments` (one chain, by block) and `/v1/sources` (as `kamiyo sources`)."""

from __future__ import annotations

from kamiyo.reports.incidents import incidents_report
from tests.api.seed import BSC, ETH


async def test_incidents_are_the_cli_report_in_pages(pro, engine, settings):
    names = {c.chain_id: c.name for c in settings.chains}
    expected = (await incidents_report(engine, names, limit=None))["incidents"]
    assert [i["protocol"] for i in expected] == ["Alpha Protocol", "Beta Finance", "Gamma", "OldProto", "FreshProto"]
    walked, cursor = [], None
    while True:
        page = (await pro.get("/v1/incidents?limit=2" + (f"&cursor={cursor}" if cursor else ""))).json()
        walked += page["incidents"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert walked == expected


async def test_incident_filters(pro):
    async def protocols(query: str) -> list[str]:
        return [i["protocol"] for i in (await pro.get(f"/v1/incidents?{query}")).json()["incidents"]]

    assert await protocols("since=2024-03-05") == ["Beta Finance", "Gamma", "OldProto", "FreshProto"]
    assert await protocols("since=2024-03-05T23:00:00-02:00") == ["Gamma", "OldProto", "FreshProto"]  # its UTC day
    assert await protocols(f"chain={BSC}") == ["Beta Finance"]
    assert await protocols("chain=bnb") == ["Beta Finance"]  # a name the chain registry knows
    assert await protocols("chain=solana") == ["Gamma"]  # a name only a feed wrote
    assert await protocols("chain=atlantis") == []  # a filter that matches nothing
    bad = await pro.get("/v1/incidents?since=March")
    assert bad.status == 400 and bad.json()["parameter"] == "since"


async def test_one_incident_with_why_and_every_record(pro):
    first = (await pro.get("/v1/incidents?limit=1")).json()["incidents"][0]
    detail = (await pro.get(f"/v1/incidents/{first['id']}")).json()["incident"]
    assert detail["protocol"] == "Alpha Protocol"
    assert [s["source"] for s in detail["sources"]] == ["llama", "rekt"]
    assert [r["source"] for r in detail["records"]] == ["llama", "rekt"]
    assert len(detail["why"]) == 1 and "Alpha Protocol" in detail["why"][0]
    assert detail["records"][0]["raw"] == {"name": "Alpha Protocol", "amount": 5e6}
    missing = await pro.get("/v1/incidents/inc-0000000000000000")
    assert missing.status == 404 and missing.json()["error"] == "not_found"


async def test_deployments_of_one_chain_by_block_in_pages(pro):
    walked, cursor = [], None
    while True:
        page = (await pro.get(f"/v1/deployments?chain={ETH}&limit=5" + (f"&cursor={cursor}" if cursor else ""))).json()
        walked += page["deployments"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [d["block"] for d in walked] == list(range(100, 112))
    assert {d["chain_id"] for d in walked} == {ETH}
    ranged = (await pro.get(f"/v1/deployments?chain={ETH}&from_block=103&to_block=105")).json()["deployments"]
    assert [d["block"] for d in ranged] == [103, 104, 105]
    assert (await pro.get(f"/v1/deployments?chain={ETH}&from_block=105&to_block=103")).json()["deployments"] == []
    assert len((await pro.get(f"/v1/deployments?chain={BSC}")).json()["deployments"]) == 3
    missing = await pro.get("/v1/deployments")
    assert missing.status == 400 and missing.json()["parameter"] == "chain" and "required" in \
        missing.json()["detail"]


async def test_sources_are_the_configured_feeds_with_their_health(pro):
    answer = (await pro.get("/v1/sources")).json()
    by_name = {s["name"]: s for s in answer["sources"]}
    assert list(by_name) == ["llama", "rekt"]
    assert by_name["llama"]["type"] == "defillama" and by_name["llama"]["records"] == 3
    assert by_name["llama"]["incidents"] == 3 and by_name["llama"]["last_error"] is None
    assert by_name["rekt"]["records"] == 1 and by_name["rekt"]["incidents"] == 1
    assert by_name["rekt"]["last_error"] == "rekt: HTTP 503" and by_name["rekt"]["last_error_at"].endswith("Z")
    assert answer["incidents"] == {"total": 5, "single_source": 4}
