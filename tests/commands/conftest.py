"""One stored world per module: the read commands never change it."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.stored_world import build


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return asyncio.run(build(tmp_path_factory.mktemp("world")))
