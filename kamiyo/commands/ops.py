"""Operator commands: `db backup`, `backfill`, `index import`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from . import CONFIG_HELP
from ..errors import InputError

RELOAD_HINT = "a running daemon takes this in at its next reload (systemctl reload kamiyo, or SIGHUP)"


def _engine(settings):
    from ..storage.engine import create_engine

    return create_engine(settings.storage)


def cmd_db_backup(args: argparse.Namespace) -> int:
    from ..config import load
    from ..storage.backup import backup_database

    settings = load(args.config)
    result = asyncio.run(backup_database(settings.storage, Path(args.path), overwrite=args.overwrite))
    print(f"{result.dest}: {result.pages} pages, {result.bytes:,} bytes, consistent as of one committed transaction")
    return 0


def cmd_backfill(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..config import load
    from ..daemon.backfill import backfill
    from ..daemon.linking import Linker
    from ..storage.migrations import upgrade

    settings = load(args.config)
    try:
        chain = settings.chain(args.chain)
    except KeyError:
        known = ", ".join(c.name for c in settings.chains) or "none"
        raise InputError(f"no chain named {args.chain!r} in the configuration (configured: {known})") from None

    async def run():
        engine = _engine(settings)
        try:
            await upgrade(engine)
            linker = await Linker.load(engine)
            with tqdm(total=args.last - args.first + 1, desc=f"backfill {chain.name}", unit=" blocks",
                      file=sys.stderr, delay=0.5) as bar:
                return await backfill(chain, engine, linker, args.first, args.last, bar.update)
        finally:
            await engine.dispose()

    result = asyncio.run(run())
    print(f"{chain.name}: blocks {args.first}..{args.last}: {result.blocks} blocks, {result.deployments} deployments, "
          f"{result.findings} new findings")
    print(RELOAD_HINT, file=sys.stderr)
    return 0


def cmd_index_import(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..analyzers.bytecode.inputs import read_inputs
    from ..config import load
    from ..daemon.imports import import_known_code
    from ..daemon.linking import Linker
    from ..storage.migrations import upgrade

    settings = load(args.config)
    label = args.label.strip()
    if not label or len(label) > 100 or not label.isprintable():
        raise InputError(f"--label {args.label!r}: a label is 1 to 100 printable characters")
    skipped: list[str] = []

    async def run():
        engine = _engine(settings)
        try:
            await upgrade(engine)
            linker = await Linker.load(engine)
            with tqdm(desc=f"import {label}", unit=" contracts", file=sys.stderr, delay=0.5) as bar:
                items = read_inputs([Path(p) for p in args.input], skipped)
                return await import_known_code(engine, linker, label, items, bar.update)
        finally:
            await engine.dispose()

    result = asyncio.run(run())
    for line in skipped:
        print(f"kamiyo: {line}", file=sys.stderr)
    print(f"{label}: {result.contracts} contracts imported, {result.new_classes} new classes, "
          f"{result.links} links to code already known, {len(result.families)} families")
    print(RELOAD_HINT, file=sys.stderr)
    return 0


def _block(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a block number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"not a block number: {text!r}")
    return value


def register(sub, db) -> None:
    backup = db.add_parser("backup", help="an online, consistent copy of the SQLite database")
    backup.add_argument("path", metavar="PATH")
    backup.add_argument("--overwrite", action="store_true", help="replace PATH if it exists")
    backup.add_argument("--config", metavar="PATH", help=CONFIG_HELP)
    backup.set_defaults(func=cmd_db_backup)

    fill = sub.add_parser("backfill", help="process a range of past blocks of one chain (its checkpoint stays)")
    fill.add_argument("--chain", required=True, metavar="NAME", help="the chain's slug in the configuration")
    fill.add_argument("--from", dest="first", required=True, type=_block, metavar="N")
    fill.add_argument("--to", dest="last", required=True, type=_block, metavar="M")
    fill.add_argument("--config", metavar="PATH", help=CONFIG_HELP)
    fill.set_defaults(func=cmd_backfill)

    index = sub.add_parser("index", help="the fork index").add_subparsers(dest="index_command", required=True)
    imp = index.add_parser("import", help="add known code (the `families` input formats) under a label")
    imp.add_argument("--input", action="append", required=True, metavar="PATH")
    imp.add_argument("--label", required=True, metavar="NAME", help="what the code is, e.g. uniswap-v2")
    imp.add_argument("--config", metavar="PATH", help=CONFIG_HELP)
    imp.set_defaults(func=cmd_index_import)
