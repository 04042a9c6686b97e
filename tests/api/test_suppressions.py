"""`/v1/suppressions`: a key's own, every problem of a body listed, nobody else's, and a read-only server refusing
changes. What they silence (only the key's own webhooks) is tested with the worker, in
tests/watchlists/test_key_webhooks.py."""

from __future__ import annotations

from kamiyo.api.routes.service import DOCUMENT
from tests.api.conftest import serve
from tests.api.contract import Client, Contract

POOL = "0x" + "5c" * 20


async def test_made_listed_and_removed_and_nobody_elses(api, pro, make_key):
    made = await pro.post("/v1/suppressions", json={"kind": "large-outflow", "address": "0x" + POOL[2:].upper(),
                                                    "reason": "our treasury's payouts"})
    assert made.status == 201
    rule = made.json()["suppression"]
    assert (rule["kind"], rule["address"], rule["fingerprint"]) == ("large-outflow", POOL, None)
    assert made.headers["Location"] == f"/v1/suppressions/{rule['id']}"
    by_id = await pro.post("/v1/suppressions", json={"fingerprint": "0x" + "ab" * 32, "reason": "seen"})
    assert by_id.status == 201
    assert [s["id"] for s in (await pro.get("/v1/suppressions")).json()["suppressions"]] == [
        rule["id"], by_id.json()["suppression"]["id"]]
    _k, other = await make_key("pro", ("watchlists",))
    assert (await api.with_key(other).get("/v1/suppressions")).json()["suppressions"] == []
    assert (await api.with_key(other).delete(f"/v1/suppressions/{rule['id']}")).status == 404
    assert (await pro.delete(f"/v1/suppressions/{rule['id']}")).status == 204
    assert (await pro.delete(f"/v1/suppressions/{rule['id']}")).status == 404


async def test_a_rule_is_a_fingerprint_or_a_kind_and_an_address(pro):
    for body, where, words in (
            ({"kind": "reentrancy", "reason": "r"}, "body", "a fingerprint, or a kind and an address"),
            ({"fingerprint": "0x" + "ab" * 32, "kind": "x", "address": POOL, "reason": "r"}, "body", "not both"),
            ({"kind": "x", "address": "0x12", "reason": "r"}, "address", "40 hex digits"),
            ({"fingerprint": "0x1", "reason": " "}, "reason", "at least 1 character"),
            ({"fingerprint": "0x1", "reason": "tab\there"}, "reason", "control characters")):
        answer = await pro.post("/v1/suppressions", json=body)
        assert answer.status == 400, body
        assert any(p["path"] == where and words in p["message"] for p in answer.json()["problems"]), answer.json()
    typed = await pro.post("/v1/suppressions", json={"fingerprint": 7, "why": "x"})
    assert {p["path"] for p in typed.json()["problems"]} == {"fingerprint", "reason", "why"}


async def test_a_read_only_server_refuses_changes(engine, settings, clock, make_key):
    _k, secret = await make_key("pro", ("watchlists",))
    app, raw = await serve(engine, settings, clock, read_only=True)
    try:
        client = Client(raw, Contract(app[DOCUMENT]), secret)
        refused = await client.post("/v1/suppressions", json={"fingerprint": "0x" + "ab" * 32, "reason": "r"})
        assert refused.status == 405 and refused.json()["error"] == "read_only"
        assert (await client.delete("/v1/suppressions/sup_0")).status == 405
        assert (await client.get("/v1/suppressions")).status == 200
    finally:
        await raw.close()
