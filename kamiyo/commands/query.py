"""Read commands over the daemon's database: `forks`, `graph export`, `findings`.

They only read: a missing database, or one at another schema version, is refused with one line, never created
or migrated (that is `kamiyo db upgrade`). They may run while the daemon writes: SQLite in WAL mode lets readers
see the last committed block without holding the writer up. Every user mistake is an InputError (one line).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import tempfile
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from . import CONFIG_HELP
from ..errors import InputError

# `json` is networkx node-link (with schema_version), the document `kamiyo families --format node-link` writes
GRAPH_FORMATS = {"json": "node-link", "graphml": "graphml", "gexf": "gexf", "csv": "csv", "dot": "dot",
                 "text": "text", "png": "png"}
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}\Z")
T = TypeVar("T")


def _chain_names(settings) -> dict[int, str]:
    return {chain.chain_id: chain.name for chain in settings.chains}


def _chain_id(settings, text: str) -> int:
    """A configured chain's name, or a chain id in decimal (how reports show chains no longer configured)."""
    for chain in settings.chains:
        if chain.name == text:
            return chain.chain_id
    if text.isascii() and text.isdecimal() and int(text) > 0:
        return int(text)
    known = ", ".join(chain.name for chain in settings.chains) or "none"
    raise InputError(f"no chain named {text!r} in the configuration (configured: {known}; a decimal chain id "
                     "also works)", chain=text)


def _subject(settings, text: str) -> tuple[int, str]:
    chain, sep, address = text.partition(":")
    if not sep or not chain:
        raise InputError(f"{text!r}: expected CHAIN:ADDRESS, e.g. eth:0x5c69bee701ef814a2b6a3edd4b1652cb9cc5aa6f")
    if not _ADDRESS.match(address):
        raise InputError(f"{address!r}: not an address (0x and 40 hex digits)")
    return _chain_id(settings, chain), address.lower()  # stored addresses are lowercase


def _limit(text: str) -> int:
    if not (text.isascii() and text.isdecimal()):
        raise InputError(f"--limit {text!r}: expected a whole number, 0 or more")
    return int(text)


def _since(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        raise InputError(f"--since {text!r}: expected an ISO 8601 date or time, e.g. 2024-05-01 or "
                         "2024-05-01T12:00:00Z (no offset: UTC)") from None


def _read(settings, report: Callable[..., Awaitable[T]]) -> T:
    """Run `report(engine)` on the configured database, opened for reading, and close it."""
    from sqlalchemy.exc import SQLAlchemyError

    from ..storage.reading import DatabaseUnavailable, open_for_reading

    async def run() -> T:
        engine = await open_for_reading(settings.storage)
        try:
            return await report(engine)
        except SQLAlchemyError as exc:  # locked past the busy timeout, a server gone: one line, not a traceback
            raise DatabaseUnavailable(f"cannot read the database: {getattr(exc, 'orig', None) or exc}") from exc
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _write(target: str, payload: bytes) -> None:
    """To stdout for "-"; else beside the target and renamed over it, so a reader never sees half an export."""
    if target == "-":
        sys.stdout.buffer.write(payload)
        sys.stdout.buffer.flush()
        return
    path = Path(target)
    try:
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(payload)
            os.replace(temporary, path)
        except BaseException:
            os.unlink(temporary)
            raise
    except OSError as exc:
        raise InputError(f"{target}: cannot write ({exc.strerror})") from exc


def _print_json(data: dict) -> None:
    print(json.dumps(data, indent=2))


def cmd_forks(args: argparse.Namespace) -> int:
    from ..config import load
    from ..reports.forks import forks_report, render_text

    settings = load(args.config)
    chain_id, address = _subject(settings, args.subject)
    limit = _limit(args.limit)
    report = _read(settings, lambda engine: forks_report(engine, chain_id, address, _chain_names(settings), limit))
    if args.format == "json":
        _print_json(report)
    else:
        sys.stdout.write(render_text(report))
    return 0


def cmd_graph_export(args: argparse.Namespace) -> int:
    from ..analyzers.bytecode.graph import export_graph
    from ..config import load
    from ..reports.graph import live_graph, render_text, summary, to_networkx

    settings = load(args.config)
    data = _read(settings, lambda engine: live_graph(engine, _chain_names(settings)))
    fmt = GRAPH_FORMATS[args.format]
    if fmt == "text":
        payload = render_text(data).encode()
    elif fmt == "png":  # a picture of the largest families
        from ..analyzers.bytecode.picture import render_png

        payload = render_png(to_networkx(data))
    else:
        payload = export_graph(to_networkx(data), fmt)
    _write(args.out, payload)
    if args.out != "-":
        counts = summary(data)
        print(f"{args.out}: {counts['nodes']} nodes, {counts['edges']} edges, {counts['families']} families "
              f"({args.format})", file=sys.stderr)
    return 0


def _print_limited(report: dict, key: str, limit: int, fmt: str | None, render_text) -> None:
    """Print a report fetched with limit + 1 rows: the first `limit`, and a note on stderr when more matched."""
    cut = len(report[key]) > limit
    report[key] = report[key][:limit]
    if (fmt or "json") == "json":
        _print_json(report)
    else:
        sys.stdout.write(render_text(report))
    if cut:
        print(f"kamiyo: more {key} match than the {limit} shown (narrow with --since, or raise --limit)",
              file=sys.stderr)


def cmd_findings(args: argparse.Namespace) -> int:
    from ..config import load
    from ..reports.findings import findings_report, render_text

    settings = load(args.config)
    since = _since(args.since) if args.since is not None else None
    chain_id = _chain_id(settings, args.chain) if args.chain is not None else None
    limit = _limit(args.limit)
    # one more than is shown: whether the list was cut is then known without counting every match
    report = _read(settings, lambda engine: findings_report(engine, _chain_names(settings), since=since,
                                                            kind=args.kind, chain_id=chain_id, status=args.status,
                                                            limit=limit + 1))
    _print_limited(report, "findings", limit, args.format, render_text)
    return 0


def register(sub) -> None:
    """Add `forks`, `graph export` and `findings` to the `kamiyo` subparsers."""
    forks = sub.add_parser("forks", help="the family of one stored deployment: its copies, clones, forks and proxies "
                                         "on every chain, and imported code")
    forks.add_argument("subject", metavar="CHAIN:ADDRESS", help="a configured chain's name and a deployment's address")
    forks.add_argument("--format", choices=("json", "text"), default="json")
    forks.add_argument("--limit", default="1000", metavar="N", help="list at most N related (default 1000); "
                                                                    "`total` counts them all")
    forks.add_argument("--config", metavar="PATH", help=CONFIG_HELP)
    forks.set_defaults(func=cmd_forks)

    graph = sub.add_parser("graph", help="the live fork graph").add_subparsers(dest="graph_command", required=True)
    export = graph.add_parser("export", help="write the fork graph of everything stored: classes, links, delegations")
    export.add_argument("--format", required=True, choices=tuple(GRAPH_FORMATS),
                        help="json (networkx node-link), graphml, gexf, csv (edges), dot, or text (families)")
    export.add_argument("--out", required=True, metavar="FILE", help="where to write; - for stdout")
    export.add_argument("--config", metavar="PATH", help=CONFIG_HELP)
    export.set_defaults(func=cmd_graph_export)

    findings = sub.add_parser("findings", help="stored findings, oldest first")
    findings.add_argument("--since", metavar="ISO", help="created at or after this date or time (no offset: UTC)")
    findings.add_argument("--kind", metavar="K", help="e.g. fork-detected")
    findings.add_argument("--chain", metavar="NAME", help="a configured chain's name (or a decimal chain id)")
    findings.add_argument("--status", choices=("active", "retracted", "all"), default="active",
                          help="retracted: taken back by a reorg (default: active)")
    findings.add_argument("--limit", default="1000", metavar="N", help="show at most N (default 1000)")
    findings.add_argument("--format", choices=("json", "text"), default="json")
    findings.add_argument("--config", metavar="PATH", help=CONFIG_HELP)
    findings.set_defaults(func=cmd_findings)
