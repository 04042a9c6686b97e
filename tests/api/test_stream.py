"""`/v1/stream` as a unit: the hub tailing a real SQLite outbox, subscribers over real WebSockets, resume by cursor
(also while the hub fans out, and ahead of the hub), filters and the frames they share, and a too-slow subscriber
sent its backlog and told where to resume while the others keep up."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import replace

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import text

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
        if request.headers.get("X-Test-Send-Buffer"):  # the network edge: a client that reads slowly is felt soon
            request.transport.get_extra_info("socket").setsockopt(
                socket.SOL_SOCKET, socket.SO_SNDBUF, int(request.headers["X-Test-Send-Buffer"]))
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
        yield engine, wake, session, url, hub
    await hub.stop()
    await runner.cleanup()
    await engine.dispose()


async def record(engine, wake, *found: Finding) -> None:
    """Commit `found`; `wake` None is a commit by another process (`kamiyo api` beside `kamiyo run`): the hub only
    sees it when it polls."""
    async with engine.begin() as conn:
        for f in found:
            await record_finding(conn, f)
    if wake is not None:
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
    engine, wake, session, url, _hub = served
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


async def test_without_a_cursor_a_subscriber_is_sent_only_what_commits_after_it_joined(served):
    engine, _wake, session, url, _hub = served
    await record(engine, None, finding(1), finding(2))  # while nobody listens: the hub polls at the idle pace
    async with session.ws_connect(url) as ws:
        await asyncio.sleep(0.05)
        await record(engine, None, finding(3))
        first = await frames_until(ws, 1)
    assert [e["finding"]["evidence"]["summary"] for e in first] == ["3"]


async def test_a_cursor_ahead_of_the_hub_is_not_sent_again_what_it_has(served):
    """A client resuming at a cursor the hub has not read up to yet (given by another API process, say): the
    first batch the hub reads overlaps it, and only what is after the cursor is sent."""
    engine, _wake, session, url, hub = served
    async with session.ws_connect(url) as before:
        await asyncio.sleep(0.05)
        await hub.stop()  # the hub falls behind the table
        await record(engine, None, *(finding(n) for n in range(1, 6)))
        async with engine.connect() as conn:
            third = (await conn.execute(text("SELECT id FROM outbox ORDER BY id LIMIT 1 OFFSET 2"))).scalar()
        async with session.ws_connect(f"{url}?cursor={third}") as ahead:
            await asyncio.sleep(0.05)
            await hub.start()
            resumed, everything = await frames_until(ahead, 2), await frames_until(before, 5)
    assert [e["finding"]["evidence"]["summary"] for e in resumed] == ["4", "5"]
    assert [e["finding"]["evidence"]["summary"] for e in everything] == ["1", "2", "3", "4", "5"]


async def test_filters_by_chain_kind_and_severity(served):
    engine, wake, session, url, _hub = served
    async with session.ws_connect(f"{url}?chain=56&min_severity=high&kind=reentrancy") as ws:
        await record(engine, wake, finding(1, chain=1), finding(2, chain=56, severity=Severity.LOW),
                     finding(3, chain=56, kind="flash-loan"), finding(4, chain=56))
        [only] = await frames_until(ws, 1)
    assert only["finding"]["evidence"]["summary"] == "4"


async def test_events_committed_together_share_a_frame_per_filter_and_each_subscriber_gets_its_own(served):
    engine, wake, session, url, _hub = served
    queries = ["", "", "?chain=56", "?chain=56", "?min_severity=critical", "?kind=flash-loan&chain=1"]
    sockets = [await session.ws_connect(url + q) for q in queries]
    try:
        await asyncio.sleep(0.05)
        await record(engine, wake, finding(1, chain=1), finding(2, chain=56, severity=Severity.LOW),
                     finding(3, chain=1, kind="flash-loan"), finding(4, chain=56, severity=Severity.CRITICAL))
        frames = [await asyncio.wait_for(ws.receive_json(), 5) for ws in sockets]
    finally:
        for ws in sockets:
            await ws.close()
    got = [[e["finding"]["evidence"]["summary"] for e in frame["events"]] for frame in frames]
    assert got == [["1", "2", "3", "4"], ["1", "2", "3", "4"], ["2", "4"], ["2", "4"], ["4"], ["3"]]
    assert {frame["cursor"] for frame in frames} == {frames[0]["events"][-1]["cursor"]}  # the last event looked at


async def test_a_resume_during_commits_gets_every_event_once_and_in_order(served, monkeypatch):
    engine, wake, session, url, _hub = served
    monkeypatch.setattr(stream, "REPLAY_PAGE", 20)  # a replay of many pages: the hub fans out meanwhile
    await record(engine, wake, *(finding(n) for n in range(1, 1_201)))
    await asyncio.sleep(0.5)  # the hub has read them: they are replayed from the table
    total = 1_500

    async def commit_meanwhile() -> None:  # before, during and after the replay
        for n in range(1_201, total + 1, 5):
            await record(engine, wake, *(finding(k) for k in range(n, n + 5)))
            await asyncio.sleep(0.005)

    writer = asyncio.create_task(commit_meanwhile())
    try:
        async with session.ws_connect(f"{url}?cursor=0") as ws:
            items = await frames_until(ws, total, timeout=20)
    finally:
        await writer
    assert [int(e["finding"]["evidence"]["summary"]) for e in items] == list(range(1, total + 1))


async def test_a_bad_parameter_is_a_400_naming_it(served):
    _engine, _wake, session, url, _hub = served
    for query, says in (("cursor=soon", "cursor"), ("min_severity=loud", "min_severity"), ("watchlists=all", "mine")):
        async with session.get(f"{url}?{query}") as response:
            assert response.status == 400 and says in await response.text()


def small_receive_buffer(addr_info) -> socket.socket:
    """A client socket with a small kernel receive buffer (and, by the header, a server socket with a small send
    buffer), so that a reader that stops reading is felt by the server within kilobytes, not megabytes."""
    sock = socket.socket(addr_info[0], addr_info[1], addr_info[2])
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    return sock


async def test_a_subscriber_too_slow_for_its_backlog_is_sent_it_then_told_where_to_resume(served, monkeypatch):
    engine, wake, session, url, _hub = served
    monkeypatch.setattr(stream, "QUEUE_LIMIT", 200)
    total, bulk = 600, {"summary": "x" * 2_000}  # ~1.3 MB of frames, several times what the buffers hold
    slow_session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(socket_factory=small_receive_buffer))
    async with (slow_session, slow_session.ws_connect(url, headers={"X-Test-Send-Buffer": "4096"}) as slow,
                session.ws_connect(url) as fast):
        await asyncio.sleep(0.1)
        for start in range(1, total + 1, 20):  # while `slow` reads nothing
            await record(engine, wake, *(replace(finding(n), evidence=bulk | {"n": n})
                                         for n in range(start, start + 20)))
            await asyncio.sleep(0.02)
        kept_up = await frames_until(fast, total, timeout=20)  # the hub never waited on the slow one
        seen, told = [], None
        async with asyncio.timeout(20):
            while True:
                message = await slow.receive()
                if message.type != aiohttp.WSMsgType.TEXT:
                    break
                frame = message.json()
                if frame["type"] == "error":
                    told = frame
                else:
                    seen += frame["events"]
    assert [e["finding"]["evidence"]["n"] for e in kept_up] == list(range(1, total + 1))
    assert told is not None and told["error"] == "too_slow" and slow.close_code == 1013
    assert 0 < len(seen) < total and told["cursor"] == seen[-1]["cursor"]  # resume exactly after what was sent
    assert [e["cursor"] for e in seen] == [e["cursor"] for e in kept_up[:len(seen)]]  # no gap before it


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
