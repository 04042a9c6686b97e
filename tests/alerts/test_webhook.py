"""The webhook's signature, what a receiver checks, how answers are judged, and the retry schedule."""

from __future__ import annotations

import hashlib
import hmac
import json
import random

import pytest

from kamiyo.alerts.outcome import Dead, Delivered, Retry, backoff, retry_after
from kamiyo.alerts.webhook import MAX_SKEW_SECONDS, judge, request, verify

FINDING = {"id": "0x" + "ab" * 32, "kind": "reentrancy", "severity": "critical"}


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body_as_documented():
    body, headers = request("k", "finding.created", FINDING, now=1_800_000_000)
    assert headers["X-Kamiyo-Timestamp"] == "1800000000"
    expected = hmac.new(b"k", b"1800000000." + body, hashlib.sha256).hexdigest()
    assert headers["X-Kamiyo-Signature"] == "v1=" + expected
    assert headers["X-Kamiyo-Delivery-Id"] == FINDING["id"] + ":finding.created"
    assert json.loads(body) == {"event": "finding.created", "delivery_id": FINDING["id"] + ":finding.created",
                                "finding": FINDING}


def test_a_receiver_rejects_skew_tampering_and_the_wrong_secret():
    body, headers = request("k", "finding.created", FINDING, now=1_800_000_000)
    assert verify("k", headers, body, now=1_800_000_000 + MAX_SKEW_SECONDS)
    assert not verify("k", headers, body, now=1_800_000_000 + MAX_SKEW_SECONDS + 1)
    assert not verify("k", headers, body + b" ", now=1_800_000_000)
    assert not verify("other", headers, body, now=1_800_000_000)
    assert not verify("k", {**headers, "X-Kamiyo-Timestamp": "soon"}, body, now=1_800_000_000)


@pytest.mark.parametrize("status, headers, outcome", [
    (200, {}, Delivered(200)), (204, {}, Delivered(204)),
    (500, {}, Retry("HTTP 500")), (503, {"Retry-After": "7"}, Retry("HTTP 503", after=7.0)),
    (429, {"retry-after": "30"}, Retry("HTTP 429", after=30.0)), (408, {}, Retry("HTTP 408")),
    (302, {}, Dead("HTTP 302: redirects are not followed")), (401, {}, Dead("HTTP 401")), (404, {}, Dead("HTTP 404")),
])
def test_answers_are_judged(status, headers, outcome):
    assert judge(status, headers) == outcome


def test_retry_after_reads_seconds_and_dates_and_is_capped():
    assert retry_after({"Retry-After": "120"}) == 120.0
    assert retry_after({"Retry-After": "999999"}) == 3600.0
    assert retry_after({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # a date in the past: now
    assert retry_after({"Retry-After": "soon"}) is None and retry_after({}) is None


def test_backoff_doubles_with_jitter_and_a_cap():
    rng = random.Random(1)
    delays = [backoff(n, 2.0, 60.0, rng) for n in range(1, 9)]
    for n, delay in enumerate(delays, start=1):
        step = min(60.0, 2.0 * 2 ** (n - 1))
        assert step / 2 <= delay <= step
