"""Feed commands: `feeds pull` (one pass over the configured sources, with progress) and `sources` (their health)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from . import CONFIG_HELP
from ..errors import InputError
from ..reports.table import render_table


def cmd_feeds_pull(args: argparse.Namespace) -> int:
    import aiohttp
    from tqdm import tqdm

    from ..config import load
    from ..feeds.pull import pull
    from ..storage.engine import create_engine
    from ..storage.migrations import upgrade

    settings = load(args.config)
    feeds = list(settings.feeds)
    if args.source is not None:
        try:
            feeds = [settings.feed(args.source)]
        except KeyError:
            known = ", ".join(f.name for f in settings.feeds) or "none"
            raise InputError(f"no feed named {args.source!r} in the configuration (configured: {known})") from None
    if not feeds:
        raise InputError("no [[feeds]] in the configuration")

    async def run():
        engine = create_engine(settings.storage)
        try:
            await upgrade(engine)
            async with aiohttp.ClientSession() as session:
                results = []
                with tqdm(total=len(feeds), desc="pulling", unit=" feeds", file=sys.stderr, delay=0.5) as bar:
                    for feed in feeds:  # one after another: a broken source only costs its own time
                        results.append(await pull(feed, engine, session))
                        bar.update()
                return results
        finally:
            await engine.dispose()

    results = asyncio.run(run())
    print(render_table(["source", "status", "records", "new", "changed", "error"],
                       [[r.source, r.status, r.records, r.new, r.changed, (r.error or "")[:80]] for r in results],
                       right=(2, 3, 4)))
    return 0 if all(r.status != "failed" for r in results) else 1


def cmd_sources(args: argparse.Namespace) -> int:
    from sqlalchemy import func, select

    from ..config import load
    from ..storage.reading import open_for_reading
    from ..storage.schema import feed_records, feed_state

    settings = load(args.config)

    async def run():
        engine = await open_for_reading(settings.storage)
        try:
            async with engine.connect() as conn:
                counts = dict((await conn.execute(select(feed_records.c.source, func.count())
                                                  .group_by(feed_records.c.source))).all())
                states = {r.source: r for r in await conn.execute(select(feed_state))}
            return counts, states
        finally:
            await engine.dispose()

    counts, states = asyncio.run(run())
    rows = []
    for feed in settings.feeds:
        state = states.get(feed.name)
        rows.append([feed.name, feed.type, counts.get(feed.name, 0),
                     _when(state.last_success) if state else "never",
                     (_when(state.last_error_at) + " " + _short(state.last_error or "")) if state and state.last_error_at
                     else ""])
    print(render_table(["source", "type", "records", "last success", "last error"], rows, right=(2,)))
    return 0


def _short(text: str, width: int = 90) -> str:
    return text if len(text) <= width else "…" + text[-width + 1:]  # the end of an error says what went wrong


def _when(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%SZ") if value else "never"


def register(sub) -> None:
    feeds = sub.add_parser("feeds", help="off-chain exploit feeds").add_subparsers(dest="feeds_command", required=True)
    pull = feeds.add_parser("pull", help="pull every configured feed once (or one, with --source)")
    pull.add_argument("--source", metavar="NAME")
    pull.add_argument("--config", metavar="PATH", help=CONFIG_HELP)
    pull.set_defaults(func=cmd_feeds_pull)

    sources = sub.add_parser("sources", help="the configured feeds: records stored, last success, last error")
    sources.add_argument("--config", metavar="PATH", help=CONFIG_HELP)
    sources.set_defaults(func=cmd_sources)
