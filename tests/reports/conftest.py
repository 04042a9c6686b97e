"""One stored world per module: the reports only read it."""

from __future__ import annotations

import asyncio

import pytest

from kamiyo.config import StorageSettings
from kamiyo.storage.reading import open_for_reading
from tests.support.stored_world import build


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return asyncio.run(build(tmp_path_factory.mktemp("world")))


@pytest.fixture
async def engine(world):
    engine = await open_for_reading(StorageSettings(url=f"sqlite:///{world.db}"))
    yield engine
    await engine.dispose()
