"""Keys, scopes and quotas at the door: 401 without a usable key, 403 without the scope, 429 with Retry-After over
a quota, and the free tier's 24-hour delay."""

from __future__ import annotations

import pytest

from kamiyo.api import keys
from kamiyo.api.quotas import DAY_SECONDS
from kamiyo.storage.schema import api_keys


async def test_no_key_an_unknown_one_or_a_malformed_header_is_401_with_a_challenge(api, seeded):
    for headers in ({}, {"Authorization": "Bearer kmy_not-a-key"}, {"X-API-Key": "kmy_nope"},
                    {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer "}):
        answer = await api.get("/v1/findings", headers=headers)
        assert answer.status == 401, headers
        assert answer.json()["error"] == "unauthorized"
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert (await api.get(f"/v1/findings/{seeded.fingerprints[0]}")).status == 401


async def test_a_key_works_as_bearer_and_as_x_api_key(api, make_key):
    _key, secret = await make_key("pro")
    bearer = await api.get("/v1/findings", headers={"Authorization": f"Bearer {secret}"})
    header = await api.get("/v1/findings", headers={"X-API-Key": secret})
    assert bearer.status == header.status == 200
    assert bearer.json() == header.json() and bearer.json()["findings"]


async def test_a_revoked_key_is_refused_within_a_second_of_its_revocation(api, make_key, engine, clock):
    key, secret = await make_key("pro")
    client = api.with_key(secret)
    assert (await client.get("/v1/findings?limit=1")).status == 200  # the key is read, and may be kept 1 s
    async with engine.begin() as conn:  # as `kamiyo apikey revoke` does, from another process
        await keys.revoke(conn, key.id)
    clock.advance(1.0)  # the bound auth.py states, by the application's clock
    answer = await client.get("/v1/findings?limit=1")
    assert answer.status == 401 and key.id in answer.json()["detail"] and "revoked" in answer.json()["detail"]
    clock.advance(60)
    assert (await client.get("/v1/me")).status == 401  # and from then on


async def test_a_clock_set_back_does_not_stretch_the_bound(api, make_key, engine, clock):
    key, secret = await make_key("pro")
    client = api.with_key(secret)
    assert (await client.get("/v1/me")).status == 200
    async with engine.begin() as conn:
        await keys.revoke(conn, key.id)
    clock.advance(-5)  # the key was read "in the future": it is read again
    assert (await client.get("/v1/me")).status == 401


async def test_a_key_made_after_its_secret_was_refused_works_at_once(api, engine):
    secret = keys.SECRET_PREFIX + "x" * 43
    assert (await api.with_key(secret).get("/v1/me")).status == 401  # an unknown secret is not remembered
    digest = keys.hash_secret(secret)
    async with engine.begin() as conn:
        made, _ = await keys.create(conn, "late", tier="pro", scopes=["read"])
        await conn.execute(api_keys.update().where(api_keys.c.id == made.id).values(secret_hash=digest))
    assert (await api.with_key(secret).get("/v1/me")).json()["key"]["id"] == made.id


async def test_a_route_needs_its_scope_and_admin_has_every_scope(api, make_key):
    _k, read = await make_key("pro", ("read",))
    _k, watch = await make_key("pro", ("watchlists",))
    _k, admin = await make_key("pro", ("admin",))
    refused = await api.with_key(read).get("/v1/watchlists")
    assert refused.status == 403 and refused.json()["error"] == "forbidden" and "'watchlists'" in \
        refused.json()["detail"]
    assert (await api.with_key(watch).get("/v1/findings")).status == 403
    assert (await api.with_key(watch).get("/v1/watchlists")).status == 200
    assert (await api.with_key(read).get("/metrics")).status == 403
    for path in ("/v1/findings", "/v1/watchlists", "/metrics", "/v1/sources"):
        assert (await api.with_key(admin).get(path)).status == 200, path
    for secret in (read, watch, admin):
        assert (await api.with_key(secret).get("/v1/me")).status == 200  # any key may see itself


async def test_the_open_routes_need_no_key(api):
    assert (await api.get("/healthz")).json() == {"status": "ok"}
    assert (await api.get("/readyz")).status == 200
    assert (await api.get("/v1/openapi.json")).json()["openapi"].startswith("3.1")


async def test_over_the_minute_quota_is_429_with_retry_after_and_admitted_again_once_it_passes(api, make_key, clock):
    _key, secret = await make_key("free")
    client = api.with_key(secret)
    for _ in range(10):  # free: 10 a minute, all at once if the key likes
        assert (await client.get("/v1/sources")).status == 200
    refused = await client.get("/v1/sources")
    assert refused.status == 429 and refused.json()["error"] == "rate_limited"
    assert refused.headers["Retry-After"] == "6" and refused.json()["retry_after"] == 6  # one request per 6 s
    clock.advance(5)
    assert (await client.get("/v1/sources")).status == 429  # refusals are not counted, nor is the wait over
    clock.advance(1)
    assert (await client.get("/v1/sources")).status == 200
    _other, fresh = await make_key("free")
    assert (await api.with_key(fresh).get("/v1/sources")).status == 200  # quotas are per key


async def test_over_the_day_quota_is_429_until_the_next_utc_day(api, make_key, clock):
    clock.now = (clock.now // DAY_SECONDS) * DAY_SECONDS + 3600  # 01:00 UTC: the 100 requests fit before midnight
    _key, secret = await make_key("free")
    client = api.with_key(secret)
    for _ in range(100):
        assert (await client.get("/v1/me")).status == 200
        clock.advance(6)  # within the minute quota
    refused = await client.get("/v1/me")
    assert refused.status == 429 and "per day" in refused.json()["detail"]
    assert int(refused.headers["Retry-After"]) == DAY_SECONDS - 3600 - 600
    clock.advance(DAY_SECONDS)
    assert (await client.get("/v1/me")).status == 200


async def test_the_free_tier_sees_findings_a_day_late_and_pro_at_once(api, make_key, seeded):
    _k, free = await make_key("free")
    _k, pro = await make_key("pro")
    fresh = seeded.fresh_exploit  # an hour old
    listed = {f["id"] for f in (await api.with_key(free).get("/v1/findings?limit=500")).json()["findings"]}
    assert fresh not in listed and seeded.old_exploit in listed
    assert fresh in {f["id"] for f in (await api.with_key(pro).get("/v1/findings?limit=500")).json()["findings"]}
    hidden = await api.with_key(free).get(f"/v1/findings/{fresh}")
    assert hidden.status == 404 and "delayed" in hidden.json()["detail"]
    assert (await api.with_key(pro).get(f"/v1/findings/{fresh}")).json()["finding"]["id"] == fresh
    me = (await api.with_key(free).get("/v1/me")).json()["key"]
    assert me["tier"] == "free" and me["quotas"]["delay_seconds"] == DAY_SECONDS


async def test_the_free_tier_does_not_learn_of_a_fresh_exploit_through_incidents(api, make_key, seeded):
    _k, free = await make_key("free")
    _k, pro = await make_key("pro")

    def onchain(answer) -> set[str]:
        return {s["ref"] for i in answer.json()["incidents"] for s in i["sources"] if s["source"] == "kamiyo"}

    assert onchain(await api.with_key(pro).get("/v1/incidents")) == {seeded.old_exploit, seeded.fresh_exploit}
    assert onchain(await api.with_key(free).get("/v1/incidents")) == {seeded.old_exploit}
    pro_list = (await api.with_key(pro).get("/v1/incidents")).json()["incidents"]
    fresh_id = next(i["id"] for i in pro_list if any(s["ref"] == seeded.fresh_exploit for s in i["sources"]))
    assert (await api.with_key(free).get(f"/v1/incidents/{fresh_id}")).status == 404
    assert (await api.with_key(pro).get(f"/v1/incidents/{fresh_id}")).status == 200


@pytest.mark.parametrize("tier", list(keys.TIERS))
async def test_each_tier_reports_its_quotas(api, make_key, tier):
    _key, secret = await make_key(tier)
    assert (await api.with_key(secret).get("/v1/me")).json()["key"]["quotas"] == keys.TIERS[tier].as_json()
