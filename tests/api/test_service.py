"""Liveness, readiness, metrics, CORS, and the one error shape for whatever goes wrong, a crash included."""

from __future__ import annotations

import asyncio

from aiohttp.test_utils import TestClient, TestServer

from kamiyo.api import create_app
from kamiyo.api.routes import service
from kamiyo.api.routes.service import DOCUMENT
from kamiyo.config import parse
from kamiyo.storage.engine import create_engine
from tests.api.conftest import serve
from tests.api.contract import Client, Contract
from tests.api.seed import config_text


async def client_for(engine, settings, clock, secret=None, **kwargs):
    app, raw = await serve(engine, settings, clock, **kwargs)
    return app, raw, Client(raw, Contract(app[DOCUMENT]), secret)


async def test_readiness_includes_the_daemons_own_check(engine, settings, clock):
    reports = iter([(True, {"chains": 2}), (False, {"chains": 0, "why": "no pipeline running"})])

    async def ready():
        return next(reports)

    _app, raw, client = await client_for(engine, settings, clock, ready=ready)
    try:
        good = await client.get("/readyz")
        assert good.status == 200 and good.json()["checks"] == {"database": {"ok": True},
                                                               "daemon": {"ok": True, "chains": 2}}
        bad = await client.get("/readyz")
        assert bad.status == 503 and bad.json()["error"] == "not_ready" and bad.json()["detail"] == "not ready: daemon"
        assert bad.json()["checks"]["daemon"] == {"ok": False, "chains": 0, "why": "no pipeline running"}
        assert (await client.get("/healthz")).status == 200  # alive, though not ready
    finally:
        await raw.close()


async def test_a_check_that_raises_or_hangs_is_not_ready_not_a_crash(engine, settings, clock, monkeypatch):
    monkeypatch.setattr(service, "READY_TIMEOUT", 0.05)

    async def broken():
        raise RuntimeError("supervisor gone")

    async def hung():
        await asyncio.sleep(10)

    for check, reason in ((broken, "supervisor gone"), (hung, "timed out")):
        _app, raw, client = await client_for(engine, settings, clock, ready=check)
        try:
            answer = await client.get("/readyz")
            assert answer.status == 503 and answer.json()["checks"]["daemon"] == {"ok": False, "error": reason}
        finally:
            await raw.close()


async def test_without_a_database_readiness_fails_and_data_routes_answer_503(tmp_path, clock, make_key, engine):
    _k, secret = await make_key("pro")
    gone = parse(config_text(tmp_path / "missing" / "nothing.db"))
    broken = create_engine(gone.storage)
    (tmp_path / "missing").rmdir()  # create_engine made the folder: without it SQLite cannot open the file
    _app, raw, client = await client_for(broken, gone, clock, secret)
    try:
        ready = await client.get("/readyz")
        assert ready.status == 503 and ready.json()["checks"]["database"]["ok"] is False
        data = await client.get("/v1/findings")
        assert data.status == 503 and data.json()["error"] == "unavailable"
        assert "sqlite" not in data.text.lower() and "select" not in data.text.lower()
    finally:
        await raw.close()
        await broken.dispose()


async def test_metrics_count_requests_and_refusals(api, make_key):
    _k, admin = await make_key("pro", ("admin",))
    await api.get("/v1/findings")  # a 401
    text = (await api.with_key(admin).get("/metrics")).text
    assert 'kamiyo_api_requests_total{method="GET",route="/v1/findings",status="401"}' in text
    assert 'kamiyo_api_rejections_total{reason="unauthorized"}' in text
    assert "kamiyo_chain_up" in text or "kamiyo_blocks_committed" in text  # the daemon's registry


async def test_routing_errors_and_large_bodies_have_the_error_shape(pro):
    missing = await pro.get("/v2/findings")
    assert missing.status == 404 and missing.json()["error"] == "not_found"
    wrong = await pro.request("PUT", "/v1/findings")
    assert wrong.status == 405 and wrong.json()["error"] == "method_not_allowed" and "GET" in wrong.headers["Allow"]
    huge = await pro.post("/v1/watchlists", data=b"[" + b"1," * 200_000 + b"1]",
                          headers={"Content-Type": "application/json"})
    assert huge.status == 413 and huge.json()["error"] == "too_large"


async def test_an_undeclared_route_needs_admin_and_a_crash_is_one_line(engine, settings, clock, make_key):
    async def boom(_request):
        raise ZeroDivisionError("secret internals")

    app = create_app(engine, settings, read_only=False, clock=clock)
    app.router.add_get("/v1/boom", boom)  # no Route, so no declared scope
    raw = TestClient(TestServer(app))
    await raw.start_server()
    try:
        _k, read = await make_key("pro", ("read",))
        _k, admin = await make_key("pro", ("admin",))
        async with raw.get("/v1/boom", headers={"X-API-Key": read}) as refused:
            assert refused.status == 403
        async with raw.get("/v1/boom", headers={"X-API-Key": admin}) as crashed:
            body = await crashed.json()
            assert crashed.status == 500
            assert body == {"error": "internal", "detail": "the server could not answer this request"}
    finally:
        await raw.close()


async def test_cors_for_configured_origins_only(engine, seeded, clock, make_key):
    settings = parse(config_text(seeded.db).replace('default_tier = "pro"\n',
                                                    'default_tier = "pro"\ncors_origins = ["https://app.example"]\n'))
    _k, secret = await make_key("pro")
    _app, raw, client = await client_for(engine, settings, clock, secret)
    try:
        allowed = await client.get("/v1/findings?limit=1", headers={"Origin": "https://app.example"})
        assert allowed.headers["Access-Control-Allow-Origin"] == "https://app.example"
        other = await client.get("/v1/findings?limit=1", headers={"Origin": "https://evil.example"})
        assert "Access-Control-Allow-Origin" not in other.headers
        async with raw.options("/v1/findings", headers={"Origin": "https://app.example",
                                                        "Access-Control-Request-Method": "GET"}) as preflight:
            assert preflight.status == 204
            assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
        refused = await client.get("/v1/findings", headers={"Origin": "https://app.example", "Authorization": ""})
        assert refused.status == 401 and refused.headers["Access-Control-Allow-Origin"] == "https://app.example"
    finally:
        await raw.close()
