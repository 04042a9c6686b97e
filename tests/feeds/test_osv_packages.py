"""OSV advisories of configured packages, asked of a real local HTTP server speaking the OSV query API."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import select

from kamiyo.config import parse
from kamiyo.feeds.pull import pull
from kamiyo.storage.engine import create_engine
from kamiyo.storage.migrations import upgrade
from kamiyo.storage.schema import feed_records

RECORD = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "feeds" / "osv-GHSA-4j93-fm92-rp4m.json"


async def test_advisories_of_configured_packages_are_stored_and_a_repeat_changes_nothing(tmp_path):
    if not RECORD.exists():
        pytest.skip(f"{RECORD} is not here")
    record = json.loads(RECORD.read_text())
    package = record["affected"][0]["package"]
    asked = []

    async def query(request: web.Request) -> web.Response:
        body = await request.json()
        asked.append(body["package"])
        return web.json_response({"vulns": [record]} if body["package"]["name"] == package["name"] else {})

    app = web.Application()
    app.router.add_post("/v1/query", query)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    settings = parse(f'[storage]\nurl = "sqlite:///{tmp_path / "k.db"}"\n\n[[feeds]]\nname = "osv"\ntype = "osv"\n'
                     f'url = "http://127.0.0.1:{port}/v1/query"\npackages = [{{ ecosystem = "{package["ecosystem"]}",'
                     f' name = "{package["name"]}" }}, {{ ecosystem = "npm", name = "left-pad" }}]\n')
    engine = create_engine(settings.storage)
    try:
        await upgrade(engine)
        async with aiohttp.ClientSession() as session:
            first = await pull(settings.feeds[0], engine, session)
            again = await pull(settings.feeds[0], engine, session)
        async with engine.connect() as conn:
            rows = (await conn.execute(select(feed_records.c.ref, feed_records.c.kind))).all()
    finally:
        await engine.dispose()
        await runner.cleanup()
    assert (first.status, first.new) == ("updated", 1) and again.status == "unchanged"
    assert rows == [(record["id"], "advisory")]
    assert [p["name"] for p in asked] == [package["name"], "left-pad"] * 2
