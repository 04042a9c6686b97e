"""`/v1/webhooks`: a key's own webhooks, registered with a secret shown once, tested against a real receiver,
refused when they point where the server may not reach (SSRF), bounded by the tier, and nobody else's."""

from __future__ import annotations

from kamiyo.api.keys import Quotas
from kamiyo.api.routes.service import DOCUMENT
from kamiyo.storage.schema import api_keys
from tests.alerts.receiver import Receiver
from tests.api.conftest import serve
from tests.api.contract import Client, Contract


async def test_registered_listed_tested_with_its_own_secret_and_removed(pro):
    receiver = await Receiver("unknown until the webhook is made").start()
    try:
        made = await pro.post("/v1/webhooks", json={"name": "team", "url": receiver.url})
        assert made.status == 201
        hook, secret = made.json()["webhook"], made.json()["secret"]
        assert secret.startswith("whsec_") and len(secret) > 40 and hook["id"].startswith("wh_")
        assert made.headers["Location"] == f"/v1/webhooks/{hook['id']}"
        assert (hook["name"], hook["url"]) == ("team", receiver.url)
        listed = await pro.get("/v1/webhooks")
        assert listed.json()["webhooks"] == [hook] and secret not in listed.text  # shown once
        assert (await pro.get(f"/v1/webhooks/{hook['id']}")).json()["webhook"] == hook

        receiver.secret = secret
        tested = (await pro.post(f"/v1/webhooks/{hook['id']}/test")).json()
        assert tested == {"delivered": True, "status": 204, "detail": "delivered"}
        assert [(r.event, r.signed) for r in receiver.received] == [("channel.test", True)]

        receiver.secret = "another secret"  # a receiver that cannot verify the signature refuses it: said so
        refused = (await pro.post(f"/v1/webhooks/{hook['id']}/test")).json()
        assert refused["delivered"] is False and "HTTP 401" in refused["detail"]

        assert (await pro.delete(f"/v1/webhooks/{hook['id']}")).status == 204
        assert (await pro.get(f"/v1/webhooks/{hook['id']}")).status == 404
        assert (await pro.post(f"/v1/webhooks/{hook['id']}/test")).status == 404
    finally:
        await receiver.stop()


async def test_a_url_the_server_may_not_reach_is_refused_with_every_problem(pro):
    for url, why in (("http://10.1.2.3/hook", "not public (private)"),
                     ("http://169.254.169.254/latest/meta-data", "not public"),
                     ("http://[::ffff:10.0.0.1]/hook", "not public"),
                     ("http://0x7f000001/hook", "not a canonical IP address"),
                     ("http://no-such-host.invalid/hook", "does not resolve")):
        answer = await pro.post("/v1/webhooks", json={"name": "x", "url": url})
        assert answer.status == 400, url
        (problem,) = answer.json()["problems"]
        assert problem["path"] == "url" and why in problem["message"], (url, problem)
    both = await pro.post("/v1/webhooks", json={"name": " ", "url": "ftp://example.org/x"})
    assert [p["path"] for p in both.json()["problems"]] == ["name", "url"]
    typed = await pro.post("/v1/webhooks", json={"name": "x", "url": 7, "secret": "mine"})
    assert [p["path"] for p in typed.json()["problems"]] == ["url", "secret"]
    assert (await pro.get("/v1/webhooks")).json()["webhooks"] == []


async def test_the_tier_bounds_how_many_and_a_name_is_one_webhook_per_key(api, make_key, engine):
    key, secret = await make_key("pro", ("watchlists",))
    client = api.with_key(secret)
    async with engine.begin() as conn:  # a key whose tier allows two
        tight = Quotas(None, None, None, 2, 0)
        await conn.execute(api_keys.update().where(api_keys.c.id == key.id).values(quotas=tight.as_json()))
    assert (await client.post("/v1/webhooks", json={"name": "a", "url": "http://127.0.0.1:9/a"})).status == 201
    again = await client.post("/v1/webhooks", json={"name": "a", "url": "http://127.0.0.1:9/b"})
    assert again.status == 409 and again.json()["error"] == "conflict"
    assert (await client.post("/v1/webhooks", json={"name": "b", "url": "http://127.0.0.1:9/b"})).status == 201
    over = await client.post("/v1/webhooks", json={"name": "c", "url": "http://127.0.0.1:9/c"})
    assert over.status == 403 and over.json()["error"] == "quota" and "2 webhook(s)" in over.json()["detail"]


async def test_another_keys_webhook_is_not_found_and_a_read_only_server_refuses_changes(api, pro, make_key, engine,
                                                                                       settings, clock):
    ident = (await pro.post("/v1/webhooks", json={"name": "a", "url": "http://127.0.0.1:9/a"})).json()["webhook"]["id"]
    _k, other = await make_key("enterprise", ("admin",))
    client = api.with_key(other)
    assert (await client.get(f"/v1/webhooks/{ident}")).status == 404
    assert (await client.delete(f"/v1/webhooks/{ident}")).status == 404
    assert (await client.post(f"/v1/webhooks/{ident}/test")).status == 404
    assert (await client.get("/v1/webhooks")).json()["webhooks"] == []
    _k, reader = await make_key("pro", ("read",))
    assert (await api.with_key(reader).get("/v1/webhooks")).status == 403  # the watchlists scope is needed

    app, raw = await serve(engine, settings, clock, read_only=True)
    try:
        _k, secret = await make_key("pro", ("watchlists",))
        read_only = Client(raw, Contract(app[DOCUMENT]), secret)
        refused = await read_only.post("/v1/webhooks", json={"name": "a", "url": "http://127.0.0.1:9/a"})
        assert refused.status == 405 and refused.json()["error"] == "read_only"
        assert (await read_only.delete(f"/v1/webhooks/{ident}")).status == 405
    finally:
        await raw.close()
