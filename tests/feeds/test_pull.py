"""A feed pulled from a real local HTTP server serving DeFiLlama's recorded payload: stored once, a repeated pull
(304, or 200 with the same body) changes nothing, a broken or oversized answer writes nothing and is kept as the
feed's health, a server error is retried, and one changed record is updated alone."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import select

from kamiyo.config import parse
from kamiyo.feeds import fetch
from kamiyo.feeds.pull import pull
from kamiyo.storage.engine import create_engine
from kamiyo.storage.migrations import upgrade
from kamiyo.storage.schema import feed_records, feed_state

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "feeds" / "defillama-hacks-subset.json"


class Server:
    """Answers like a CDN: an ETag, 304 to a matching If-None-Match (unless told to ignore it)."""

    def __init__(self, body: bytes) -> None:
        self.body, self.etag, self.honour_etag, self.failures, self.requests = body, '"v1"', True, 0, 0

    async def hacks(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self.failures:
            self.failures -= 1
            return web.Response(status=503, text="busy")
        if self.honour_etag and request.headers.get("If-None-Match") == self.etag:
            return web.Response(status=304)
        return web.Response(body=self.body, headers={"ETag": self.etag}, content_type="application/json")


@pytest.fixture
def payload() -> bytes:
    if not SHARED.exists():
        pytest.skip(f"{SHARED} is not here")
    return SHARED.read_bytes()


@pytest.fixture
async def world(tmp_path, payload, monkeypatch):
    monkeypatch.setattr(fetch, "BACKOFF", 0.01)
    server = Server(payload)
    app = web.Application()
    app.router.add_get("/hacks", server.hacks)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    settings = parse(f'[storage]\nurl = "sqlite:///{tmp_path / "k.db"}"\n\n[[feeds]]\nname = "defillama"\n'
                     f'type = "defillama"\nurl = "http://127.0.0.1:{port}/hacks"\nmax_bytes = 100000\n')
    engine = create_engine(settings.storage)
    await upgrade(engine)
    async with aiohttp.ClientSession() as session:
        yield server, settings.feeds[0], engine, session
    await engine.dispose()
    await runner.cleanup()


async def records(engine) -> list[tuple]:
    async with engine.connect() as conn:
        return [tuple(r) for r in await conn.execute(select(feed_records).order_by(feed_records.c.ref))]


async def state(engine):
    async with engine.connect() as conn:
        return (await conn.execute(select(feed_state))).first()


async def test_stored_once_and_a_repeated_pull_changes_nothing(world, payload):
    server, feed, engine, session = world
    first = await pull(feed, engine, session)
    count = len(json.loads(payload))
    assert (first.status, first.records, first.new) == ("updated", count, count)
    stored = await records(engine)
    assert len(stored) == count and (await state(engine)).etag == '"v1"'

    again = await pull(feed, engine, session)  # the server answers 304 to the stored ETag
    assert again.status == "unchanged" and await records(engine) == stored

    server.honour_etag = False  # a server that ignores validators sends the same body again
    same = await pull(feed, engine, session)
    assert same.status == "unchanged" and await records(engine) == stored
    assert server.requests == 3


async def test_a_broken_or_oversized_answer_writes_nothing_and_is_the_feeds_health(world, payload):
    server, feed, engine, session = world
    await pull(feed, engine, session)
    stored = await records(engine)
    for body, words in ((payload[: len(payload) // 2], "defillama"), (b"x" * 200_000, "max_bytes")):
        server.body, server.etag = body, '"broken"'
        result = await pull(feed, engine, session)
        assert result.status == "failed" and words in result.error.lower(), result.error
        assert await records(engine) == stored  # nothing of the bad answer is kept
        health = await state(engine)
        assert health.last_error == result.error and health.last_error_at is not None


async def test_server_errors_are_retried_and_a_changed_record_is_updated_alone(world, payload):
    server, feed, engine, session = world
    server.failures = 2
    assert (await pull(feed, engine, session)).status == "updated"
    assert server.requests == 3
    data = json.loads(payload)
    data[0]["amount"] = (data[0]["amount"] or 0) + 1
    server.body, server.etag = json.dumps(data).encode(), '"v2"'
    changed = await pull(feed, engine, session)
    assert (changed.status, changed.new, changed.changed) == ("updated", 0, 1)
