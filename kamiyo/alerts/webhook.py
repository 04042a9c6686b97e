"""The generic webhook channel: a signed JSON POST, and what its answer means for the delivery.

Body: `{"event": "finding.created" | "finding.retracted", "delivery_id", "finding": {...}}`. Headers:
`X-Kamiyo-Timestamp` (unix seconds), `X-Kamiyo-Signature: v1=<hex HMAC-SHA256(secret, timestamp + "." + raw body)>`
and `X-Kamiyo-Delivery-Id` (fingerprint + ":" + event, the same on every retry, so a receiver can drop repeats).
Receivers should reject a timestamp more than `MAX_SKEW_SECONDS` away from their clock; `verify` is that check,
for receivers written in Python and for our tests.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping

from .jsonpost import post_body
from .network import NetworkPolicy
from .outcome import Dead, Delivered, Outcome, Retry, retry_after

MAX_SKEW_SECONDS = 300
USER_AGENT = "kamiyo-webhook/1"


def delivery_id(fingerprint: str, event: str) -> str:
    return f"{fingerprint}:{event}"


def signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify(secret: str, headers: Mapping[str, str], body: bytes, now: float | None = None) -> bool:
    """What a receiver checks: a fresh timestamp and a signature over it and the raw body, compared in constant
    time."""
    stamp = headers.get("X-Kamiyo-Timestamp", "")
    if not stamp.isdigit() or abs((now if now is not None else time.time()) - int(stamp)) > MAX_SKEW_SECONDS:
        return False
    return hmac.compare_digest(headers.get("X-Kamiyo-Signature", ""), signature(secret, stamp, body))


def request(secret: str, event: str, finding: dict, now: float | None = None) -> tuple[bytes, dict[str, str]]:
    """The body and headers of one delivery."""
    ident = delivery_id(finding["id"], event)
    body = json.dumps({"event": event, "delivery_id": ident, "finding": finding}, separators=(",", ":"),
                      sort_keys=True).encode()
    stamp = str(int(now if now is not None else time.time()))
    return body, {"Content-Type": "application/json", "User-Agent": USER_AGENT, "X-Kamiyo-Timestamp": stamp,
                  "X-Kamiyo-Signature": signature(secret, stamp, body), "X-Kamiyo-Delivery-Id": ident}


async def send(url: str, secret: str, event: str, finding: dict, policy: NetworkPolicy,
               timeout: float) -> Outcome:
    body, headers = request(secret, event, finding)
    return await post_body(str(url), body, headers, policy, timeout,
                           lambda response: judge(response.status, response.headers), secrets=(secret,))


def judge(status: int, headers: Mapping[str, str]) -> Outcome:
    """2xx delivered; 429 and 408 and 5xx retried (Retry-After honoured); a redirect or another 4xx is a dead
    letter: the receiver refuses this request, and sending it again will not change that."""
    if 200 <= status < 300:
        return Delivered(status)
    if status in (408, 429) or status >= 500:
        return Retry(f"HTTP {status}", after=retry_after(headers))
    if 300 <= status < 400:
        return Dead(f"HTTP {status}: redirects are not followed")
    return Dead(f"HTTP {status}")
