"""Forks, families and the fork graph over tests/support/stored_world.py (real Uniswap, PancakeSwap, SushiSwap and
BSCswap code, linked by the daemon's linker): the same reports the CLI prints, in every format it writes."""

from __future__ import annotations

import asyncio
import json
import xml.etree.ElementTree as ElementTree

import pytest
from aiohttp.test_utils import TestClient, TestServer

from kamiyo.api import create_app, keys
from kamiyo.api.routes.service import DOCUMENT
from kamiyo.config import parse
from kamiyo.reports.forks import forks_report
from kamiyo.reports.graph import live_graph
from kamiyo.storage.engine import create_engine
from tests.api.contract import Client, Contract
from tests.api.seed import config_text
from tests.support.stored_world import A1, BSC, ETH, P2, build

pytestmark = pytest.mark.npm
NAMES = {ETH: "eth", BSC: "bsc"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return asyncio.run(build(tmp_path_factory.mktemp("world")))


@pytest.fixture
async def lineage(world):
    """(client with a pro key, engine) over the stored world."""
    settings = parse(config_text(world.db))
    engine = create_engine(settings.storage)
    async with engine.begin() as conn:
        _key, secret = await keys.create(conn, "lineage", tier="pro", scopes=["read"])
    app = create_app(engine, settings, read_only=True)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield Client(client, Contract(app[DOCUMENT]), secret), engine
    finally:
        await client.close()
        await engine.dispose()


async def test_forks_are_the_cli_report(lineage):
    client, engine = lineage
    answer = (await client.get(f"/v1/contracts/{ETH}/{A1.upper().replace('0X', '0x')}/forks")).json()
    assert answer == await forks_report(engine, ETH, A1, NAMES)
    assert {r["relation"] for r in answer["related"]} >= {"identical", "clone", "fork", "proxy"}
    capped = (await client.get(f"/v1/contracts/{ETH}/{A1}/forks?limit=2")).json()
    assert len(capped["related"]) == 2 and capped["total"] == answer["total"]


async def test_forks_of_nothing_stored_is_404_and_a_bad_address_400(lineage):
    client, _engine = lineage
    assert (await client.get(f"/v1/contracts/{ETH}/{P2}/forks")).status == 404  # P2 is on bsc
    bad = await client.get(f"/v1/contracts/{ETH}/0x1234/forks")
    assert bad.status == 400 and bad.json()["parameter"] == "address"
    bad = await client.get(f"/v1/contracts/x/{A1}/forks")
    assert bad.status == 400 and bad.json()["parameter"] == "chain"


async def test_families_group_the_live_graph_and_page_by_id(lineage, world):
    client, engine = lineage
    graph = await live_graph(engine, NAMES)
    everything = (await client.get("/v1/families?limit=500")).json()["families"]
    assert [f["id"] for f in everything] == sorted({n["family"] for n in graph["nodes"]})
    uniswap = next(f for f in everything if f["id"] == world.lineage.family(world.keys["A1"]))
    assert world.keys["A1"] in uniswap["classes"] and world.keys["B1"] in uniswap["classes"]
    assert uniswap["known"] == 1 and set(uniswap["chains"]) >= {"eth", "bsc"}
    assert uniswap["first"]["address"] == A1  # the earliest by block time
    walked, cursor = [], None
    while True:
        page = (await client.get("/v1/families?limit=1" + (f"&cursor={cursor}" if cursor else ""))).json()
        walked += page["families"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert walked == everything
    large = (await client.get("/v1/families?min_size=3")).json()["families"]
    assert large and all(f["size"] >= 3 for f in large) and uniswap in large


@pytest.mark.parametrize(("fmt", "media"), [
    ("json", "application/json"), ("graphml", "application/graphml+xml"), ("gexf", "application/gexf+xml"),
    ("csv", "text/csv"), ("dot", "text/vnd.graphviz"), ("text", "text/plain"), ("png", "image/png")])
async def test_the_graph_in_every_format_the_cli_writes(lineage, world, fmt, media):
    client, _engine = lineage
    answer = await client.get(f"/v1/graph?format={fmt}")
    assert answer.status == 200 and answer.headers["Content-Type"].split(";")[0] == media
    a1 = world.keys["A1"]
    if fmt == "json":
        assert a1 in {n["id"] for n in json.loads(answer.body)["nodes"]}
    elif fmt in ("graphml", "gexf"):
        assert a1 in {e.get("id") for e in ElementTree.fromstring(answer.body).iter() if e.get("id")}
    elif fmt == "png":
        assert answer.body.startswith(b"\x89PNG\r\n\x1a\n")
    else:
        assert a1 in answer.text or fmt == "text" and world.lineage.family(a1) in answer.text


async def test_an_unknown_graph_format_is_400(lineage):
    client, _engine = lineage
    bad = await client.get("/v1/graph?format=svg")
    assert bad.status == 400 and bad.json()["parameter"] == "format" and "graphml" in bad.json()["detail"]
