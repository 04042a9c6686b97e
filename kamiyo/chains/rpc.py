"""JSON-RPC 2.0 over HTTP for EVM nodes: an ordered pool of endpoints, each with its own request-rate budget,
concurrency limit, timeout, health and counters; retries with exponential backoff and jitter; rotation away from
an endpoint that fails. `classify` is the one place that turns an HTTP exchange into results or errors and
decides whether trying again may help. No chain logic lives here, and no web3.

Retry policy. An attempt goes to the first endpoint, in configured order, that is not cooling down. A retryable
failure cools its endpoint down (for Retry-After seconds after a 429 that sends one, else for an exponential,
jittered backoff that grows with that endpoint's consecutive failures), so the next attempt goes to the next
healthy endpoint at once, and waits only when every endpoint is cooling. A non-retryable error is raised at once.
URLs are logged and put in errors only as scheme://host:port: paths, queries and user info often hold API keys."""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from kamiyo import log, metrics
from kamiyo.errors import InputError, KamiyoError

_log = log.get("kamiyo.rpc")

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

# JSON-RPC codes that mean "not now" rather than "never": EIP-1474 resource unavailable (-32002) and limit
# exceeded (-32005, how Infura-style providers throttle inside an HTTP 200), and internal error (-32603), which
# load-balanced providers return for upstream hiccups; a deterministic -32603 costs at most max_attempts tries.
# Every other code (-32000 reverted or invalid input, -32601 method not found, -32602 invalid params, ...) is about
# the request, so another endpoint would answer the same: raised at once, no rotation.
TRANSIENT_CODES = frozenset({-32002, -32005, -32603})


class RpcError(KamiyoError):
    """Base of what the RPC client raises. `kind` names the error in endpoint counters and log lines."""

    kind = "rpc"


class RpcTransportError(RpcError, ConnectionError):
    """No HTTP response: connection refused or reset, DNS, TLS."""

    retryable = True
    kind = "transport"


class RpcTimeout(RpcTransportError, TimeoutError):
    """No complete response within the endpoint's timeout."""

    kind = "timeout"


class RpcHttpError(RpcError):
    """A non-2xx status without a JSON-RPC error in the body (401/403 bad key, 404 bad path). The endpoint refuses
    us and another may not, so it rotates."""

    retryable = True
    kind = "http"

    def __init__(self, message: str, *, status: int, **context: Any) -> None:
        super().__init__(message, status=status, **context)
        self.status = status


class RpcServerError(RpcHttpError):
    """HTTP 5xx."""

    kind = "server"


class RpcRateLimited(RpcHttpError):
    """HTTP 429. `retry_after`: the server's Retry-After in seconds, None when absent or unreadable."""

    kind = "rate_limited"

    def __init__(self, message: str, *, retry_after: float | None, **context: Any) -> None:
        super().__init__(message, status=429, retry_after=retry_after, **context)
        self.retry_after = retry_after


class RpcResponseError(RpcError):
    """A JSON-RPC error object from the node, kept as sent: `code`, `rpc_message`, `data`. Retryable only for
    TRANSIENT_CODES."""

    kind = "response"

    def __init__(self, code: int, rpc_message: str, data: Any = None, **context: Any) -> None:
        super().__init__(f"JSON-RPC error {code}: {rpc_message}", code=code, data=data, **context)
        self.code = code
        self.rpc_message = rpc_message
        self.data = data
        self.retryable = code in TRANSIENT_CODES


class RpcMalformedResponse(RpcError):
    """An answer that is not a JSON-RPC response to what we asked: not JSON, wrong or missing id, no result."""

    retryable = True
    kind = "malformed"


_NOT_JSON = object()


def classify(
    ids: Sequence[int],
    *,
    batch: bool = False,
    status: int | None = None,
    headers: Mapping[str, str] | None = None,
    body: bytes = b"",
    exc: BaseException | None = None,
) -> RpcError | list[Any]:
    """Judge one HTTP exchange for the request ids `ids`: either an RpcError for the request as a whole, or a list
    with, for each id in that order, its result or its own RpcError. Give `exc` when no response came, else
    `status`, `headers` and `body`. Never raises."""
    if exc is not None:
        if isinstance(exc, TimeoutError):  # asyncio's and aiohttp's timeouts are TimeoutError on 3.11+
            return RpcTimeout(f"timed out ({type(exc).__name__})")
        return RpcTransportError(f"{type(exc).__name__}: {exc}")
    if status is None:
        raise TypeError("classify() needs either exc or status")
    if status == 429:
        return RpcRateLimited("HTTP 429 Too Many Requests", retry_after=_retry_after(headers or {}))
    if status >= 500:
        return RpcServerError(f"HTTP {status}", status=status)
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):  # also UnicodeDecodeError; nested beyond any EVM answer
        doc = _NOT_JSON
    whole_error = isinstance(doc, dict) and isinstance(doc.get("error"), dict)
    if not 200 <= status < 300:
        # Some providers answer a bad request with 4xx and a JSON-RPC error body: that error is the verdict.
        return _item(doc) if whole_error else RpcHttpError(f"HTTP {status}", status=status)
    if doc is _NOT_JSON:
        return RpcMalformedResponse("response body is not JSON", status=status)
    if whole_error and doc.get("id") is None:  # id null: about the request itself (parse error, batch too large)
        return _item(doc)
    if not batch:
        if not isinstance(doc, dict) or _id(doc) != ids[0]:
            return RpcMalformedResponse(f"expected a response with id {ids[0]}", got=_id(doc))
        return [_item(doc)]
    if not isinstance(doc, list):
        return RpcMalformedResponse("batch answered with something other than a JSON array")
    wanted, by_id = set(ids), {}
    for item in doc:
        item_id = _id(item)
        if item_id not in wanted or item_id in by_id:
            return RpcMalformedResponse("batch response with an unknown or repeated id", got=item_id)
        by_id[item_id] = item
    return [_item(by_id[i]) if i in by_id else RpcMalformedResponse(f"no response for id {i}") for i in ids]


def _id(doc: Any) -> int | None:
    value = doc.get("id") if isinstance(doc, dict) else None
    return value if type(value) is int else None  # bool is not an id, though True == 1


def _item(doc: dict) -> Any:
    error = doc.get("error")
    if error is not None:
        if not isinstance(error, dict) or type(error.get("code")) is not int:
            return RpcMalformedResponse("error object without an integer code")
        return RpcResponseError(error["code"], str(error.get("message", "")), error.get("data"))
    if "result" not in doc:
        return RpcMalformedResponse("response with neither result nor error")
    return doc["result"]


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - datetime.now(timezone.utc)).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def redact_url(url: str) -> str:
    """scheme://host[:port] only: user info, path, query and fragment may all carry an API key."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port is not None else ""
    return f"{parts.scheme}://{host}{port}"


def scrub_url(url: str, text: str) -> str:
    """Remove the secret-bearing parts of `url` from text that came from elsewhere (aiohttp messages)."""
    parts = urlsplit(url)
    text = text.replace(url, redact_url(url))
    tail = parts.path + (f"?{parts.query}" if parts.query else "")
    for secret in (tail if len(tail) > 1 else "", parts.password, parts.username):
        if secret:
            text = text.replace(secret, "…")
    return text


class TokenBucket:
    """A request-rate budget of `rate` a second with capacity one: grants are at least 1/rate apart and there is
    no burst after idling. Taking n at once (a batch of n calls) is granted when one would be and pushes the next
    grant n/rate later. Each caller books its slot on arrival (FIFO, no lock) and sleeps once until it: no polling,
    no refill arithmetic to round away. `math.inf` means no budget."""

    def __init__(self, rate: float, *, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep) -> None:
        if not rate > 0:
            raise InputError(f"requests_per_second must be positive, got {rate!r}")
        self.rate = float(rate)
        self._clock = clock
        self._sleep = sleep
        self._next = -math.inf  # earliest clock time of the next grant

    async def acquire(self, tokens: float = 1.0) -> None:
        now = self._clock()
        at = max(now, self._next)
        self._next = at + tokens / self.rate  # booked before awaiting, so concurrent callers queue up behind
        if at > now:
            await self._sleep(at - now)


class Endpoint:
    """One node URL: budget, concurrency slots, timeout, health and counters (plain ints and a dict, for metrics).
    `label` is the redacted URL, the only form that is logged."""

    def __init__(
        self,
        url: str,
        *,
        requests_per_second: float,
        max_concurrency: int,
        timeout: float,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if max_concurrency < 1:
            raise InputError(f"max_concurrency must be at least 1, got {max_concurrency!r}")
        self.url = url
        self.label = redact_url(url)
        self.timeout = timeout
        self.bucket = TokenBucket(requests_per_second, clock=clock, sleep=sleep)
        self.slots = asyncio.Semaphore(max_concurrency)
        self.consecutive_failures = 0
        self.cooled_until = -math.inf  # clock time before which it is chosen only if every endpoint is cooling
        self.requests = 0
        self.errors: dict[str, int] = {}

    def count(self, err: RpcError) -> None:
        self.errors[err.kind] = self.errors.get(err.kind, 0) + 1
        metrics.RPC_ERRORS.labels(self.label, err.kind).inc()

    def scrub(self, text: str) -> str:
        return scrub_url(self.url, text)


def _reword(err: RpcError, message: str, **context: Any) -> RpcError:
    err.message = message
    err.args = (message,)
    err.context.update(context)
    return err


class RpcClient:
    """JSON-RPC over a pool of HTTP endpoints, retried and rotated as the module docstring says. Use as
    `async with RpcClient(urls, requests_per_second=...) as rpc:`; a session passed in is borrowed, not closed.
    `clock`, `sleep` and `rng` are injectable so tests control time and jitter."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        requests_per_second: float,
        timeout: float = 10,
        max_concurrency: int = 8,
        max_attempts: int = 5,
        session: aiohttp.ClientSession | None = None,
        backoff_base: float = 0.25,
        backoff_cap: float = 30.0,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if not urls:
            raise InputError("RpcClient needs at least one endpoint URL")
        if max_attempts < 1:
            raise InputError(f"max_attempts must be at least 1, got {max_attempts!r}")
        self.endpoints = tuple(
            Endpoint(
                url,
                requests_per_second=requests_per_second,
                max_concurrency=max_concurrency,
                timeout=timeout,
                clock=clock,
                sleep=sleep,
            )
            for url in urls
        )
        self._max_attempts = max_attempts
        self._backoff = (backoff_base, backoff_cap)
        self._clock, self._sleep, self._rng = clock, sleep, rng
        self._session = session
        self._owns_session = session is None
        self._closed = False
        self._ids = itertools.count(1)
        self._current = self.endpoints[0]

    async def __aenter__(self) -> RpcClient:
        self._http()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        self._closed = True
        if self._owns_session and self._session is not None:
            await self._session.close()
        self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("RpcClient is closed")
        if self._session is None:  # created here, inside the running loop, not in __init__
            self._session = aiohttp.ClientSession()
        return self._session

    async def call(self, method: str, params: list | None = None) -> Any:
        """The result of one call; raises the RpcError that ended it (after max_attempts, the last one)."""
        item = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params or []}
        return (await self._run([item], batch=False, return_exceptions=False))[0]

    async def batch(self, calls: Sequence[tuple[str, list]], *, return_exceptions: bool = False) -> list[Any]:
        """Many calls in one JSON-RPC batch POST; results in the order of `calls`, matched by id whatever order the
        node answers in. Items that fail retryably, and only they, are sent again on the next attempt. An item's
        non-retryable error (or, once attempts run out, the last error that kept it unanswered) is raised, the
        first in call order, or with return_exceptions=True put in the item's place, as asyncio.gather does. An
        error about the request as a whole that retrying cannot fix is always raised."""
        items = [{"jsonrpc": "2.0", "id": next(self._ids), "method": m, "params": p} for m, p in calls]
        return await self._run(items, batch=True, return_exceptions=return_exceptions) if items else []

    async def _run(self, items: list[dict], *, batch: bool, return_exceptions: bool) -> list[Any]:
        done: dict[int, Any] = {}
        pending, last = items, None
        for attempt in range(1, self._max_attempts + 1):
            endpoint = await self._choose()
            what = _describe(pending, batch)
            outcome = await self._exchange(endpoint, pending, batch)
            if isinstance(outcome, RpcError):
                endpoint.count(outcome)
                if not outcome.retryable:
                    message = f"{what} via {endpoint.label}: {outcome}"
                    raise _reword(outcome, message, method=what, endpoint=endpoint.label)
                failures = {item["id"]: outcome for item in pending}
            else:
                failures = {}
                for item, value in zip(pending, outcome):
                    if isinstance(value, RpcError):
                        endpoint.count(value)
                        if value.retryable:
                            failures[item["id"]] = value
                            continue
                        _reword(value, f"{item['method']} via {endpoint.label}: {value}",
                                method=item["method"], endpoint=endpoint.label)
                        if not return_exceptions:
                            raise value
                    done[item["id"]] = value
            if not failures:
                endpoint.consecutive_failures = 0
                break
            last = next(iter(failures.values()))
            pending = [item for item in pending if item["id"] in failures]
            delay = self._cool_down(endpoint, last)
            if attempt < self._max_attempts:
                _log.info("rpc.retry", method=what, endpoint=endpoint.label, attempt=attempt, error=last.kind,
                          detail=last.message, cooldown=round(delay, 3))
        else:
            what = _describe(pending, batch)
            err = _reword(last, f"{what} failed after {self._max_attempts} attempts, last via {endpoint.label}: "
                          f"{last}", method=what, endpoint=endpoint.label, attempts=self._max_attempts)
            if not return_exceptions:
                raise err
            done.update((item["id"], err) for item in pending)
        return [done[item["id"]] for item in items]

    async def _choose(self) -> Endpoint:
        """The first endpoint in configured order that is not cooling down; when all are, the one free soonest,
        after waiting for it. Choosing another endpoint than the previous attempt did is a rotation."""
        now = self._clock()
        ready = [e for e in self.endpoints if e.cooled_until <= now]
        endpoint = ready[0] if ready else min(self.endpoints, key=lambda e: e.cooled_until)
        if endpoint is not self._current:
            _log.warning("rpc.endpoint_rotated", from_endpoint=self._current.label, to_endpoint=endpoint.label,
                         cooled_for=round(max(0.0, self._current.cooled_until - now), 3))
            self._current = endpoint
        if not ready:
            await self._sleep(endpoint.cooled_until - now)
        return endpoint

    def _cool_down(self, endpoint: Endpoint, err: RpcError) -> float:
        endpoint.consecutive_failures += 1
        if isinstance(err, RpcRateLimited) and err.retry_after is not None:
            delay = err.retry_after
        else:
            base, cap = self._backoff
            delay = min(cap, base * 2 ** (endpoint.consecutive_failures - 1)) * (0.5 + self._rng() / 2)
        endpoint.cooled_until = max(endpoint.cooled_until, self._clock() + delay)
        return delay

    async def _exchange(self, endpoint: Endpoint, pending: list[dict], batch: bool) -> RpcError | list[Any]:
        ids = [item["id"] for item in pending]
        async with endpoint.slots:  # slot before token, so a granted token is spent on a send right away
            await endpoint.bucket.acquire(len(pending))
            endpoint.requests += 1
            try:
                async with self._http().post(
                    endpoint.url,
                    json=pending if batch else pending[0],
                    timeout=aiohttp.ClientTimeout(total=endpoint.timeout),
                ) as response:
                    body = await response.read()
                    status, headers = response.status, response.headers
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                err = classify(ids, batch=batch, exc=exc)
                err.__cause__ = exc
                return _reword(err, endpoint.scrub(err.message))
        return classify(ids, batch=batch, status=status, headers=headers, body=body)


def _describe(items: list[dict], batch: bool) -> str:
    if not batch:
        return items[0]["method"]
    return f"batch of {len(items)} ({', '.join(sorted({item['method'] for item in items}))})"
