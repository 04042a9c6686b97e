"""The JSON-RPC client against real HTTP: each test scripts a fake node served by aiohttp on a free loopback port.
Time is a fake clock whose sleep advances it, so budgets, backoff and Retry-After are measured, never waited for."""

from __future__ import annotations

import asyncio
import json
import math
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from structlog.testing import capture_logs

from kamiyo.chains.rpc import (
    Endpoint,
    RpcClient,
    RpcHttpError,
    RpcMalformedResponse,
    RpcRateLimited,
    RpcResponseError,
    RpcServerError,
    RpcTimeout,
    RpcTransportError,
    TokenBucket,
    classify,
    redact_url,
)

Step = Callable[[Any], Awaitable[web.Response]]
RESULTS = {"eth_chainId": "0x1", "eth_blockNumber": "0x10"}


def reply(request: dict) -> dict:
    """A node's honest answer: known methods from RESULTS, anything else echoes its params."""
    return {"jsonrpc": "2.0", "id": request["id"], "result": RESULTS.get(request["method"], request["params"])}


async def answer(body: Any) -> web.Response:
    if isinstance(body, list):  # answer batches backwards: the client must match by id, not position
        return web.json_response([reply(item) for item in reversed(body)])
    return web.json_response(reply(body))


def status(code: int, **headers: str) -> Step:
    async def step(_body: Any) -> web.Response:
        return web.Response(status=code, text="no", headers=headers)

    return step


def rpc_error(code: int, message: str, data: Any = None) -> Step:
    async def step(body: Any) -> web.Response:
        return web.json_response({"jsonrpc": "2.0", "id": body["id"], "error": {"code": code, "message": message,
                                                                               "data": data}})

    return step


def raw(text: str) -> Step:
    async def step(_body: Any) -> web.Response:
        return web.Response(text=text, content_type="application/json")

    return step


class FakeNode:
    """Each request takes the next step of `script`, then `default` forever; `bodies` records what arrived."""

    def __init__(self) -> None:
        self.script: list[Step] = []
        self.default: Step = answer
        self.bodies: list[Any] = []
        self.release = asyncio.Event()  # lets hanging handlers finish at teardown
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.bodies.append(body)
        step = self.script.pop(0) if self.script else self.default
        return await step(body)

    async def hang(self, body: Any) -> web.Response:
        await self.release.wait()
        return await answer(body)


@pytest.fixture
async def start_node():
    nodes: list[tuple[FakeNode, TestServer]] = []

    async def start(path: str = "/") -> FakeNode:
        node = FakeNode()
        app = web.Application()
        app.router.add_post("/{tail:.*}", node.handle)
        server = TestServer(app, host="127.0.0.1")  # port None: the OS picks a free one
        await server.start_server()
        node.url = f"http://127.0.0.1:{server.port}{path}"
        nodes.append((node, server))
        return node

    yield start
    for node, server in nodes:
        node.release.set()
        await server.close()


@pytest.fixture
def refused_url():
    """A port bound but not listening: connecting is refused, and no other test can take the port meanwhile."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/"
    sock.close()


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        """Concurrent sleepers overlap: the clock ends at the latest wake-up, not at the sum."""
        self.sleeps.append(seconds)
        wake = self.now + seconds
        await asyncio.sleep(0)
        self.now = max(self.now, wake)


def rpc_endpoint_scrub(url: str, text: str) -> str:
    return Endpoint(url, requests_per_second=1, max_concurrency=1, timeout=1).scrub(text)


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


def client(urls: list[str], fake_time: FakeTime, **kwargs: Any) -> RpcClient:
    options = {"requests_per_second": math.inf, "timeout": 2.0, "rng": lambda: 1.0}  # rng 1.0: backoff without jitter
    options.update(kwargs)
    return RpcClient(urls, clock=fake_time.clock, sleep=fake_time.sleep, **options)


# -- classify, case by case -------------------------------------------------------------------------------------


def _body(doc: Any) -> bytes:
    return json.dumps(doc).encode()


CLASSIFY_CASES = [
    # (name, classify kwargs, expected type or result list, retryable)
    ("result", dict(status=200, body=_body({"jsonrpc": "2.0", "id": 7, "result": "0x1"})), ["0x1"], None),
    ("null result", dict(status=200, body=_body({"id": 7, "result": None})), [None], None),
    ("refused", dict(exc=aiohttp.ClientConnectionError("refused")), RpcTransportError, True),
    ("os error", dict(exc=ConnectionResetError("reset")), RpcTransportError, True),
    ("timeout", dict(exc=asyncio.TimeoutError()), RpcTimeout, True),
    ("429 seconds", dict(status=429, headers={"retry-after": "2.5"}), RpcRateLimited, True),
    ("500", dict(status=500, body=b"oops"), RpcServerError, True),
    ("503 with error body", dict(status=503, body=_body({"id": 7, "error": {"code": -32000, "message": "x"}})),
     RpcServerError, True),
    ("401 plain", dict(status=401, body=b"bad key"), RpcHttpError, True),
    ("400 with error body", dict(status=400, body=_body({"id": 7, "error": {"code": -32602, "message": "params"}})),
     RpcResponseError, False),
    ("method not found", dict(status=200, body=_body({"id": 7, "error": {"code": -32601, "message": "nope"}})),
     RpcResponseError, False),
    ("reverted", dict(status=200, body=_body({"id": 7, "error": {"code": -32000, "message": "reverted"}})),
     RpcResponseError, False),
    ("limit exceeded", dict(status=200, body=_body({"id": 7, "error": {"code": -32005, "message": "slow down"}})),
     RpcResponseError, True),
    ("internal", dict(status=200, body=_body({"id": 7, "error": {"code": -32603, "message": "upstream"}})),
     RpcResponseError, True),
    ("null-id error", dict(status=200, body=_body({"id": None, "error": {"code": -32700, "message": "parse"}})),
     RpcResponseError, False),
    ("garbage", dict(status=200, body=b"<html>gateway</html>"), RpcMalformedResponse, True),
    ("not utf-8", dict(status=200, body=b"\xff\xfe"), RpcMalformedResponse, True),
    ("wrong id", dict(status=200, body=_body({"id": 8, "result": "0x1"})), RpcMalformedResponse, True),
    ("bool id", dict(status=200, body=_body({"id": True, "result": "0x1"})), RpcMalformedResponse, True),
    ("no result", dict(status=200, body=_body({"id": 7})), RpcMalformedResponse, True),
    ("array for single", dict(status=200, body=_body([{"id": 7, "result": 1}])), RpcMalformedResponse, True),
    ("error without code", dict(status=200, body=_body({"id": 7, "error": {"message": "?"}})),
     RpcMalformedResponse, True),
]


@pytest.mark.parametrize(("name", "kwargs", "expected", "retryable"), CLASSIFY_CASES,
                         ids=[case[0] for case in CLASSIFY_CASES])
def test_classify_single(name, kwargs, expected, retryable):
    outcome = classify([7], **kwargs)
    if isinstance(expected, list):
        assert outcome == expected
        return
    verdict = outcome[0] if isinstance(outcome, list) else outcome  # the id's own error, or the whole request's
    assert type(verdict) is expected
    assert verdict.retryable is retryable


def test_classify_keeps_the_json_rpc_error_and_the_retry_after():
    [error] = classify([7], status=200, body=_body({"id": 7, "error": {"code": 3, "message": "execution reverted",
                                                                       "data": "0x08c379a0"}}))
    assert (error.code, error.rpc_message, error.data) == (3, "execution reverted", "0x08c379a0")
    assert isinstance(classify([7], exc=asyncio.TimeoutError()), TimeoutError)
    assert isinstance(classify([7], exc=ConnectionRefusedError()), ConnectionError)
    assert classify([7], status=429, headers={"Retry-After": "3"}).retry_after == 3.0
    assert classify([7], status=429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}).retry_after == 0.0
    assert classify([7], status=429, headers={"Retry-After": "soon"}).retry_after is None
    assert classify([7], status=429, headers={"Retry-After": "inf"}).retry_after is None
    assert classify([7], status=429).retry_after is None


def test_classify_batch():
    ok = classify([1, 2, 3], batch=True, status=200, body=_body([
        {"id": 3, "result": "c"}, {"id": 1, "result": "a"}, {"id": 2, "error": {"code": -32000, "message": "x"}},
    ]))
    assert ok[0] == "a" and isinstance(ok[1], RpcResponseError) and ok[2] == "c"
    missing = classify([1, 2], batch=True, status=200, body=_body([{"id": 2, "result": "b"}]))
    assert isinstance(missing[0], RpcMalformedResponse) and missing[1] == "b"
    for bad in ([{"id": 1, "result": 1}, {"id": 1, "result": 1}], [{"id": 9, "result": 1}], {"id": 1, "result": 1}):
        assert isinstance(classify([1, 2], batch=True, status=200, body=_body(bad)), RpcMalformedResponse)
    too_big = classify([1, 2], batch=True, status=200, body=_body({"id": None, "error": {"code": -32600,
                                                                                          "message": "too big"}}))
    assert isinstance(too_big, RpcResponseError) and too_big.code == -32600


@pytest.mark.parametrize(("url", "label"), [
    ("https://mainnet.infura.io/v3/SECRETKEY", "https://mainnet.infura.io"),
    ("https://user:pw@rpc.example.org:8443/key?apikey=SECRET#x", "https://rpc.example.org:8443"),
    ("http://127.0.0.1:8545", "http://127.0.0.1:8545"),
    ("http://[::1]:8545/x", "http://[::1]:8545"),
])
def test_redact_url(url, label):
    assert redact_url(url) == label


# -- the client against a real HTTP node --------------------------------------------------------------------------


async def test_call_sends_json_rpc_and_returns_the_result(start_node, fake_time):
    node = await start_node()
    async with client([node.url], fake_time) as rpc:
        assert await rpc.call("eth_chainId") == "0x1"
        assert await rpc.call("eth_getBalance", ["0xabc", "latest"]) == ["0xabc", "latest"]
    first = node.bodies[0]
    assert first["jsonrpc"] == "2.0" and first["method"] == "eth_chainId" and first["params"] == []
    assert node.bodies[1]["id"] != first["id"]
    assert rpc.endpoints[0].requests == 2 and rpc.endpoints[0].errors == {}


async def test_batch_is_one_post_matched_by_id(start_node, fake_time):
    node = await start_node()
    calls = [("eth_chainId", []), ("eth_getCode", ["0x1", "0x5"]), ("eth_blockNumber", []), ("eth_getCode", ["0x2"])]
    async with client([node.url], fake_time) as rpc:
        assert await rpc.batch(calls) == ["0x1", ["0x1", "0x5"], "0x10", ["0x2"]]
        assert await rpc.batch([]) == []
    assert len(node.bodies) == 1 and [item["method"] for item in node.bodies[0]] == [m for m, _ in calls]


async def test_batch_item_errors_raise_or_stay_in_place_without_a_retry(start_node, fake_time):
    node = await start_node()

    async def one_reverts(body: Any) -> web.Response:
        out = [reply(item) for item in body]
        out[1] = {"jsonrpc": "2.0", "id": body[1]["id"], "error": {"code": 3, "message": "execution reverted"}}
        return web.json_response(out[::-1])

    node.default = one_reverts
    calls = [("eth_chainId", []), ("eth_call", [{}]), ("eth_blockNumber", [])]
    async with client([node.url], fake_time) as rpc:
        results = await rpc.batch(calls, return_exceptions=True)
        assert results[0] == "0x1" and results[2] == "0x10"
        assert isinstance(results[1], RpcResponseError) and results[1].code == 3
        assert "eth_call" in str(results[1])
        with pytest.raises(RpcResponseError, match="eth_call.*execution reverted"):
            await rpc.batch(calls)
    assert len(node.bodies) == 2  # one POST per batch: a non-retryable item error is not retried


async def test_batch_resends_only_the_items_that_failed_retryably(start_node, fake_time):
    node = await start_node()

    async def second_throttled(body: Any) -> web.Response:
        out = [reply(item) for item in body]
        out[1] = {"jsonrpc": "2.0", "id": body[1]["id"], "error": {"code": -32005, "message": "limit exceeded"}}
        return web.json_response(out)

    node.script = [second_throttled]
    async with client([node.url], fake_time) as rpc:
        assert await rpc.batch([("eth_chainId", []), ("eth_getCode", ["0xa"]), ("eth_blockNumber", [])]) == [
            "0x1", ["0xa"], "0x10"]
    assert [item["method"] for item in node.bodies[1]] == ["eth_getCode"]
    assert rpc.endpoints[0].errors == {"response": 1}


async def test_rotates_away_from_failing_endpoints_while_calls_keep_succeeding(start_node, refused_url, fake_time):
    broken, healthy = await start_node(), await start_node()
    broken.default = status(500)
    with capture_logs() as logs:
        async with client([refused_url, broken.url, healthy.url], fake_time) as rpc:
            results = [await rpc.call("eth_chainId") for _ in range(5)]
            results += await asyncio.gather(*(rpc.call("eth_blockNumber") for _ in range(5)))
    assert results == ["0x1"] * 5 + ["0x10"] * 5
    dead, sick, good = rpc.endpoints
    assert dead.errors == {"transport": 1} and sick.errors == {"server": 1}
    assert len(broken.bodies) == 1 and len(healthy.bodies) == 10  # cooled endpoints are not tried again meanwhile
    assert dead.consecutive_failures == sick.consecutive_failures == 1 and good.errors == {}
    rotations = [(e["from_endpoint"], e["to_endpoint"]) for e in logs if e["event"] == "rpc.endpoint_rotated"]
    assert rotations == [(redact_url(refused_url), redact_url(broken.url)), (redact_url(broken.url), good.label)]
    assert [e["error"] for e in logs if e["event"] == "rpc.retry"] == ["transport", "server"]


async def test_a_timeout_rotates_to_the_next_endpoint(start_node, fake_time):
    slow, fast = await start_node(), await start_node()
    slow.default = slow.hang
    async with client([slow.url, fast.url], fake_time, timeout=0.2) as rpc:
        assert await rpc.call("eth_chainId") == "0x1"
    assert rpc.endpoints[0].errors == {"timeout": 1} and len(fast.bodies) == 1


async def test_retry_after_is_honoured(start_node, fake_time):
    node = await start_node()
    node.script = [status(429, **{"Retry-After": "3"})]
    async with client([node.url], fake_time) as rpc:
        assert await rpc.call("eth_chainId") == "0x1"
    assert fake_time.sleeps == [3.0]  # exactly the server's wait, not the (0.25 s) backoff
    assert rpc.endpoints[0].errors == {"rate_limited": 1} and len(node.bodies) == 2


async def test_a_rate_limited_endpoint_is_skipped_while_it_cools(start_node, fake_time):
    limited, spare = await start_node(), await start_node()
    limited.script = [status(429, **{"Retry-After": "60"})]
    async with client([limited.url, spare.url], fake_time) as rpc:
        for _ in range(3):
            assert await rpc.call("eth_chainId") == "0x1"
        assert len(limited.bodies) == 1 and len(spare.bodies) == 3 and fake_time.sleeps == []
        fake_time.now += 60  # cooled down: the first endpoint in order is preferred again
        assert await rpc.call("eth_chainId") == "0x1"
    assert len(limited.bodies) == 2


async def test_malformed_answers_are_retried(start_node, fake_time):
    node = await start_node()

    async def wrong_id(body: Any) -> web.Response:
        return web.json_response({"jsonrpc": "2.0", "id": body["id"] + 1, "result": "0xbad"})

    node.script = [raw("<html>502 from the proxy</html>"), wrong_id]
    async with client([node.url], fake_time) as rpc:
        assert await rpc.call("eth_chainId") == "0x1"
    assert rpc.endpoints[0].errors == {"malformed": 2}
    assert fake_time.sleeps == [0.25, 0.5]  # exponential backoff (rng fixed at the top of the jitter range)


async def test_non_retryable_error_raises_at_once_without_rotation(start_node, fake_time):
    first, second = await start_node(), await start_node()
    first.default = rpc_error(-32601, "the method eth_foo does not exist", {"hint": "none"})
    async with client([first.url, second.url], fake_time) as rpc:
        with pytest.raises(RpcResponseError) as info:
            await rpc.call("eth_foo")
    err = info.value
    assert (err.code, err.rpc_message, err.data) == (-32601, "the method eth_foo does not exist", {"hint": "none"})
    assert err.context["method"] == "eth_foo" and "eth_foo via http://127.0.0.1" in str(err)
    assert len(first.bodies) == 1 and second.bodies == [] and fake_time.sleeps == []
    assert rpc.endpoints[0].consecutive_failures == 0


async def test_exhausted_attempts_raise_the_last_error_with_method_and_redacted_url(start_node, fake_time):
    node = await start_node("/v3/SECRETKEY")
    node.default = status(502)
    with capture_logs() as logs:
        async with client([node.url], fake_time, max_attempts=3) as rpc:
            with pytest.raises(RpcServerError) as info:
                await rpc.call("eth_blockNumber")
    text = str(info.value)
    assert "eth_blockNumber failed after 3 attempts" in text and redact_url(node.url) in text
    assert info.value.status == 502 and info.value.context["attempts"] == 3
    assert len(node.bodies) == 3 and fake_time.sleeps == [0.25, 0.5]
    assert "SECRETKEY" not in text + repr(info.value.context) + repr(logs)
    assert [e["attempt"] for e in logs if e["event"] == "rpc.retry"] == [1, 2]


async def test_transport_errors_name_no_secret(refused_url, fake_time):
    url = refused_url.replace("http://", "http://alice:PASSWORD@") + "v3/SECRETKEY?key=SECRET2"
    assert rpc_endpoint_scrub(url, f"POST {url} failed") == f"POST {redact_url(url)} failed"
    async with client([url], fake_time, max_attempts=2) as rpc:
        with pytest.raises(RpcTransportError) as info:
            await rpc.call("eth_chainId")
    text = str(info.value) + repr(info.value.context)
    assert isinstance(info.value, ConnectionError) and not any(w in text for w in ("SECRET", "PASSWORD", "alice"))
    assert isinstance(info.value.__cause__, aiohttp.ClientError)


async def test_batch_exhaustion_fills_unanswered_items(start_node, fake_time):
    node = await start_node()

    async def drops_second(body: Any) -> web.Response:
        return web.json_response([reply(item) for item in body if item["method"] != "eth_getCode"])

    node.default = drops_second
    async with client([node.url], fake_time, max_attempts=2) as rpc:
        results = await rpc.batch([("eth_chainId", []), ("eth_getCode", ["0x1"])], return_exceptions=True)
        assert results[0] == "0x1" and isinstance(results[1], RpcMalformedResponse)
        assert "eth_getCode" in str(results[1]) and "2 attempts" in str(results[1])
        with pytest.raises(RpcMalformedResponse):
            await rpc.batch([("eth_getCode", ["0x1"])])


async def test_rate_budget_paces_requests(start_node, fake_time):
    node = await start_node()
    async with client([node.url], fake_time, requests_per_second=5) as rpc:
        start = fake_time.now
        assert await asyncio.gather(*(rpc.call("eth_chainId") for _ in range(10))) == ["0x1"] * 10
        assert fake_time.now - start == pytest.approx(9 / 5)  # the first at once, then one every 0.2 s
        await rpc.batch([("eth_chainId", [])] * 4)  # a batch spends one token per call...
        before = fake_time.now
        await rpc.call("eth_chainId")  # ...so the next request waits them out
        assert fake_time.now - before == pytest.approx(4 / 5)
    assert len(node.bodies) == 12


async def test_token_bucket_grants_are_spaced(fake_time):
    bucket = TokenBucket(4, clock=fake_time.clock, sleep=fake_time.sleep)
    grants = []

    async def take() -> None:
        await bucket.acquire()
        grants.append(fake_time.now)

    await asyncio.gather(*(take() for _ in range(6)))
    gaps = [b - a for a, b in zip(grants, grants[1:])]
    assert gaps == pytest.approx([0.25] * 5)


async def test_concurrency_limit_per_endpoint(start_node, fake_time):
    node = await start_node()
    in_flight = peak = 0

    async def counted(body: Any) -> web.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return await answer(body)

    node.default = counted
    async with client([node.url], fake_time, max_concurrency=3) as rpc:
        await asyncio.gather(*(rpc.call("eth_chainId") for _ in range(12)))
    assert peak == 3


async def test_session_ownership(start_node, fake_time):
    node = await start_node()
    async with aiohttp.ClientSession() as session:
        async with client([node.url], fake_time, session=session) as rpc:
            assert await rpc.call("eth_chainId") == "0x1"
        assert not session.closed  # borrowed, not closed
    rpc = client([node.url], fake_time)
    assert await rpc.call("eth_chainId") == "0x1"
    await rpc.close()
    with pytest.raises(RuntimeError):
        await rpc.call("eth_chainId")

