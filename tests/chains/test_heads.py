"""Head subscriptions against real WebSocket peers: anvil nodes (directly and through a TCP proxy that cuts, refuses
and stalls connections on cue) and a scripted aiohttp WebSocket server for the misbehaviour anvil never shows.
Backoff is measured through an injected sleep, never waited for."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from structlog.testing import capture_logs

from kamiyo.chains.heads import HeadSignal, WsHeadSubscription
from kamiyo.chains.rpc import redact_url
from kamiyo.errors import InputError
from tests.support.anvil import anvil, require_anvil, wait_for
from tests.support.tcp_proxy import TcpProxy

SUB = "0xfeed"
WAIT = 30.0  # generous: a loaded machine must not fail a test, a hang still does


@contextlib.asynccontextmanager
async def running(subscription: WsHeadSubscription) -> AsyncIterator[asyncio.Queue]:
    """The subscription running in a task, its heads in a queue; stopped by its stop event on exit."""
    heads: asyncio.Queue[int] = asyncio.Queue()
    stop = asyncio.Event()
    task = asyncio.create_task(subscription.run(heads.put_nowait, stop))
    try:
        yield heads
    finally:
        stop.set()
        await asyncio.wait_for(task, WAIT)  # also raises whatever ended the task early


async def next_head(heads: asyncio.Queue) -> int:
    return await asyncio.wait_for(heads.get(), WAIT)


def heads_events(logs: list[dict]) -> list[tuple[str, str, int]]:
    return [(e["event"], e["endpoint"], e["attempt"]) for e in logs
            if e["event"] in ("heads.connected", "heads.reconnected", "heads.disconnected")]


@pytest.fixture
def refused_ws():
    """A port bound but not listening: connecting is refused, and no other test can take the port meanwhile."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    yield f"ws://127.0.0.1:{sock.getsockname()[1]}/key/s3cret"
    sock.close()


# --- against anvil ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def node():
    require_anvil()
    with anvil(4343) as running_node:
        running_node.rpc("anvil_mine", ["0x3"])
        yield running_node


async def mine(node, blocks: int = 1) -> int:
    """Mine blocks one by one (one newHeads each) off the event loop; returns the new head number."""
    for _ in range(blocks):
        await asyncio.to_thread(node.rpc, "evm_mine")
    return int(await asyncio.to_thread(node.rpc, "eth_blockNumber"), 16)


async def test_the_current_head_then_every_new_head_in_order(node):
    subscription = WsHeadSubscription([node.ws])
    async with running(subscription) as heads:
        first = await next_head(heads)
        assert first == int(await asyncio.to_thread(node.rpc, "eth_blockNumber"), 16) >= 3
        last = await mine(node, 5)
        got = [await next_head(heads) for _ in range(5)]
    assert got == list(range(first + 1, first + 6)) and last == first + 5
    assert subscription.drops == subscription.reconnects == subscription.malformed == 0


async def test_a_dead_first_url_is_rotated_away_from(node, refused_ws):
    subscription = WsHeadSubscription([refused_ws, node.ws], backoff_base=0.01)
    with capture_logs() as logs:
        async with running(subscription) as heads:
            first = await next_head(heads)
            await mine(node)
            assert await next_head(heads) == first + 1
    assert heads_events(logs) == [("heads.disconnected", redact_url(refused_ws), 1),
                                  ("heads.connected", redact_url(node.ws), 2)]
    assert "s3cret" not in repr(logs)
    assert subscription.drops == 1 and subscription.reconnects == 0
    assert subscription.endpoint == redact_url(node.ws)


async def test_a_severed_connection_is_reported_and_heads_continue_after_it(node):
    async with TcpProxy(node.port) as proxy:
        subscription = WsHeadSubscription([proxy.ws], backoff_base=0.02, backoff_cap=0.2)
        with capture_logs() as logs:
            async with running(subscription) as heads:
                first = await next_head(heads)
                await mine(node)
                before = await next_head(heads)
                assert before == first + 1
                proxy.refusing = True
                assert proxy.sever() == 1

                async def tried_again():
                    return subscription.drops >= 3  # the drop and two refused reconnects

                await wait_for(tried_again, timeout=WAIT)
                await mine(node, 2)  # produced while the subscription was down
                proxy.refusing = False
                assert await next_head(heads) == before + 2  # the reconnect report: the follower looks now
                await mine(node)
                assert await next_head(heads) == before + 3
    events = heads_events(logs)
    drops = [e for e in events if e[0] == "heads.disconnected"]
    assert events[0] == ("heads.connected", redact_url(proxy.ws), 1)
    assert [attempt for _, _, attempt in drops] == list(range(1, len(drops) + 1))
    assert events[-1] == ("heads.reconnected", redact_url(proxy.ws), len(drops) + 1)
    assert subscription.reconnects == 1 and subscription.drops == len(drops) >= 3
    assert proxy.accepted == 2


async def test_a_stalled_connection_is_found_by_the_heartbeat(node):
    async with TcpProxy(node.port) as proxy:
        subscription = WsHeadSubscription([proxy.ws], heartbeat=0.5, idle_timeout=None, backoff_base=0.01)
        with capture_logs() as logs:
            async with running(subscription) as heads:
                first = await next_head(heads)
                assert proxy.stall() == 1  # the socket stays open, nothing gets through: only a ping can tell

                async def reconnected():
                    return subscription.reconnects >= 1

                await wait_for(reconnected, timeout=WAIT)
                assert await next_head(heads) == first
                await mine(node)
                assert await next_head(heads) == first + 1
    (drop,) = [e for e in logs if e["event"] == "heads.disconnected"]
    assert "ServerTimeoutError" in drop["error"] and "PONG" in drop["error"]


# --- against a scripted WebSocket server -------------------------------------------------------------------------

Script = Callable[[web.WebSocketResponse], Awaitable[None]]


class ScriptedNode:
    """Connection n runs scripts[n] (the last one for every connection after); `requests` records what arrived."""

    def __init__(self, scripts: list[Script], autoping: bool = True, reject: int | None = None) -> None:
        self.scripts = scripts
        self.autoping = autoping
        self.reject = reject  # an HTTP status to answer the upgrade with instead
        self.connections = 0
        self.requests: list[dict] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self.reject is not None:
            self.connections += 1
            return web.Response(status=self.reject, text=f"rejected {request.path}")
        ws = web.WebSocketResponse(autoping=self.autoping)
        await ws.prepare(request)
        script = self.scripts[min(self.connections, len(self.scripts) - 1)]
        self.connections += 1
        with contextlib.suppress(ConnectionError):
            await script(ws)
        await ws.close()
        return ws

    async def ask(self, ws: web.WebSocketResponse) -> dict:
        request = await ws.receive_json()
        self.requests.append(request)
        return request


@pytest.fixture
async def start_node():
    servers: list[TestServer] = []

    async def start(scripts: list[Script], autoping: bool = True, reject: int | None = None) -> ScriptedNode:
        scripted = ScriptedNode(scripts, autoping, reject)
        app = web.Application()
        app.router.add_get("/{tail:.*}", scripted.handle)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        scripted.url = f"ws://127.0.0.1:{server.port}/v3/secret-key"
        servers.append(server)
        return scripted

    yield start
    for server in servers:
        await server.close()


def note(number, subscription: str = SUB) -> dict:
    return {"jsonrpc": "2.0", "method": "eth_subscription",
            "params": {"subscription": subscription, "result": {"number": number, "hash": "0x" + "ab" * 32}}}


def reply(request: dict, result) -> dict:
    return {"jsonrpc": "2.0", "id": request["id"], "result": result}


async def subscribe(node: ScriptedNode, ws: web.WebSocketResponse, head: str | None = "0x10") -> None:
    """Confirm the subscription, then answer eth_blockNumber with `head` (None: leave it unanswered)."""
    await ws.send_json(reply(await node.ask(ws), SUB))
    asked = await node.ask(ws)
    if head is not None:
        await ws.send_json(reply(asked, head))


async def listen(ws: web.WebSocketResponse) -> None:
    """Read until the client goes away, answering nothing."""
    async for _ in ws:
        pass


async def hang_up(_ws: web.WebSocketResponse) -> None:
    """Close right after the upgrade."""


class RecordedSleep:
    """An injected backoff sleep: records each delay and sets `stop` after `limit` of them."""

    def __init__(self, stop: asyncio.Event, limit: int) -> None:
        self.stop, self.limit = stop, limit
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        if len(self.delays) >= self.limit:
            self.stop.set()
            await asyncio.Event().wait()  # until stop cancels the run: no attempt after the last counted one
        await asyncio.sleep(0)


async def run_until_sleeps(subscription_args: dict, url: str, limit: int) -> tuple[WsHeadSubscription, list, list]:
    """Run a subscription until it has backed off `limit` times; returns it, the delays and the heads it reported."""
    stop = asyncio.Event()
    sleep = RecordedSleep(stop, limit)
    subscription = WsHeadSubscription([url], sleep=sleep, **subscription_args)
    heads: list[int] = []
    await asyncio.wait_for(subscription.run(heads.append, stop), WAIT)
    return subscription, sleep.delays, heads


async def test_malformed_messages_are_skipped_and_the_connection_kept(start_node):
    async def script(ws):
        await subscribe(scripted, ws)
        await ws.send_str("not json {")
        await ws.send_bytes(b"\xff\xfe")
        await ws.send_json([1, 2])
        await ws.send_json(note("zz"))
        await ws.send_json(note(None))
        await ws.send_json({"jsonrpc": "2.0", "method": "eth_subscription", "params": {"subscription": SUB}})
        await ws.send_json(note("0x99", subscription="0xother"))
        await ws.send_json({"jsonrpc": "2.0", "id": 7, "result": "0x1"})
        await ws.send_json(note("0x11"))
        await listen(ws)

    scripted = await start_node([script])
    subscription = WsHeadSubscription([scripted.url])
    with capture_logs() as logs:
        async with running(subscription) as heads:
            assert [await next_head(heads), await next_head(heads)] == [0x10, 0x11]
    assert subscription.malformed == 8 and subscription.drops == 0
    skipped = [e for e in logs if e["event"] == "heads.malformed"]
    assert len(skipped) == 8 and all(e["endpoint"] == redact_url(scripted.url) for e in skipped)
    assert [r["method"] for r in scripted.requests] == ["eth_subscribe", "eth_blockNumber"]
    assert scripted.requests[0]["params"] == ["newHeads"]


@pytest.mark.parametrize(("rng", "factor"), [(1.0, 1.0), (0.0, 0.5)])
async def test_a_node_that_hangs_up_is_retried_with_growing_jittered_backoff(start_node, rng, factor):
    scripted = await start_node([hang_up])
    with capture_logs() as logs:
        subscription, delays, heads = await run_until_sleeps(
            {"backoff_base": 0.1, "backoff_cap": 0.5, "rng": lambda: rng}, scripted.url, limit=6)
    assert delays == pytest.approx([d * factor for d in (0.1, 0.2, 0.4, 0.5, 0.5, 0.5)])
    drops = [e for e in logs if e["event"] == "heads.disconnected"]
    assert [e["attempt"] for e in drops] == [1, 2, 3, 4, 5, 6]
    assert all("secret-key" not in e["error"] for e in drops)
    assert subscription.drops == 6 and scripted.connections == 6 and heads == []


async def test_a_rejected_upgrade_is_retried_and_logged_without_the_key(start_node):
    scripted = await start_node([hang_up], reject=401)
    with capture_logs() as logs:
        subscription, delays, _ = await run_until_sleeps({}, scripted.url, limit=2)
    errors = [e["error"] for e in logs if e["event"] == "heads.disconnected"]
    assert len(errors) == 2 and all("WSServerHandshakeError" in e and "401" in e for e in errors)
    assert "secret-key" not in repr(logs) and scripted.connections == 2


async def test_a_node_that_never_answers_the_subscribe_is_left(start_node):
    async def mute(ws):
        async for msg in ws:
            scripted.requests.append(json.loads(msg.data))

    scripted = await start_node([mute])
    with capture_logs() as logs:
        # long enough that a loaded machine still connects within it (the connect shares the timeout)
        subscription, delays, _ = await run_until_sleeps({"answer_timeout": 1.0}, scripted.url, limit=2)
    errors = [e["error"] for e in logs if e["event"] == "heads.disconnected"]
    assert errors == ["no answer to eth_subscribe"] * 2
    assert [r["method"] for r in scripted.requests] == ["eth_subscribe"] * 2
    assert subscription.reconnects == 0  # never subscribed, so never (re)connected


async def test_a_refused_subscribe_is_retried(start_node):
    async def refuse(ws):
        request = await scripted.ask(ws)
        await ws.send_json({"jsonrpc": "2.0", "id": request["id"], "error": {"code": -32601, "message": "nope"}})
        await listen(ws)

    scripted = await start_node([refuse])
    with capture_logs() as logs:
        await run_until_sleeps({}, scripted.url, limit=2)
    errors = [e["error"] for e in logs if e["event"] == "heads.disconnected"]
    assert len(errors) == 2 and all("eth_subscribe refused" in e and "-32601" in e for e in errors)


async def test_the_backoff_starts_over_after_a_connection_that_delivered_heads(start_node):
    async def healthy_then_gone(ws):
        await subscribe(scripted, ws)
        await ws.send_json(note("0x11"))

    scripted = await start_node([healthy_then_gone, hang_up, hang_up, healthy_then_gone, hang_up])
    with capture_logs() as logs:
        subscription, delays, heads = await run_until_sleeps({"backoff_base": 0.1, "rng": lambda: 1.0},
                                                             scripted.url, limit=5)
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.1, 0.2])
    assert heads == [0x10, 0x11, 0x10, 0x11]  # each connection first reports the head, then what it notified
    assert heads_events(logs) == [
        ("heads.connected", redact_url(scripted.url), 1),
        ("heads.disconnected", redact_url(scripted.url), 1),
        ("heads.disconnected", redact_url(scripted.url), 2),
        ("heads.disconnected", redact_url(scripted.url), 3),
        ("heads.reconnected", redact_url(scripted.url), 4),
        ("heads.disconnected", redact_url(scripted.url), 1),
        ("heads.disconnected", redact_url(scripted.url), 2),
    ]
    assert subscription.reconnects == 1


async def test_no_head_within_the_idle_timeout_drops_a_connection_that_still_pongs(start_node):
    async def quiet(ws):
        await subscribe(scripted, ws)
        await listen(ws)  # the server's autoping answers every ping: the socket is alive, the subscription not

    scripted = await start_node([quiet])
    with capture_logs() as logs:
        _, _, heads = await run_until_sleeps({"heartbeat": 0.2, "idle_timeout": 0.6}, scripted.url, limit=1)
    assert heads == [0x10]
    (drop,) = [e for e in logs if e["event"] == "heads.disconnected"]
    assert drop["error"] == "no new head within idle_timeout 0.6s"


async def test_a_missing_pong_drops_the_connection(start_node):
    async def deaf(ws):
        await subscribe(scripted, ws)
        await listen(ws)  # autoping off: pings arrive and are never answered

    scripted = await start_node([deaf], autoping=False)
    with capture_logs() as logs:
        _, _, heads = await run_until_sleeps({"heartbeat": 0.1, "idle_timeout": None}, scripted.url, limit=1)
    assert heads == [0x10]
    (drop,) = [e for e in logs if e["event"] == "heads.disconnected"]
    assert "ServerTimeoutError" in drop["error"]


async def test_the_head_report_must_come_even_while_notifications_do(start_node):
    async def unanswered(ws):
        await subscribe(scripted, ws, head=None)
        await ws.send_json(note("0x11"))
        await listen(ws)

    scripted = await start_node([unanswered])
    with capture_logs() as logs:
        _, _, heads = await run_until_sleeps({"answer_timeout": 0.3}, scripted.url, limit=1)
    assert heads == [0x11]
    assert [e["error"] for e in logs if e["event"] == "heads.disconnected"] == ["no answer to eth_blockNumber"]


async def test_stop_and_cancellation_end_it_and_a_borrowed_session_stays_open(start_node):
    async def steady(ws):
        await subscribe(scripted, ws)
        await listen(ws)

    scripted = await start_node([steady])
    async with aiohttp.ClientSession() as session:
        heads = asyncio.Queue()
        stop = asyncio.Event()
        task = asyncio.create_task(WsHeadSubscription([scripted.url], session=session).run(heads.put_nowait, stop))
        assert await next_head(heads) == 0x10
        stop.set()
        await asyncio.wait_for(task, WAIT)
        assert not session.closed

    owned = WsHeadSubscription([scripted.url])
    heads = asyncio.Queue()
    task = asyncio.create_task(owned.run(heads.put_nowait))
    assert await next_head(heads) == 0x10
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, WAIT)
    assert scripted.connections == 2


async def test_what_on_head_raises_ends_run(start_node):
    async def steady(ws):
        await subscribe(scripted, ws)
        await listen(ws)

    def broken(_number: int) -> None:
        raise LookupError("a bug in the caller")

    scripted = await start_node([steady])
    subscription = WsHeadSubscription([scripted.url])
    with pytest.raises(LookupError):
        await asyncio.wait_for(subscription.run(broken, asyncio.Event()), WAIT)
    assert subscription.drops == 0  # a caller's bug is not a network drop to retry


def test_settings_are_checked():
    with pytest.raises(InputError):
        WsHeadSubscription([])
    with pytest.raises(InputError, match="idle_timeout"):
        WsHeadSubscription(["ws://127.0.0.1:1"], idle_timeout=0)


# --- HeadSignal -------------------------------------------------------------------------------------------------


async def test_a_head_reported_while_the_follower_is_busy_is_not_lost():
    signal = HeadSignal()
    signal.notify(5)
    signal.notify(6)
    assert await signal.wait(timeout=WAIT) is True and signal.latest == 6
    assert await signal.wait(timeout=0.01) is False  # taken by the first wait


async def test_a_waiting_follower_is_woken_by_a_head_or_by_stop():
    signal, stop = HeadSignal(), asyncio.Event()
    waiter = asyncio.create_task(signal.wait(stop=stop))
    await asyncio.sleep(0)
    signal.notify(9)
    assert await asyncio.wait_for(waiter, WAIT) is True and signal.latest == 9
    waiter = asyncio.create_task(signal.wait(stop=stop))
    await asyncio.sleep(0)
    stop.set()
    assert await asyncio.wait_for(waiter, WAIT) is False
