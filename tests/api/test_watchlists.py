"""`/v1/watchlists`: a key's own, made through watchlists/store.py (so the delivery worker reads them), every body
problem listed at once, the tier's quotas, another owner's id a 404, a read-only server refusing changes, and the
channels a key may name: its own webhooks and the configured channels granted to it."""

from __future__ import annotations

from kamiyo.api.routes.service import DOCUMENT
from kamiyo.config import parse
from kamiyo.watchlists import store
from tests.api.conftest import serve
from tests.api.contract import Client, Contract
from tests.api.seed import config_text

UNI = "0x" + "5c" * 20
BODY = {"name": "uniswap", "entries": [f"eth:{UNI}", "protocol:Uniswap V2"], "kinds": ["fork-detected"],
        "min_severity": "medium", "channels": ["team"]}
HOOK = {"name": "team", "url": "http://127.0.0.1:9/kamiyo"}  # loopback: the tests' [alerts] allow it


async def test_made_listed_shown_and_removed_and_the_worker_reads_it(pro, engine):
    assert (await pro.post("/v1/webhooks", json=HOOK)).status == 201
    made = await pro.post("/v1/watchlists", json=BODY)
    assert made.status == 201
    watchlist = made.json()["watchlist"]
    assert made.headers["Location"] == f"/v1/watchlists/{watchlist['id']}"
    assert watchlist["entries"] == [f"1:{UNI.lower()}", "protocol:Uniswap V2"]
    assert (watchlist["kinds"], watchlist["min_severity"], watchlist["channels"]) == (["fork-detected"], "medium",
                                                                                      ["team"])
    assert (await pro.get("/v1/watchlists")).json()["watchlists"] == [watchlist]
    assert (await pro.get(f"/v1/watchlists/{watchlist['id']}")).json()["watchlist"] == watchlist
    async with engine.connect() as conn:  # as the delivery worker sees it at its next fan-out
        stored = [w for w in await store.load(conn) if w.id == watchlist["id"]]
    assert stored and stored[0].owner.startswith("key_") and stored[0].entries[0] == store.Entry(1, UNI.lower())
    assert (await pro.delete(f"/v1/watchlists/{watchlist['id']}")).status == 204
    assert (await pro.get(f"/v1/watchlists/{watchlist['id']}")).status == 404
    assert (await pro.delete(f"/v1/watchlists/{watchlist['id']}")).status == 404


async def test_another_owners_watchlist_is_not_found(api, pro, make_key):
    ident = (await pro.post("/v1/watchlists", json={**BODY, "channels": []})).json()["watchlist"]["id"]
    _k, other = await make_key("pro", ("watchlists",))
    _k, admin = await make_key("enterprise", ("admin",))
    for client in (api.with_key(other), api.with_key(admin)):  # admin has every scope, not every owner's lists
        assert (await client.get(f"/v1/watchlists/{ident}")).status == 404
        assert (await client.delete(f"/v1/watchlists/{ident}")).status == 404
        assert (await client.get("/v1/watchlists")).json()["watchlists"] == []
    assert (await pro.get(f"/v1/watchlists/{ident}")).status == 200  # still there


async def test_every_problem_of_a_body_is_listed_at_once(pro):
    answer = await pro.post("/v1/watchlists", json={
        "name": "x", "entries": ["eth:0x12", "mars:" + UNI, "protocol:ab", "²:" + UNI, f"eth:{UNI}"],
        "channels": ["ops", "pager"]})
    assert answer.status == 400 and answer.json()["error"] == "invalid_body"
    problems = answer.json()["problems"]
    paths = [p["path"] for p in problems]
    assert paths == ["entries[0]", "entries[1]", "entries[2]", "entries[3]", "body"]
    assert "unknown chain 'mars'" in problems[1]["message"] and "3 characters" in problems[2]["message"]
    assert "pager" in problems[4]["message"] and "5 problem(s)" in answer.json()["detail"]
    typed = await pro.post("/v1/watchlists", json={"name": 7, "entries": "eth", "colour": "red"})
    assert [p["path"] for p in typed.json()["problems"]] == ["name", "entries", "colour"]
    assert (await pro.post("/v1/watchlists", data=b"{not json")).json()["error"] == "invalid_body"


async def test_a_name_is_one_watchlist_per_key(pro):
    assert (await pro.post("/v1/watchlists", json={**BODY, "channels": []})).status == 201
    again = await pro.post("/v1/watchlists", json={**BODY, "channels": []})
    assert again.status == 409 and again.json()["error"] == "conflict"


async def test_the_free_tier_has_one_watchlist_and_no_webhook(api, make_key):
    _k, secret = await make_key("free", ("watchlists",))
    client = api.with_key(secret)
    hook = await client.post("/v1/webhooks", json=HOOK)
    assert hook.status == 403 and hook.json()["error"] == "quota" and "0 webhook(s)" in hook.json()["detail"]
    assert (await client.post("/v1/watchlists", json={**BODY, "channels": []})).status == 201
    second = await client.post("/v1/watchlists", json={**BODY, "name": "second", "channels": []})
    assert second.status == 403 and "1 watchlist(s)" in second.json()["detail"]


GRANT = """
[[channels]]
name = "shared"
type = "slack"
url = "https://hooks.slack.com/services/T/B/y"
keys = ["{key}"]
"""


async def test_a_key_names_its_own_webhooks_and_the_channels_granted_to_it_only(api, engine, seeded, clock,
                                                                                make_key):
    key, secret = await make_key("pro", ("watchlists",))
    client = api.with_key(secret)
    refused = await client.post("/v1/watchlists", json={**BODY, "channels": ["ops"]})  # the operator's, not granted
    assert refused.status == 400 and "unknown channel(s) ops" in refused.json()["detail"]
    assert (await client.get("/v1/channels")).json()["channels"] == []
    assert (await client.post("/v1/webhooks", json=HOOK)).status == 201
    assert (await client.post("/v1/watchlists", json=BODY)).status == 201
    _other, other_secret = await make_key("pro", ("watchlists",))  # another key's webhook is not its to name
    assert (await api.with_key(other_secret).post("/v1/watchlists", json=BODY)).status == 400

    app, raw = await serve(engine, parse(config_text(seeded.db, extra=GRANT.format(key=key.id))), clock)
    try:
        granted = Client(raw, Contract(app[DOCUMENT]), secret)
        listed = (await granted.get("/v1/channels")).json()["channels"]
        assert [(c["name"], c["type"], c["owned"]) for c in listed] == [("team", "webhook", True),
                                                                       ("shared", "slack", False)]
        both = await granted.post("/v1/watchlists", json={**BODY, "name": "b", "channels": ["team", "shared"]})
        assert both.status == 201
        assert (await granted.post("/v1/watchlists", json={**BODY, "name": "c", "channels": ["ops"]})).status == 400
    finally:
        await raw.close()


async def test_a_read_only_server_refuses_changes(engine, settings, clock, make_key):
    _k, secret = await make_key("pro", ("watchlists",))
    app, raw = await serve(engine, settings, clock, read_only=True)
    try:
        client = Client(raw, Contract(app[DOCUMENT]), secret)
        refused = await client.post("/v1/watchlists", json=BODY)
        assert refused.status == 405 and refused.json()["error"] == "read_only"
        assert refused.headers["Allow"] == "GET, HEAD"
        assert (await client.delete("/v1/watchlists/wl_0")).status == 405
        assert (await client.get("/v1/watchlists")).status == 200
    finally:
        await raw.close()
