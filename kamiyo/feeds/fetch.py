"""Getting a feed's payload: conditional HTTP (ETag / Last-Modified), a timeout, retries with backoff on what
may pass (transport errors, 429 with Retry-After, 5xx), and a size limit enforced while reading, so an endless
or hostile answer is refused before it is held in memory. A local path is read under the same limit.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from ..chains.rpc import redact_url
from ..errors import KamiyoError

RETRIES = 3
BACKOFF = 1.0
CHUNK = 1 << 16


class FeedUnavailable(KamiyoError):
    """The source could not be read this time (network, server, refusal); the next pull tries again."""

    retryable = True


class FeedTooLarge(KamiyoError):
    """The payload is bigger than the feed's max_bytes: refused whole, never truncated."""


@dataclass(frozen=True, slots=True)
class Fetched:
    body: bytes | None  # None: not modified since the validators sent
    etag: str | None = None
    last_modified: str | None = None


async def fetch_url(session: aiohttp.ClientSession, url: str, *, etag: str | None, last_modified: str | None,
                    timeout: float, max_bytes: int, method: str = "GET", json_body: object = None,
                    sleep=asyncio.sleep) -> Fetched:
    headers = {"Accept-Encoding": "gzip, deflate", "User-Agent": "kamiyo-feeds"}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    label = redact_url(url)
    last: Exception | None = None
    for attempt in range(1, RETRIES + 1):
        retry_after = None
        try:
            async with session.request(method, url, headers=headers, json=json_body,
                                       timeout=aiohttp.ClientTimeout(total=timeout)) as response:
                if response.status == 304:
                    return Fetched(None, etag, last_modified)
                if response.status == 429 or response.status >= 500:
                    retry_after = _seconds(response.headers.get("Retry-After"))
                    raise FeedUnavailable(f"{label}: HTTP {response.status}", status=response.status)
                if response.status != 200:
                    raise FeedUnavailable(f"{label}: HTTP {response.status}", status=response.status, final=True)
                if response.content_length is not None and response.content_length > max_bytes:
                    raise FeedTooLarge(f"{label}: {response.content_length:,} bytes announced, over max_bytes "
                                       f"{max_bytes:,}")
                body = await _read_limited(response.content, max_bytes, label)
                return Fetched(body, response.headers.get("ETag"), response.headers.get("Last-Modified"))
        except FeedTooLarge:
            raise
        except FeedUnavailable as exc:
            if exc.context.get("final"):
                raise
            last = exc
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            last = FeedUnavailable(f"{label}: {type(exc).__name__}: {_scrubbed(exc, url, label)}")
        if attempt < RETRIES:
            await sleep(retry_after if retry_after is not None else BACKOFF * 2 ** (attempt - 1) * (0.5 + random.random()))
    raise last


async def _read_limited(stream: aiohttp.StreamReader, max_bytes: int, label: str) -> bytes:
    parts, size = [], 0
    async for chunk in stream.iter_chunked(CHUNK):
        size += len(chunk)
        if size > max_bytes:
            raise FeedTooLarge(f"{label}: over max_bytes {max_bytes:,} (stopped reading)")
        parts.append(chunk)
    return b"".join(parts)


def read_path(path: Path, max_bytes: int) -> bytes:
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise FeedTooLarge(f"{path}: {size:,} bytes, over max_bytes {max_bytes:,}")
        return path.read_bytes()
    except OSError as exc:
        raise FeedUnavailable(f"{path}: cannot read ({exc.strerror})") from exc


def _seconds(value: str | None) -> float | None:
    try:
        return min(300.0, max(0.0, float(value))) if value else None
    except ValueError:
        return None


def _scrubbed(exc: Exception, url: str, label: str) -> str:
    return str(exc).replace(url, label)
