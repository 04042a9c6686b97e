"""`kamiyo run`: one pipeline per configured chain, all in one task group, until a signal says stop.

A chain that fails never stalls another: transient errors are logged and retried with backoff; a chain that must
not go on (its node reports another chain id, a reorg beyond max_reorg_depth) is stopped loudly while the others
continue. SIGTERM and SIGINT only set an event: each pipeline finishes the block it is committing and returns;
after the grace period whatever is left is cancelled, which is safe because every block commits atomically.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import signal
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy.engine import make_url

from .. import log
from ..chains.heads import HeadSignal, WsHeadSubscription
from ..chains.rpc import RpcClient
from ..chains.source import ChainIdMismatch
from ..config import ChainSettings, Settings
from ..errors import KamiyoError
from ..storage.engine import create_engine
from ..storage.migrations import upgrade
from .follower import ReorgTooDeep
from .linking import Linker
from .pipeline import build_pipeline

FATAL = (ChainIdMismatch, ReorgTooDeep)


class DaemonAlreadyRunning(KamiyoError):
    """Another daemon holds this database: two writers would interleave checkpoints."""


@contextlib.contextmanager
def single_daemon(storage) -> Iterator[None]:
    """An exclusive lock beside an SQLite database for the process's lifetime (the kernel drops it on kill -9).
    PostgreSQL deployments get an advisory lock when that backend lands."""
    url = make_url(storage.async_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        yield
        return
    path = Path(url.database + ".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise DaemonAlreadyRunning(f"another kamiyo daemon is running on {url.database} (lock {path})") from exc
        yield
MAX_BACKOFF = 60.0
HEAD_FALLBACK_POLLS = 5  # with a subscription, HTTP is still asked every 5 poll intervals


async def _sleep_unless_stopped(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def follow_chain(chain: ChainSettings, engine, linker: Linker, stop: asyncio.Event) -> None:
    """One chain until `stop`: heads by WebSocket subscription where `ws` is configured (the follower still
    catches up over HTTP, which fills any gap a dropped socket left), else polling every poll_interval."""
    heads = HeadSignal() if chain.ws else None
    watcher = asyncio.create_task(WsHeadSubscription(chain.ws).run(heads.notify, stop),
                                  name=f"{chain.name}.heads") if heads else None
    try:
        await _follow(chain, engine, linker, stop, heads)
    finally:
        if watcher is not None:  # a chain stopped for good must not leave its subscription running
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)


async def _follow(chain: ChainSettings, engine, linker: Linker, stop: asyncio.Event, heads: HeadSignal | None) -> None:
    clog = log.get("kamiyo.daemon").bind(chain=chain.name, chain_id=chain.chain_id)
    backoff = chain.poll_interval
    while not stop.is_set():
        try:
            async with RpcClient(chain.rpc, requests_per_second=chain.requests_per_second) as client:
                follower = build_pipeline(chain, client, engine, linker)
                await follower.start()
                while not stop.is_set():
                    committed = await follower.step()
                    backoff = chain.poll_interval
                    if committed:
                        clog.info("checkpoint.committed", number=follower.cursor[0], blocks=committed)
                    elif heads is not None:
                        # the poll interval stays as a safety net: the ws and http URLs may be different nodes
                        await heads.wait(timeout=chain.poll_interval * HEAD_FALLBACK_POLLS, stop=stop)
                    else:
                        await _sleep_unless_stopped(stop, chain.poll_interval)
        except FATAL as exc:
            clog.error("chain.stopped", error=str(exc))
            return
        except (KamiyoError, OSError) as exc:
            clog.warning("chain.error", error=str(exc), retry_in=round(backoff, 2))
            await _sleep_unless_stopped(stop, backoff)
            backoff = min(MAX_BACKOFF, backoff * 2)


async def run(settings: Settings, stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    dlog = log.get("kamiyo.daemon")
    engine = create_engine(settings.storage)
    try:
        await upgrade(engine)
        linker = await Linker.load(engine)
        dlog.info("daemon.started", chains=[c.name for c in settings.chains], classes=len(linker.lineage))
        tasks = [asyncio.create_task(follow_chain(c, engine, linker, stop), name=c.name) for c in settings.chains]
        if tasks:
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait([stopping, asyncio.gather(*tasks)], return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            done, pending = await asyncio.wait(tasks, timeout=settings.daemon.shutdown_grace)
            for task in pending:  # past the grace period: cancel; the open block's transaction rolls back
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        dlog.info("daemon.stopped")
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await engine.dispose()
