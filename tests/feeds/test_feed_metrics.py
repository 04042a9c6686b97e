"""Feed health in /metrics: real pulls of a file source (the recorded rekt RSS payload) into a real database, the
metrics read back from the process registry. Up flips with the last pull, pulls count by status, a failure keeps
the last success; at daemon start, a feed's stored health is shown before it is pulled again.

The registry is the process's: every test uses feed names of its own, so order and other tests do not matter.
"""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from pathlib import Path

import aiohttp
import pytest
from prometheus_client import generate_latest

from kamiyo import metrics
from kamiyo.config import parse
from kamiyo.daemon.feeds import follow_feeds
from kamiyo.daemon.linking import Linker
from kamiyo.daemon.notify import Heartbeats
from kamiyo.feeds.pull import pull
from kamiyo.metrics import REGISTRY
from kamiyo.storage.engine import create_engine
from kamiyo.storage.migrations import upgrade

RSS = Path(__file__).parent / "fixtures" / "rekt-rss.xml"
ITEMS = 4  # <item>s in the fixture


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def config(tmp_path, feeds: dict[str, Path]):
    """Settings with one RSS feed per (name, file)."""
    text = f'[storage]\nurl = "sqlite:///{tmp_path / "k.db"}"\n'
    for name, path in feeds.items():
        text += f'\n[[feeds]]\nname = "{name}"\ntype = "rss"\npath = "{path}"\n'
    return parse(text)


@pytest.fixture
async def engine_of(tmp_path):
    engines = []

    async def make(settings):
        engine = create_engine(settings.storage)
        await upgrade(engine)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        await engine.dispose()


def feed_metrics(name: str) -> dict[str, float | None]:
    sample = REGISTRY.get_sample_value
    return {
        "up": sample("kamiyo_feed_up", {"feed": name}),
        "last_success": sample("kamiyo_feed_last_success_timestamp_seconds", {"feed": name}),
        "records": sample("kamiyo_feed_records", {"feed": name}),
        **{status: sample("kamiyo_feed_pulls_total", {"feed": name, "status": status})
           for status in ("updated", "unchanged", "failed")},
    }


async def timed_pull(feed, engine, session):
    before = time.time()
    result = await pull(feed, engine, session)
    return result, before, time.time()


async def test_up_flips_with_the_last_pull_and_pulls_count_by_status(tmp_path, engine_of):
    name, source = unique("rss"), tmp_path / "feed.xml"
    shutil.copy(RSS, source)
    settings = config(tmp_path, {name: source})
    feed, engine = settings.feeds[0], await engine_of(settings)
    assert feed_metrics(name) == dict.fromkeys(("up", "last_success", "records", "updated", "unchanged", "failed"))

    async with aiohttp.ClientSession() as session:
        result, before, after = await timed_pull(feed, engine, session)
        assert result.status == "updated"
        first = feed_metrics(name)
        assert before <= first["last_success"] <= after
        assert first == {"up": 1, "last_success": first["last_success"], "records": ITEMS, "updated": 1,
                         "unchanged": None, "failed": None}

        result, before, after = await timed_pull(feed, engine, session)  # the same file: nothing new
        assert result.status == "unchanged"
        second = feed_metrics(name)
        assert before <= second["last_success"] <= after and second["last_success"] > first["last_success"]
        assert (second["up"], second["records"], second["updated"], second["unchanged"]) == (1, ITEMS, 1, 1)

        source.unlink()  # the source is gone: a failed pull
        result = await pull(feed, engine, session)
        assert result.status == "failed"
        failed = feed_metrics(name)
        assert failed == {**second, "up": 0, "failed": 1}  # the last success and the last payload's count stay

        shutil.copy(RSS, source)  # back: up again with the next pull
        assert (await pull(feed, engine, session)).status == "unchanged"
        back = feed_metrics(name)
        assert (back["up"], back["unchanged"], back["failed"]) == (1, 2, 1)
        assert back["last_success"] > failed["last_success"]

    scraped = generate_latest(REGISTRY).decode()  # what a scraper reads: the counter with its _total
    assert f'kamiyo_feed_pulls_total{{feed="{name}",status="failed"}} 1.0' in scraped
    assert f'kamiyo_feed_up{{feed="{name}"}} 1.0' in scraped


async def test_at_start_the_daemon_shows_each_feeds_stored_health(tmp_path, engine_of):
    healthy, failing, never = unique("healthy"), unique("failing"), unique("never")
    for name in (healthy, failing):
        shutil.copy(RSS, tmp_path / f"{name}.xml")
    settings = config(tmp_path, {name: tmp_path / f"{name}.xml" for name in (healthy, failing, never)})
    engine = await engine_of(settings)
    healthy_feed, failing_feed, _never_feed = settings.feeds
    async with aiohttp.ClientSession() as session:
        assert (await pull(healthy_feed, engine, session)).status == "updated"
        assert (await pull(failing_feed, engine, session)).status == "updated"
        (tmp_path / f"{failing}.xml").unlink()
        assert (await pull(failing_feed, engine, session)).status == "failed"
    shown = {name: feed_metrics(name) for name in (healthy, failing)}

    # A restart: a new process has none of these series until it pulls; the stored health is all it knows.
    for name in (healthy, failing):
        for gauge in (metrics.FEED_UP, metrics.FEED_LAST_SUCCESS, metrics.FEED_RECORDS):
            gauge.remove(name)
    assert feed_metrics(healthy)["last_success"] is None
    stop = asyncio.Event()
    stop.set()  # start and stop at once: nothing is pulled, only the stored health is shown
    await follow_feeds(settings, engine, await Linker.load(engine), stop, Heartbeats())

    for name, up in ((healthy, 1), (failing, 0)):
        seeded = feed_metrics(name)
        assert (seeded["up"], seeded["records"]) == (up, ITEMS), name
        assert seeded["last_success"] == pytest.approx(shown[name]["last_success"], abs=1e-3), name
    assert feed_metrics(never) == dict.fromkeys(("up", "last_success", "records", "updated", "unchanged",
                                                 "failed"))  # never pulled: absent, not "down"
