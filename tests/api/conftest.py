"""The API over a seeded database (tests/api/seed.py), one private copy per test, with real keys made by
kamiyo.api.keys and a clock the test moves. Every answer is checked against the OpenAPI document (contract.py)."""

from __future__ import annotations

import asyncio
import shutil
import time
from dataclasses import replace

import pytest
from aiohttp.test_utils import TestClient, TestServer

from kamiyo.api import create_app, keys
from kamiyo.api.routes.service import DOCUMENT
from kamiyo.config import parse
from kamiyo.storage.engine import create_engine
from tests.api.contract import Client, Contract
from tests.api.seed import Seeded, config_text, seed


class Clock:
    """Wall time in seconds, as the application reads it; starts at the real time."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="session")
def template(tmp_path_factory) -> Seeded:
    folder = tmp_path_factory.mktemp("api-template")
    return asyncio.run(seed(folder / "kamiyo.db"))


@pytest.fixture
def seeded(template: Seeded, tmp_path) -> Seeded:
    db = tmp_path / "kamiyo.db"
    for suffix in ("", "-wal", "-shm"):
        source = template.db.with_name(template.db.name + suffix)
        if source.exists():
            shutil.copyfile(source, db.with_name(db.name + suffix))
    return replace(template, db=db)


@pytest.fixture
def settings(seeded: Seeded):
    return parse(config_text(seeded.db))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def engine(settings):
    engine = create_engine(settings.storage)
    yield engine
    await engine.dispose()


@pytest.fixture
def make_key(engine):
    async def make(tier: str = "pro", scopes: tuple[str, ...] = ("read",), name: str = "test") -> tuple:
        async with engine.begin() as conn:
            return await keys.create(conn, name, tier=tier, scopes=list(scopes))

    return make


async def serve(engine, settings, clock, **kwargs):
    app = create_app(engine, settings, read_only=kwargs.pop("read_only", False), clock=clock, **kwargs)
    client = TestClient(TestServer(app))
    await client.start_server()
    return app, client


@pytest.fixture
async def api(engine, settings, clock):
    """A client with no key: `api.with_key(secret)` for one that sends one."""
    app, client = await serve(engine, settings, clock)
    try:
        yield Client(client, Contract(app[DOCUMENT]))
    finally:
        await client.close()


@pytest.fixture
async def pro(api, make_key):
    """A client with a pro key that may read and keep watchlists."""
    _key, secret = await make_key("pro", ("read", "watchlists"))
    return api.with_key(secret)
