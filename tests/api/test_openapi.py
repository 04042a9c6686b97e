"""The OpenAPI document: valid OpenAPI 3.1, one operation per route with the route's scope, built from the
configuration it serves, and a contract checker (contract.py) that does catch a response drifting from it."""

from __future__ import annotations

import json

import pytest
from openapi_spec_validator import validate

from kamiyo.api.context import PUBLIC
from kamiyo.api.openapi import document
from kamiyo.api.routes import ROUTES
from tests.api.contract import Contract, ContractBroken


async def test_the_served_document_is_valid_openapi_3_1(api):
    served = (await api.get("/v1/openapi.json")).json()
    validate(served)
    assert served == json.loads(json.dumps(document()))


def test_every_route_is_one_operation_of_the_document_and_nothing_else_is():
    doc = document()
    operations = {(method.upper(), path): op for path, item in doc["paths"].items() for method, op in item.items()}
    assert set(operations) == {(r.method, r.path) for r in ROUTES}
    for route in ROUTES:
        operation = operations[(route.method, route.path)]
        assert operation["operationId"] == route.name
        assert (operation.get("security") == []) == (route.scope is PUBLIC), route.path
        documented = {p["name"] for p in operation["parameters"] if p["in"] == "path"}
        assert documented == {part[1:-1] for part in route.path.split("/") if part.startswith("{")}


async def test_the_public_document_does_not_tell_the_configuration(api, pro, settings):
    served = (await api.get("/v1/openapi.json")).text  # no key needed
    for secret_ish in [c.name for c in settings.channels] + [c.name for c in settings.chains] + ["hooks."]:
        assert f'"{secret_ish}' not in served and f"|{secret_ish}" not in served, secret_ish
    assert (await pro.get("/v1/channels")).json()["channels"] == []  # nor to a key no channel is granted to
    assert (await pro.post("/v1/webhooks", json={"name": "mine", "url": "http://127.0.0.1:9/x"})).status == 201
    channels = (await pro.get("/v1/channels")).json()["channels"]
    assert [(c["name"], c["type"], c["owned"]) for c in channels] == [("mine", "webhook", True)]
    assert "url" not in channels[0] and "secret" not in channels[0]


@pytest.fixture
def contract() -> Contract:
    return Contract(document())


def finding() -> dict:
    return {"id": "0x" + "1" * 64, "kind": "fork-detected", "severity": "info", "type": "info", "chain_id": 1,
            "subject": "0x" + "2" * 40, "block": 1, "tx_hash": None, "status": "active", "labels": [],
            "evidence": {}, "created_at": "2024-01-01T00:00:00Z"}


def test_the_contract_checker_catches_drift(contract):
    good = json.dumps({"findings": [finding()], "next_cursor": None}).encode()
    contract.check("GET", "/v1/findings", 200, "application/json", good)
    drifts = [
        ({"findings": [{**finding(), "chain": "eth"}], "next_cursor": None}, "unexpected"),  # a field added
        ({"findings": [{k: v for k, v in finding().items() if k != "tx_hash"}], "next_cursor": None}, "tx_hash"),
        ({"findings": [{**finding(), "created_at": "yesterday"}], "next_cursor": None}, "date-time"),
        ({"findings": [{**finding(), "severity": "urgent"}], "next_cursor": None}, "urgent"),
    ]
    for body, hint in drifts:
        with pytest.raises(ContractBroken, match=hint):
            contract.check("GET", "/v1/findings", 200, "application/json", json.dumps(body).encode())
    with pytest.raises(ContractBroken, match="content type"):
        contract.check("GET", "/v1/findings", 200, "text/html", good)
    with pytest.raises(ContractBroken, match="breaks the document"):  # an error must have the error shape
        contract.check("GET", "/v1/findings", 400, "application/json", b'{"message": "bad"}')
    with pytest.raises(ContractBroken, match="not documented"):
        contract.check("POST", "/v1/watchlists", 200, "application/json", b"{}")  # it answers 201
