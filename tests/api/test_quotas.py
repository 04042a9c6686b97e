"""The day quota shared through the database: two processes serving one database (two Limiters on one SQLite
file here, each with its own engine) allow a key its day's requests once between them, a restart remembers them,
the overshoot is bounded by one sync, and a new UTC day starts from nothing."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import select

from kamiyo.api import keys
from kamiyo.api.quotas import DAY_SECONDS, Limiter
from kamiyo.config import StorageSettings
from kamiyo.storage.engine import create_engine
from kamiyo.storage.migrations import upgrade
from kamiyo.storage.schema import api_usage

NOON = 20_000 * DAY_SECONDS + 12 * 3600


def key_with(per_day: int) -> keys.ApiKey:
    quotas = replace(keys.TIERS["free"], requests_per_day=per_day, requests_per_minute=None)
    return keys.ApiKey("key_0123456789abcdef", "t", "free", frozenset({"read"}), quotas, created_at=None)


async def admitted(limiter: Limiter, key, tries: int) -> int:
    return sum([await limiter.admit(key) is None for _ in range(tries)])


async def test_two_processes_share_a_keys_day_and_a_restart_remembers_it(tmp_path):
    url = f"sqlite:///{tmp_path / 'k.db'}"
    engines = [create_engine(StorageSettings(url=url)) for _ in range(3)]
    await upgrade(engines[0])
    now = [float(NOON)]
    daemon, api = (Limiter(lambda: now[0], engine) for engine in engines[:2])
    key = key_with(10)
    try:
        assert await admitted(daemon, key, 6) == 6
        await daemon.sync()
        assert await admitted(api, key, 10) == 4  # it read the 6 before its first request
        await api.sync()
        await daemon.sync()
        refused = await daemon.admit(key)
        assert refused.window == "day" and refused.retry_after == 12 * 3600

        restarted = Limiter(lambda: now[0], engines[2])  # a new process: nothing in memory
        assert await restarted.admit(key) is not None
        async with engines[0].connect() as conn:
            assert (await conn.execute(select(api_usage.c.requests))).scalar() == 10

        now[0] += DAY_SECONDS  # a new UTC day
        assert await admitted(restarted, key, 12) == 10
    finally:
        for engine in engines:
            await engine.dispose()


async def test_between_syncs_the_overshoot_is_one_interval_of_each_process_at_most(tmp_path):
    url = f"sqlite:///{tmp_path / 'k.db'}"
    engines = [create_engine(StorageSettings(url=url)) for _ in range(2)]
    await upgrade(engines[0])
    one, two = (Limiter(lambda: float(NOON), engine) for engine in engines)
    key = key_with(10)
    try:
        # both read the key (0 used) and admit within the same interval: each alone allows the full 10
        assert await admitted(one, key, 8) == 8 and await admitted(two, key, 8) == 8
        await one.sync()
        await two.sync()
        await one.sync()
        assert await admitted(one, key, 5) == 0 and await admitted(two, key, 5) == 0  # 16 counted: none more
        async with engines[0].connect() as conn:
            assert (await conn.execute(select(api_usage.c.requests))).scalar() == 16
    finally:
        for engine in engines:
            await engine.dispose()


async def test_old_days_are_pruned_and_a_key_without_a_day_quota_writes_nothing(tmp_path):
    engine = create_engine(StorageSettings(url=f"sqlite:///{tmp_path / 'k.db'}"))
    await upgrade(engine)
    now = [float(NOON)]
    limiter = Limiter(lambda: now[0], engine)
    try:
        assert await admitted(limiter, key_with(100), 3) == 3
        unlimited = keys.ApiKey("key_ffffffffffffffff", "e", "enterprise", frozenset({"read"}),
                                keys.TIERS["enterprise"], created_at=None)
        assert await admitted(limiter, unlimited, 50) == 50
        await limiter.sync()
        now[0] += 2 * DAY_SECONDS
        await limiter.sync()
        async with engine.connect() as conn:
            assert (await conn.execute(select(api_usage))).all() == []
    finally:
        await engine.dispose()
