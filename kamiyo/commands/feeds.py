"""Feed commands: `feeds pull` (one pass over the configured sources, with progress), `sources` (their health and
how many incidents each knows), `incidents` (the merged incidents) and `incidents show ID` (one, and why).

The read commands only read, as in query.py: a missing database or one at another schema version is refused with
one line. Every user mistake is an InputError (one line, exit 2).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import date

from . import CONFIG_HELP
from ..errors import InputError
from ..reports.table import render_table
from .query import _chain_names, _limit, _print_json, _print_limited, _read


def cmd_feeds_pull(args: argparse.Namespace) -> int:
    import aiohttp
    from tqdm import tqdm

    from ..config import load
    from ..daemon.exploits import load_exploited
    from ..daemon.feeds import pull_and_join
    from ..daemon.linking import Linker
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
            linker = await Linker.load(engine)
            await load_exploited(engine, linker)
            async with aiohttp.ClientSession() as session:
                results, created = [], 0
                with tqdm(total=len(feeds), desc="pulling", unit=" feeds", file=sys.stderr, delay=0.5) as bar:
                    for feed in feeds:  # one after another: a broken source only costs its own time
                        result, findings = await pull_and_join(feed, settings, engine, linker, session)
                        results.append(result)
                        created += len(findings)
                        bar.update()
                return results, created
        finally:
            await engine.dispose()

    results, created = asyncio.run(run())
    print(render_table(["source", "status", "records", "new", "changed", "error"],
                       [[r.source, r.status, r.records, r.new, r.changed, (r.error or "")[:80]] for r in results],
                       right=(2, 3, 4)))
    if created:
        print(f"{created} new fork-of-exploited finding(s): kamiyo findings --kind fork-of-exploited")
    return 0 if all(r.status != "failed" for r in results) else 1


def cmd_sources(args: argparse.Namespace) -> int:
    from sqlalchemy import func, select

    from ..config import load
    from ..reports.incidents import source_counts, summary_line
    from ..storage.schema import feed_records, feed_state

    settings = load(args.config)

    async def report(engine):
        async with engine.connect() as conn:
            counts = dict((await conn.execute(select(feed_records.c.source, func.count())
                                              .group_by(feed_records.c.source))).all())
            states = {r.source: r for r in await conn.execute(select(feed_state))}
        return counts, states, await source_counts(engine)

    counts, states, merged = _read(settings, report)
    rows = []
    for feed in settings.feeds:
        state = states.get(feed.name)
        failed = state is not None and state.last_error_at is not None
        rows.append([feed.name, feed.type, counts.get(feed.name, 0), merged["per_source"].get(feed.name, 0),
                     _when(state.last_success) if state else "never",
                     _when(state.last_error_at) + " " + _short(state.last_error or "") if failed else ""])
    print(render_table(["source", "type", "records", "incidents", "last success", "last error"], rows,
                       right=(2, 3)), end="")
    print(summary_line(merged))
    return 0


def _since_day(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InputError(f"--since {text!r}: expected an ISO 8601 date, e.g. 2024-05-01") from None


def _incident_chain(settings, text: str) -> int | str:
    """A configured chain's name, a decimal chain id, any name the chain registry knows, else the name itself
    (feeds keep the chain names the registry does not know, such as "Solana", as they wrote them)."""
    from ..chains.registry import chain_id_of

    for chain in settings.chains:
        if chain.name == text:
            return chain.chain_id
    if text.isascii() and text.isdecimal() and len(text) <= 20 and int(text) > 0:
        return int(text)
    found = chain_id_of(text)
    if found is not None:
        return found
    if not text.strip():
        raise InputError("--chain: expected a chain's name or id")
    return text.strip()


def cmd_incidents(args: argparse.Namespace) -> int:
    from ..config import load
    from ..reports.incidents import incidents_report, render_text

    settings = load(args.config)
    since = _since_day(args.since) if args.since is not None else None
    chain = _incident_chain(settings, args.chain) if args.chain is not None else None
    limit = _limit(args.limit)
    # one more than is shown: whether the list was cut is then known without counting every match
    report = _read(settings, lambda engine: incidents_report(engine, _chain_names(settings), since=since,
                                                             chain=chain, limit=limit + 1))
    _print_limited(report, "incidents", limit, args.format, render_text)
    return 0


def cmd_incident_show(args: argparse.Namespace) -> int:
    from ..config import load
    from ..reports.incidents import incident_detail, render_detail

    settings = load(args.config)
    detail = _read(settings, lambda engine: incident_detail(engine, _chain_names(settings), args.id))
    if detail is None:
        raise InputError(f"no incident {args.id!r} is stored (`kamiyo incidents` lists them)", incident=args.id)
    if (args.format or "text") == "json":
        _print_json(detail)
    else:
        sys.stdout.write(render_detail(detail))
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

    sources = sub.add_parser("sources", help="the configured feeds: records stored, incidents they tell of, last "
                                             "success, last error")
    sources.add_argument("--config", metavar="PATH", help=CONFIG_HELP)
    sources.set_defaults(func=cmd_sources)

    # `--format` defaults differ (the list is data, json; one incident is read by people, text), so the parent's
    # is None and `show`'s options are SUPPRESSed: given before or after `show`, an option is not reset
    incidents = sub.add_parser("incidents", help="incidents merged from the stored feed records, oldest first; "
                                                 "`incidents show ID` for one, and why it is one")
    incidents.add_argument("--since", metavar="DATE", help="on or after this day (ISO 8601, e.g. 2024-05-01)")
    incidents.add_argument("--chain", metavar="NAME", help="a configured chain's name, a chain id, or a chain name "
                                                           "the registry or a feed knows")
    incidents.add_argument("--limit", default="1000", metavar="N", help="show at most N (default 1000)")
    incidents.add_argument("--format", choices=("json", "text"), default=None, help="default json")
    incidents.add_argument("--config", metavar="PATH", help=CONFIG_HELP)
    incidents.set_defaults(func=cmd_incidents)
    actions = incidents.add_subparsers(dest="incidents_command", metavar="show")
    show = actions.add_parser("show", help="one incident: its fields, why its records are one incident, every record")
    show.add_argument("id", metavar="ID", help="an incident id, e.g. inc-14e4d12f37ab599d")
    show.add_argument("--format", choices=("text", "json"), default=argparse.SUPPRESS, help="default text")
    show.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help=CONFIG_HELP)
    show.set_defaults(func=cmd_incident_show)
