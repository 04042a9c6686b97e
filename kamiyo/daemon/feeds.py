"""Feeds inside `kamiyo run`: each pulled on its own interval, and after a pull that brought news, its incidents
joined with the code the daemon knows (`fork-of-exploited`). One task for all feeds, one feed at a time: a slow
or broken source costs its own turn, never another chain's pipeline. The feed metrics are set by `pull` itself;
here they are only seeded, at start, from the health an earlier run stored.
"""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp

from .. import log, metrics
from ..chains.rpc import RpcClient, RpcError
from ..config import Settings
from ..errors import KamiyoError
from ..feeds.pull import PullResult, pull, show_stored_health
from ..findings import Finding
from ..storage.findings import record_finding
from .exploits import join_incidents
from .linking import Linker
from .notify import Heartbeats

_log = log.get("kamiyo.feeds")


def code_fetcher(settings: Settings):
    """(chain id, address) -> runtime code at the head, from that chain's configured RPC endpoints."""
    chains = {c.chain_id: c for c in settings.chains}

    async def fetch(chain_id: int, address: str) -> bytes | None:
        chain = chains.get(chain_id)
        if chain is None:
            return None
        try:
            async with RpcClient(chain.rpc, requests_per_second=chain.requests_per_second) as client:
                answer = await client.call("eth_getCode", [address, "latest"])
        except RpcError as exc:
            _log.warning("exploits.code_unavailable", chain=chain.name, address=address, error=str(exc))
            return None
        try:
            return bytes.fromhex(answer[2:]) if isinstance(answer, str) and answer.startswith("0x") else None
        except ValueError:
            return None

    return fetch


async def pull_and_join(feed, settings: Settings, engine, linker: Linker, session) -> tuple[PullResult, list[Finding]]:
    """One pull; when it changed records, the incidents' victims are marked and their families' deployments
    get findings (returned: those that were news). Incidents rank their sources by every configured feed's type."""
    result = await pull(feed, engine, session, source_types={f.name: f.type for f in settings.feeds})
    if result.status != "updated":
        return result, []
    findings = await join_incidents(engine, linker, {c.chain_id for c in settings.chains}, code_fetcher(settings))
    created = []
    async with engine.begin() as conn:
        for finding in findings:
            if await record_finding(conn, finding):
                created.append(finding)
    for finding in created:
        metrics.FINDINGS.labels(str(finding.chain_id), finding.kind).inc()
        _log.info("finding.created", kind=finding.kind, severity=str(finding.severity),
                  fingerprint=finding.fingerprint, chain_id=finding.chain_id, subject=finding.subject,
                  block=finding.block, incident=finding.evidence.get("incident"))
    return result, created


async def follow_feeds(settings: Settings, engine, linker: Linker, stop: asyncio.Event,
                       heartbeats: Heartbeats) -> None:
    if not settings.feeds:
        return
    await show_stored_health(engine, [feed.name for feed in settings.feeds])
    loop = asyncio.get_running_loop()
    due = {feed.name: loop.time() for feed in settings.feeds}
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            heartbeats.beat("feeds")
            for feed in settings.feeds:
                if stop.is_set() or due[feed.name] > loop.time():
                    continue
                try:
                    await pull_and_join(feed, settings, engine, linker, session)
                except (KamiyoError, OSError) as exc:  # the join failed (the pull keeps its own health)
                    _log.error("feeds.join_failed", source=feed.name, error=str(exc))
                due[feed.name] = loop.time() + feed.interval
                heartbeats.beat("feeds")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, min(due.values()) - loop.time()))
    heartbeats.retire("feeds")
