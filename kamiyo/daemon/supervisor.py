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
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

from sqlalchemy.engine import make_url

from .. import log, metrics
from ..chains.heads import HeadSignal, WsHeadSubscription
from ..chains.rpc import RpcClient
from ..chains.source import ChainIdMismatch
from ..config import ChainSettings, Settings
from ..errors import KamiyoError
from ..storage.engine import create_engine
from ..storage.migrations import upgrade
from .follower import ReorgTooDeep
from ..analyzers.tx.runner import AnalyzerSet
from .exploits import load_exploited
from ..alerts.worker import deliver_forever
from .feeds import follow_feeds
from .linking import Linker
from .notify import DEFAULT_MAX_AGE, Heartbeats, SystemdNotifier, watchdog_loop
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


async def follow_chain(chain: ChainSettings, engine, linker: Linker, stop: asyncio.Event,
                       heartbeats: Heartbeats | None = None, analyzers: AnalyzerSet | None = None,
                       watched: dict[str, str | None] | None = None,
                       source_types: dict[str, str] | None = None) -> None:
    """One chain until `stop`: heads by WebSocket subscription where `ws` is configured (the follower still
    catches up over HTTP, which fills any gap a dropped socket left), else polling every poll_interval."""
    heads = HeadSignal() if chain.ws else None
    watcher = asyncio.create_task(WsHeadSubscription(chain.ws).run(heads.notify, stop),
                                  name=f"{chain.name}.heads") if heads else None
    try:
        await _follow(chain, engine, linker, stop, heads, heartbeats or Heartbeats(), analyzers, watched,
                      source_types)
    finally:
        if watcher is not None:  # a chain stopped for good must not leave its subscription running
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)


async def _follow(chain: ChainSettings, engine, linker: Linker, stop: asyncio.Event, heads: HeadSignal | None,
                  heartbeats: Heartbeats, analyzers: AnalyzerSet | None, watched: dict | None,
                  source_types: dict[str, str] | None) -> None:
    clog = log.get("kamiyo.daemon").bind(chain=chain.name, chain_id=chain.chain_id)
    backoff = chain.poll_interval
    while not stop.is_set():
        try:
            async with RpcClient(chain.rpc, requests_per_second=chain.requests_per_second) as client:
                follower = build_pipeline(chain, client, engine, linker, analyzers, watched, source_types)
                try:
                    await follower.start()
                    metrics.CHAIN_UP.labels(chain.name).set(1)
                    while not stop.is_set():
                        heartbeats.beat(chain.name)
                        committed = await follower.step()
                        backoff = chain.poll_interval
                        if committed:
                            clog.info("checkpoint.committed", number=follower.cursor[0], blocks=committed)
                        elif heads is not None:
                            # the poll interval stays a safety net: the ws and http URLs may be different nodes
                            await heads.wait(timeout=chain.poll_interval * HEAD_FALLBACK_POLLS, stop=stop)
                        else:
                            await _sleep_unless_stopped(stop, chain.poll_interval)
                finally:
                    await follower.close()  # prefetches in flight are cancelled, never left behind
        except FATAL as exc:
            metrics.CHAIN_UP.labels(chain.name).set(0)
            clog.error("chain.stopped", error=str(exc))
            heartbeats.retire(chain.name)  # stopped for good: its silence must not hold back the watchdog
            return
        except (KamiyoError, OSError) as exc:
            metrics.CHAIN_UP.labels(chain.name).set(0)
            clog.warning("chain.error", error=str(exc), retry_in=round(backoff, 2))
            await _sleep_unless_stopped(stop, backoff)
            heartbeats.beat(chain.name)  # backing off is slow, not hung
            backoff = min(MAX_BACKOFF, backoff * 2)


class Supervisor:
    """The running pipelines, one task per chain, each with its own stop event so that a reload can stop, add or
    restart one chain while the others go on."""

    def __init__(self, engine, linker: Linker, heartbeats: Heartbeats, grace: float) -> None:
        self.engine, self.linker, self.heartbeats, self.grace = engine, linker, heartbeats, grace
        self.running: dict[str, tuple[ChainSettings, asyncio.Event, asyncio.Task]] = {}
        self.feeds: tuple[Settings, asyncio.Event, asyncio.Task] | None = None
        self.alerts: tuple[Settings, asyncio.Event, asyncio.Task] | None = None
        self.analyzer_config: Settings | None = None  # each chain builds its own analyzers from it (they keep state)
        self.watched: dict[str, dict[str, str | None]] = {}  # chain name -> watched address -> label
        self.log = log.get("kamiyo.daemon")

    def start(self, chain: ChainSettings) -> None:
        stop = asyncio.Event()
        # one set per chain: an analyzer's state (a ledger, recent creations, the blocks it saw) is one chain's
        analyzers = AnalyzerSet.from_settings(self.analyzer_config) if self.analyzer_config is not None else None
        config = self.analyzer_config
        source_types = {f.name: f.type for f in config.feeds} if config is not None else None
        task = asyncio.create_task(follow_chain(chain, self.engine, self.linker, stop, self.heartbeats,
                                                analyzers, self.watched.get(chain.name, {}), source_types),
                                   name=chain.name)
        self.running[chain.name] = (chain, stop, task)

    async def stop(self, names: list[str]) -> None:
        """Stop these pipelines: each finishes the block it is committing; past the grace period it is cancelled
        (safe: every block commits atomically, so the open one rolls back and is redone next time)."""
        entries = [self.running.pop(n) for n in names if n in self.running]
        for _chain, stop, _task in entries:
            stop.set()
        tasks = [task for *_, task in entries]
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=self.grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for name in names:
            self.heartbeats.retire(name)
            metrics.CHAIN_UP.labels(name).set(0)

    async def apply_feeds(self, settings: Settings) -> bool:
        """(Re)start the feeds task when the feeds, or the chains their incidents are joined with, changed."""
        if self.feeds is not None:
            running = self.feeds[0]
            if (running.feeds, running.chains) == (settings.feeds, settings.chains):
                return False
            await self.stop_feeds()
        if settings.feeds:
            stop = asyncio.Event()
            task = asyncio.create_task(follow_feeds(settings, self.engine, self.linker, stop, self.heartbeats),
                                       name="feeds")
            self.feeds = (settings, stop, task)
        return True

    async def apply_alerts(self, settings: Settings) -> bool:
        """(Re)start the delivery worker when the channels or [alerts] changed. It runs without configured
        channels too: API keys' webhooks are delivered by it, and its cursor moving past what nobody wanted
        means a channel added later starts from then, not from the first finding ever stored."""
        if self.alerts is not None:
            running = self.alerts[0]
            if (running.channels, running.alerts) == (settings.channels, settings.alerts):
                return False
            await self.stop_alerts()
        stop = asyncio.Event()
        task = asyncio.create_task(deliver_forever(settings, self.engine, stop, self.heartbeats,
                                                   self.linker.lineage), name="alerts")
        self.alerts = (settings, stop, task)
        return True

    async def stop_alerts(self) -> None:
        if self.alerts is None:
            return
        _settings, stop, task = self.alerts
        self.alerts = None
        stop.set()
        _done, pending = await asyncio.wait([task], timeout=self.grace)
        for late in pending:  # a send in flight is abandoned: its row is still pending, and is sent again
            late.cancel()
        await asyncio.gather(task, return_exceptions=True)

    async def stop_feeds(self) -> None:
        if self.feeds is None:
            return
        _settings, stop, task = self.feeds
        self.feeds = None
        stop.set()
        _done, pending = await asyncio.wait([task], timeout=self.grace)
        for late in pending:  # a pull in flight is abandoned: it writes in one transaction or not at all
            late.cancel()
        await asyncio.gather(task, return_exceptions=True)
        self.heartbeats.retire("feeds")

    def _analyzer_key(self) -> tuple | None:
        """What decides a chain's analyzers: which are enabled and their tables (a threshold changed restarts)."""
        if self.analyzer_config is None:
            return None
        return AnalyzerSet.from_settings(self.analyzer_config).ids, self.analyzer_config.analyzers

    async def apply(self, chains: list[ChainSettings], settings: Settings | None = None) -> dict[str, list[str]]:
        """Make the running set match `chains`: removed ones stop, changed ones restart, new ones start. With
        `settings`, analyzers and watched contracts are taken from it; chains whose share of them changed restart."""
        wanted = {c.name: c for c in chains}
        before = (self._analyzer_key(), dict(self.watched))
        if settings is not None:
            self.analyzer_config = settings
            self.watched = {c.name: settings.watched(c.name) for c in chains}
        analyzers_changed = self._analyzer_key() != before[0]
        retuned = {n for n in wanted if analyzers_changed or self.watched.get(n, {}) != before[1].get(n, {})} \
            if settings is not None else set()
        removed = sorted(set(self.running) - set(wanted))
        changed = sorted(n for n in set(self.running) & set(wanted) if self.running[n][0] != wanted[n] or n in retuned)
        added = sorted(set(wanted) - set(self.running))
        await self.stop(removed + changed)
        for name in changed + added:
            self.start(wanted[name])
        return {"added": added, "removed": removed, "changed": changed}


def _reload(supervisor: Supervisor, settings: Settings, load_settings: Callable[[], Settings],
            notifier: SystemdNotifier) -> Callable[[], Awaitable[Settings]]:
    async def reload() -> Settings:
        nonlocal settings
        notifier.reloading()
        try:
            new = load_settings()
            AnalyzerSet.from_settings(new)  # an analyzer it cannot build refuses the file like a bad key
        except KamiyoError as exc:  # a broken file keeps the running configuration, loudly
            supervisor.log.error("config.reload_failed", error=str(exc))
            notifier.ready(status="reload failed; running the previous configuration")
            return settings
        if new.storage != settings.storage:
            supervisor.log.warning("config.storage_unchanged", detail="[storage] changes need a restart")
        classes = await supervisor.linker.refresh(supervisor.engine)  # known code imported meanwhile
        changes = await supervisor.apply(new.chains, new)
        supervisor.grace = new.daemon.shutdown_grace
        settings = new.model_copy(update={"storage": settings.storage})
        changes["feeds_restarted"] = await supervisor.apply_feeds(settings)
        changes["alerts_restarted"] = await supervisor.apply_alerts(settings)
        supervisor.log.info("config.reloaded", classes_taken_in=classes, **changes)
        notifier.ready(status=_status(supervisor))
        return settings

    return reload


def _status(supervisor: Supervisor) -> str:
    return f"following {len(supervisor.running)} chain(s): {', '.join(sorted(supervisor.running)) or 'none'}"


async def run(settings: Settings, stop: asyncio.Event | None = None,
              load_settings: Callable[[], Settings] | None = None) -> None:
    """The daemon: until SIGTERM/SIGINT (or `stop`). SIGHUP re-reads the configuration through `load_settings`
    and applies its chains without a restart. systemd hears READY, RELOADING, STOPPING and watchdog pings."""
    stop = stop or asyncio.Event()
    hup = asyncio.Event()
    loop = asyncio.get_running_loop()
    handlers = {signal.SIGTERM: stop.set, signal.SIGINT: stop.set, signal.SIGHUP: hup.set}
    for signum, handler in handlers.items():
        loop.add_signal_handler(signum, handler)
    dlog = log.get("kamiyo.daemon")
    engine = create_engine(settings.storage)
    notifier, heartbeats = SystemdNotifier(), Heartbeats()
    exporter = api_runner = None
    try:
        await upgrade(engine)
        if settings.metrics is not None:
            exporter = await metrics.serve(*settings.metrics.address)
        linker = await Linker.load(engine)
        await load_exploited(engine, linker)
        supervisor = Supervisor(engine, linker, heartbeats, settings.daemon.shutdown_grace)
        await supervisor.apply(settings.chains, settings)
        await supervisor.apply_feeds(settings)
        await supervisor.apply_alerts(settings)
        if settings.api is not None:
            from ..api.app import create_app, start

            def readiness_of() -> Callable[[], Awaitable[tuple[bool, dict]]]:
                async def ready() -> tuple[bool, dict]:
                    """Every chain the configuration names is followed and its loop beat recently."""
                    stale = set(heartbeats.stale(time.monotonic(), _max_age(settings)))
                    chains = {name: "stalled" if name in stale else "following" for name in supervisor.running}
                    missing = [c.name for c in settings.chains if c.name not in supervisor.running]
                    chains |= {name: "stopped" for name in missing}
                    return all(v == "following" for v in chains.values()), {"chains": chains}

                return ready

            api_runner = await start(create_app(engine, settings, read_only=False, ready=readiness_of()),
                                     *settings.api.address, shutdown_timeout=settings.daemon.shutdown_grace)
        reload = _reload(supervisor, settings, load_settings or (lambda: settings), notifier)
        dlog.info("daemon.started", chains=sorted(supervisor.running), classes=len(linker.lineage))
        notifier.ready(status=_status(supervisor))
        watchdog = asyncio.create_task(watchdog_loop(notifier, heartbeats, stop, max_age=_max_age(settings)))
        while not stop.is_set():
            waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(hup.wait())]
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()
            if hup.is_set() and not stop.is_set():
                hup.clear()
                settings = await reload()
        notifier.stopping()
        await supervisor.stop_feeds()
        await supervisor.stop(list(supervisor.running))
        await supervisor.stop_alerts()  # last: what the chains committed while stopping is still sent
        await watchdog
        dlog.info("daemon.stopped")
    finally:
        for signum in handlers:
            loop.remove_signal_handler(signum)
        notifier.close()
        if exporter is not None:
            await exporter.cleanup()
        if api_runner is not None:
            await api_runner.cleanup()
        await engine.dispose()


def _max_age(settings: Settings) -> float:
    """How long a pipeline may go without a heartbeat before the watchdog is withheld: its slowest honest wait
    (a subscribed chain still polls every HEAD_FALLBACK_POLLS intervals) three times over, at least five minutes."""
    slowest = max((c.poll_interval * HEAD_FALLBACK_POLLS for c in settings.chains), default=0.0)
    return max(DEFAULT_MAX_AGE, 3 * slowest, 3 * MAX_BACKOFF)
