"""`/v1/stream` as a unit: the hub tailing a real SQLite outbox, subscribers over real WebSockets, resume by cursor,
filters, and a too-slow subscriber told where to resume."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web

from kamiyo.api import stream
from kamiyo.config import StorageSettings
from kamiyo.findings import Finding, FindingType, Severity, fingerprint
from kamiyo.storage.engine import create_engine
from kamiyo.storage.findings import record_finding
from kamiyo.storage.migrations import upgrade


def finding(n: int, severity=Severity.HIGH, chain: int = 1, kind: str = "reentrancy") -> Finding:
    return Finding(kind, severity, FindingType.EXPLOIT, chain, "0x" + f"{n:040x}", n, "0x" + f"{n:064x}",
                   fingerprint(kind, n), {"summary": str(n)})


@pytest.fixture
async def served(tmp_path):
    engine = create_engine(StorageSettings(url=f"sqlite:///{tmp_path / 'k.db'}"))
    await upgrade(engine)
    wake = asyncio.Event()
    hub = stream.Hub(engine, wake)

    async def handler(request: web.Request):
        try:
            flt, cursor = stream.parse_filter(request.query, None)
        except ValueError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from exc
        return await stream.serve_subscriber(request, hub, engine, flt, cursor)

    app = web.Application()
    app.router.add_get("/v1/stream", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    await hub.start()
    url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/v1/stream"
    async with aiohttp.ClientSession() as session:
        yield engine, wake, session, url
    await hub.stop()
    await runner.cleanup()
    await engine.dispose()


async def record(engine, wake, *found: Finding) -> None:
    async with engine.begin() as conn:
        for f in found:
            await record_finding(conn, f)
    wake.set()


async def frames_until(ws, count: int, timeout: float = 5.0) -> list[dict]:
    items: list[dict] = []
    async with asyncio.timeout(timeout):
        while len(items) < count:
            frame = await ws.receive_json()
            assert frame["type"] == "events", frame
            items += frame["events"]
            assert frame["cursor"] == items[-1]["cursor"] or frame["cursor"] >= items[-1]["cursor"]
    return items


async def test_findings_arrive_as_they_commit_and_a_reconnect_resumes_without_gap_or_repeat(served):
    engine, wake, session, url = served
    async with session.ws_connect(url) as ws:
        await record(engine, wake, finding(1), finding(2))
        first = await frames_until(ws, 2)
    assert [e["finding"]["evidence"]["summary"] for e in first] == ["1", "2"]
    await record(engine, wake, finding(3), finding(4))  # while nobody listens
    async with session.ws_connect(f"{url}?cursor={first[-1]['cursor']}") as ws:
        await record(engine, wake, finding(5))
        rest = await frames_until(ws, 3)
    assert [e["finding"]["evidence"]["summary"] for e in rest] == ["3", "4", "5"]
    assert all(e["event"] == "finding.created" for e in first + rest)


async def test_filters_by_chain_kind_and_severity(served):
    engine, wake, session, url = served
    async with session.ws_connect(f"{url}?chain=56&min_severity=high&kind=reentrancy") as ws:
        await record(engine, wake, finding(1, chain=1), finding(2, chain=56, severity=Severity.LOW),
                     finding(3, chain=56, kind="flash-loan"), finding(4, chain=56))
        [only] = await frames_until(ws, 1)
    assert only["finding"]["evidence"]["summary"] == "4"


async def test_a_bad_parameter_is_a_400_naming_it(served):
    _engine, _wake, session, url = served
    for query, says in (("cursor=soon", "cursor"), ("min_severity=loud", "min_severity"), ("watchlists=all", "mine")):
        async with session.get(f"{url}?{query}") as response:
            assert response.status == 400 and says in await response.text()


async def test_a_subscriber_too_slow_for_its_queue_is_told_where_to_resume(served, monkeypatch):
    engine, wake, session, url = served
    monkeypatch.setattr(stream, "QUEUE_LIMIT", 3)
    async with session.ws_connect(url) as ws:
        await asyncio.sleep(0.1)
        await record(engine, wake, *(finding(n) for n in range(1, 30)))
        seen, told = [], None
        async with asyncio.timeout(5):
            while True:
                message = await ws.receive()
                if message.type != aiohttp.WSMsgType.TEXT:
                    break
                frame = message.json()
                if frame["type"] == "error":
                    told = frame
                else:
                    seen += frame["events"]
    assert told is not None and told["error"] == "too_slow"
    assert told["cursor"] == seen[-1]["cursor"]  # resume exactly after what was sent


async def test_the_routed_stream_needs_a_real_time_key_with_read(engine, settings, clock, make_key):
    from aiohttp.test_utils import TestClient, TestServer

    from kamiyo.api.app import create_app

    app = create_app(engine, settings, read_only=False, clock=clock)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        _, pro = await make_key("pro", ("read",))
        _, free = await make_key("free", ("read",))
        _, writer = await make_key("pro", ("watchlists",))
        assert (await client.get("/v1/stream")).status == 401
        assert (await client.get("/v1/stream", headers={"X-API-Key": writer})).status == 403
        refused = await client.get("/v1/stream", headers={"X-API-Key": free})
        assert refused.status == 403 and "real time" in (await refused.json())["detail"]
        plain = await client.get("/v1/stream", headers={"X-API-Key": pro})
        assert plain.status == 426 and (await plain.json())["error"] == "upgrade_required"
        async with client.ws_connect("/v1/stream?cursor=0", headers={"X-API-Key": pro}) as ws:
            frame = await asyncio.wait_for(ws.receive_json(), 5)  # the seeded findings, replayed from the start
        assert frame["type"] == "events" and frame["events"] and frame["cursor"] >= frame["events"][-1]["cursor"]
    finally:
        await client.close()
