"""kamiyo.api.keys and the quota limiter on their own: what a key is, how it is found, revoked, and counted."""

from __future__ import annotations

import pytest

from kamiyo.api import keys
from kamiyo.api.quotas import Limiter
from kamiyo.errors import InputError


async def test_a_key_is_found_by_its_secret_only(engine):
    async with engine.begin() as conn:
        first, secret = await keys.create(conn, "a", tier="team", scopes=["read", "watchlists"])
        second, other = await keys.create(conn, "b", tier="team", scopes=["read"])
        assert secret != other and first.id != second.id
        assert (await keys.lookup(conn, secret)).id == first.id
        assert await keys.lookup(conn, secret + "x") is None
        assert await keys.lookup(conn, keys.hash_secret(secret)) is None  # the stored hash is no secret
        found = await keys.lookup(conn, other)
    assert found.quotas == keys.TIERS["team"] and found.scopes == frozenset({"read"})
    assert found.allows("read") and not found.allows("watchlists")


async def test_revoking_twice_keeps_the_first_time(engine):
    async with engine.begin() as conn:
        key, secret = await keys.create(conn, "a", tier="free", scopes=["read"])
        once = await keys.revoke(conn, key.id)
        twice = await keys.revoke(conn, key.id)
        assert once.revoked_at is not None and twice.revoked_at.replace(tzinfo=None) == \
            once.revoked_at.replace(tzinfo=None)
        assert (await keys.lookup(conn, secret)).revoked_at is not None


def test_every_problem_of_a_request_is_named():
    with pytest.raises(InputError) as caught:
        keys.check_request("", "gold", ["read", "write"])
    message = str(caught.value)
    assert "a name of 1 to 200" in message and "tier 'gold'" in message and "unknown scope(s) write" in message


def test_tiers_are_what_the_product_sells():
    free, pro, team, enterprise = (keys.TIERS[t] for t in ("free", "pro", "team", "enterprise"))
    assert (free.requests_per_day, free.requests_per_minute, free.watchlists, free.webhooks,
            free.delay_seconds) == (100, 10, 1, 0, 86_400)
    assert (pro.requests_per_day, pro.requests_per_minute, pro.watchlists, pro.delay_seconds) == (50_000, 600, 20, 0)
    assert (team.requests_per_day, team.requests_per_minute, team.watchlists) == (500_000, 3000, 100)
    assert enterprise == keys.Quotas(None, None, None, None, 0)


def key_of(tier: str) -> keys.ApiKey:
    return keys.ApiKey("key_t", "t", tier, frozenset({"read"}), keys.TIERS[tier], created_at=None)


async def test_the_minute_bucket_refills_with_time_and_never_from_a_clock_stepped_back():
    now = [1_000_000.0]
    limiter = Limiter(lambda: now[0])
    key = key_of("free")
    assert [await limiter.admit(key) for _ in range(10)] == [None] * 10
    refused = await limiter.admit(key)
    assert refused.window == "minute" and refused.retry_after == pytest.approx(6.0)
    now[0] -= 3600  # the clock jumps back an hour: no request is owed for that
    assert await limiter.admit(key) is not None
    now[0] += 3600 + 12  # two requests' worth
    assert [await limiter.admit(key) is None for _ in range(3)] == [True, True, False]


async def test_an_unlimited_key_is_never_refused():
    limiter = Limiter(lambda: 5.0)
    key = key_of("enterprise")
    assert [await limiter.admit(key) for _ in range(20_000)] == [None] * 20_000
