"""One JSON POST to a channel's URL (the webhook; Slack, Discord, Telegram), as an Outcome: the URL checked against the
network policy (it is user input), sent through `network.post` to the address checked, the answer handed to the
channel's `judge`. Failures before an answer are Outcomes too: a refused destination is dead, a name that does not
resolve or a connection that fails or times out is retried.

Every error text passes through `redact` before it leaves, so a secret that sits in a URL (Telegram's bot token)
never reaches `deliveries.last_error`, a log line or the CLI. This module must not classify HTTP statuses itself:
each service says different things with them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable

import aiohttp

from .message import line
from .network import NetworkPolicy, Response, UnsafeDestination, check_destination, post
from .outcome import MAX_RETRY_AFTER, Dead, Outcome, Retry

USER_AGENT = "kamiyo-alerts/1"
MAX_ANSWER = 16_384  # bytes of an answer read by default: enough for any error document these services send
MAX_ERROR = 300  # characters of an error kept

Judge = Callable[[Response], Outcome]


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "<redacted>")
    return text


def _redacted(outcome: Outcome, secrets: tuple[str, ...]) -> Outcome:
    # Redact before cutting: a cut through the middle of a secret would leave a prefix no match can find.
    if isinstance(outcome, Retry):
        return Retry(redact(outcome.error, secrets)[:MAX_ERROR], outcome.after)
    if isinstance(outcome, Dead):
        return Dead(redact(outcome.error, secrets)[:MAX_ERROR])
    return outcome


def answer_text(response: Response, limit: int = 200) -> str:
    """What the service said, as one short line (for an error): its body decoded, control characters gone."""
    return line(response.body[:limit * 4].decode("utf-8", "replace"))[:limit]


def explained(outcome: Outcome, detail: str) -> Outcome:
    """A failed outcome with the service's own words added ("HTTP 404: no_service")."""
    if not detail or not isinstance(outcome, Retry | Dead):
        return outcome
    if isinstance(outcome, Retry):
        return Retry(f"{outcome.error}: {detail}", outcome.after)
    return Dead(f"{outcome.error}: {detail}")


def seconds(value: object) -> float | None:
    """A wait a service put in its JSON answer (`retry_after`), as seconds capped like Retry-After; None when it
    is not a non-negative number."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:  # `not >=` catches NaN
        return None
    return min(float(value), MAX_RETRY_AFTER)


def answer_json(response: Response) -> dict | None:
    try:
        doc = json.loads(response.body)
    except ValueError:  # not JSON, or cut at MAX_ANSWER
        return None
    return doc if isinstance(doc, dict) else None


async def post_json(url: str, payload: dict, policy: NetworkPolicy, timeout: float, judge: Judge, *,
                    secrets: Iterable[str] = (), max_answer: int = MAX_ANSWER) -> Outcome:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT}
    return await post_body(url, body, headers, policy, timeout, judge, secrets=secrets, max_answer=max_answer)


async def post_body(url: str, body: bytes, headers: dict[str, str], policy: NetworkPolicy, timeout: float,
                    judge: Judge, *, secrets: Iterable[str] = (), max_answer: int = MAX_ANSWER) -> Outcome:
    """`body` as it is (the webhook signs its exact bytes), with the same checks and outcomes as post_json."""
    secrets = tuple(secrets)
    try:
        async with asyncio.timeout(timeout):  # a resolver that never answers must not hold the worker
            destination = await check_destination(url, policy)
    except UnsafeDestination as exc:
        return _redacted(Dead(f"refused destination: {exc}"), secrets)
    except (OSError, TimeoutError) as exc:  # the name does not resolve now; it may later
        return _redacted(Retry(f"cannot resolve: {type(exc).__name__}: {exc}"), secrets)
    try:
        response = await post(destination, body, headers, timeout=timeout, max_body=max_answer)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return _redacted(Retry(f"{type(exc).__name__}: {exc}"), secrets)
    return _redacted(judge(response), secrets)

