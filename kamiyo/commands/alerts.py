"""Alert commands: `alerts dead-letters` (what gave up, and why), `alerts redrive ID|--all` (send them again),
`alerts suppress|suppressions|unsuppress` (known noise silenced while the daemon runs) and `channel test NAME`
(one signed test delivery now, its outcome printed).

Redriving only resets rows: the running daemon's worker sends them at its next look (within a second), or the
next `kamiyo run` does. A user mistake is an InputError (one line, exit 2).
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import datetime, timezone

from . import CONFIG_HELP, in_transaction
from ..errors import InputError
from ..reports.table import render_table
from .query import _print_json, _read


def _dead_rows(engine):
    from sqlalchemy import select

    from ..alerts.worker import DEAD
    from ..storage.schema import deliveries

    async def read():
        async with engine.connect() as conn:
            rows = (await conn.execute(select(deliveries).where(deliveries.c.status == DEAD)
                                       .order_by(deliveries.c.id))).all()
        return [{"id": r.id, "channel": r.channel, "fingerprint": r.fingerprint, "event": r.event,
                 "attempts": r.attempts, "last_error": r.last_error,
                 "created_at": r.created_at.replace(tzinfo=timezone.utc).isoformat().replace("+00:00", "Z")}
                for r in rows]

    return read()


def cmd_dead_letters(args: argparse.Namespace) -> int:
    from ..config import load

    rows = _read(load(args.config), _dead_rows)
    if args.format == "json":
        _print_json({"dead_letters": rows})
    elif not rows:
        print("no dead letters")
    else:
        print(render_table(("id", "channel", "event", "fingerprint", "attempts", "last error"),
                           [(r["id"], r["channel"], r["event"], r["fingerprint"][:18] + "…", r["attempts"],
                             (r["last_error"] or "")[:60]) for r in rows], right={0, 4}), end="")
    return 0


def cmd_redrive(args: argparse.Namespace) -> int:
    from sqlalchemy import and_, update

    from ..alerts.worker import DEAD, PENDING
    from ..config import load
    from ..storage.engine import create_engine
    from ..storage.schema import deliveries

    if args.all == (args.id is not None):
        raise InputError("give one dead letter's ID, or --all")
    settings = load(args.config)

    async def run() -> int:
        engine = create_engine(settings.storage)
        try:
            where = deliveries.c.status == DEAD
            if args.id is not None:
                where = and_(where, deliveries.c.id == args.id)
            async with engine.begin() as conn:
                result = await conn.execute(update(deliveries).where(where).values(
                    status=PENDING, attempts=0, next_attempt_at=datetime.now(timezone.utc)))
            return result.rowcount
        finally:
            await engine.dispose()

    count = asyncio.run(run())
    if args.id is not None and not count:
        raise InputError(f"no dead letter with id {args.id} (see `kamiyo alerts dead-letters`)")
    print(f"{count} delivery(ies) queued again; the daemon's worker sends them at its next look")
    return 0


def cmd_suppress(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from ..alerts import suppressions
    from ..config import SuppressionSettings, load

    settings = load(args.config)
    try:
        rule = SuppressionSettings(fingerprint=args.fingerprint, kind=args.kind, address=args.address,
                                   reason=args.reason)
    except ValidationError as exc:
        raise InputError("suppression: " + "; ".join(e["msg"].removeprefix("Value error, ")
                                                     for e in exc.errors(include_url=False))) from None
    print(in_transaction(settings, lambda conn: suppressions.add(conn, rule)).id)
    return 0


def cmd_suppressions(args: argparse.Namespace) -> int:
    from ..alerts import suppressions
    from ..config import load

    settings = load(args.config)
    rows = [{"id": None, "source": "config", "owner": None, "fingerprint": r.fingerprint, "kind": r.kind,
             "address": r.address, "reason": r.reason} for r in settings.alerts.suppress]
    rows += [{"id": s.id, "source": "added " + s.created_at.strftime("%Y-%m-%d %H:%M"), "owner": s.owner,
              "fingerprint": s.rule.fingerprint, "kind": s.rule.kind, "address": s.rule.address,
              "reason": s.rule.reason} for s in in_transaction(settings, suppressions.load)]
    if args.format == "json":
        _print_json({"suppressions": rows})
    elif not rows:
        print("no suppressions")
    else:
        print(render_table(("id", "source", "channels", "silences", "reason"),
                           [(r["id"] or "-", r["source"], f"{r['owner']}'s webhooks" if r["owner"] else "all",
                             r["fingerprint"] or f"{r['kind']} @ {r['address']}", r["reason"][:60])
                            for r in rows]), end="")
    return 0


def cmd_unsuppress(args: argparse.Namespace) -> int:
    from ..alerts import suppressions
    from ..config import load

    if not in_transaction(load(args.config), lambda conn: suppressions.remove(conn, args.id)):
        raise InputError(f"no suppression {args.id!r} added at run time (see `kamiyo alerts suppressions`; "
                         "those from the configuration are removed there)")
    print(f"suppression {args.id} removed; the next matching finding is delivered")
    return 0


def cmd_channel_test(args: argparse.Namespace) -> int:
    from ..alerts.channels import TEST_EVENT, send_to, test_finding
    from ..alerts.network import NetworkPolicy
    from ..alerts.outcome import Delivered
    from ..config import load

    settings = load(args.config)
    channel = next((c for c in settings.channels if c.name == args.name), None)
    if channel is None:
        known = ", ".join(c.name for c in settings.channels) or "none"
        raise InputError(f"no channel named {args.name!r} in the configuration (configured: {known})")
    outcome = asyncio.run(send_to(channel, TEST_EVENT, test_finding(channel.name),
                                  NetworkPolicy.from_strings(settings.alerts.allow_networks),
                                  settings.alerts.timeout_seconds))
    if not isinstance(outcome, Delivered):
        raise InputError(f"channel {channel.name}: {outcome.error}")
    print(f"channel {channel.name}: delivered ({'SMTP' if channel.type == 'email' else 'HTTP'} {outcome.status})")
    return 0


def register(sub) -> None:
    alerts = sub.add_parser("alerts", help="alert deliveries").add_subparsers(dest="alerts_command", required=True)
    dead = alerts.add_parser("dead-letters", help="deliveries that gave up, with their last error")
    dead.add_argument("--format", choices=("text", "json"), default="text")
    dead.add_argument("--config", metavar="PATH", help=CONFIG_HELP)
    dead.set_defaults(func=cmd_dead_letters)
    redrive = alerts.add_parser("redrive", help="queue dead letters again: one by ID, or --all")
    redrive.add_argument("id", nargs="?", type=int, metavar="ID")
    redrive.add_argument("--all", action="store_true")
    redrive.add_argument("--config", metavar="PATH", help=CONFIG_HELP)
    redrive.set_defaults(func=cmd_redrive)
    suppress = alerts.add_parser("suppress", help="silence known noise on every channel, effective at once: one "
                                                  "finding (--fingerprint) or an analyzer's findings about an "
                                                  "address (--kind and --address)")
    suppress.add_argument("--fingerprint", metavar="ID")
    suppress.add_argument("--kind", metavar="ANALYZER")
    suppress.add_argument("--address", metavar="0x…")
    suppress.add_argument("--reason", required=True, help="why: kept with each delivery it silences")
    suppress.add_argument("--config", metavar="PATH", help=CONFIG_HELP)
    suppress.set_defaults(func=cmd_suppress)
    listed = alerts.add_parser("suppressions", help="every suppression: the configuration's and those added")
    listed.add_argument("--format", choices=("text", "json"), default="text")
    listed.add_argument("--config", metavar="PATH", help=CONFIG_HELP)
    listed.set_defaults(func=cmd_suppressions)
    unsuppress = alerts.add_parser("unsuppress", help="remove a suppression added with `alerts suppress`")
    unsuppress.add_argument("id", metavar="ID")
    unsuppress.add_argument("--config", metavar="PATH", help=CONFIG_HELP)
    unsuppress.set_defaults(func=cmd_unsuppress)
    channel = sub.add_parser("channel", help="alert channels").add_subparsers(dest="channel_command", required=True)
    test = channel.add_parser("test", help="send one signed test delivery to a configured channel now")
    test.add_argument("name", metavar="NAME")
    test.add_argument("--config", metavar="PATH", help=CONFIG_HELP)
    test.set_defaults(func=cmd_channel_test)
