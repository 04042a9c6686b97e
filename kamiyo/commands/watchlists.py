"""Watchlist commands: `watchlist add|list|show|remove`, and `webhook list|remove` for the webhooks API keys
registered (what the operator audits: where each key sends findings). They write the database the running daemon
reads at every fan-out, so a change is effective at once, without a restart or a reload."""

from __future__ import annotations

import argparse
import json

from . import CONFIG_HELP, in_transaction
from ..errors import InputError
from ..reports.table import render_table


def _as_dict(watchlist, names: dict[int, str]) -> dict:
    return {"id": watchlist.id, "owner": watchlist.owner, "name": watchlist.name,
            "entries": [e.text(names) for e in watchlist.entries], "kinds": list(watchlist.kinds),
            "min_severity": watchlist.min_severity, "channels": list(watchlist.channels),
            "created_at": watchlist.created_at.isoformat()[:19] + "Z"}


def cmd_add(args: argparse.Namespace) -> int:
    from ..config import load
    from ..watchlists import store, webhooks

    settings = load(args.config)
    chains = {c.name: c.chain_id for c in settings.chains}
    entries = [store.parse_entry(text, chains) for text in args.entry or []]
    channels = args.channel or []

    async def add(conn):  # the channels an owner may name include its webhooks: checked against the database
        nameable = webhooks.nameable(args.owner, settings.channels, await webhooks.load(conn, args.owner))
        store.check(args.name, entries, args.min_severity, channels, set(nameable), args.kind)
        return await store.create(conn, args.owner, args.name, entries, kinds=args.kind or [],
                                  min_severity=args.min_severity, channels=channels)

    print(in_transaction(settings, add))
    return 0


def _find(lists, key: str):
    found = [w for w in lists if key in (w.id, w.name)]
    if not found:
        raise InputError(f"no watchlist {key!r} (see `kamiyo watchlist list`)")
    if len(found) > 1:
        raise InputError(f"several watchlists are named {key!r}: give its id ({', '.join(w.id for w in found)})")
    return found[0]


def cmd_list(args: argparse.Namespace) -> int:
    from ..config import load
    from ..watchlists import store

    settings = load(args.config)
    names = {c.chain_id: c.name for c in settings.chains}
    lists = [_as_dict(w, names) for w in in_transaction(settings, lambda conn: store.load(conn, args.owner))]
    if args.format == "json":
        print(json.dumps({"watchlists": lists}, indent=2))
    elif not lists:
        print("no watchlists")
    else:
        print(render_table(("id", "owner", "name", "entries", "min severity", "channels"),
                           [(w["id"], w["owner"], w["name"], len(w["entries"]), w["min_severity"],
                             ", ".join(w["channels"]) or "-") for w in lists], right={3}), end="")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from ..config import load
    from ..watchlists import store

    settings = load(args.config)
    names = {c.chain_id: c.name for c in settings.chains}
    watchlist = _as_dict(_find(in_transaction(settings, store.load), args.key), names)
    if args.format == "json":
        print(json.dumps(watchlist, indent=2))
        return 0
    for field in ("id", "owner", "name", "min_severity", "created_at"):
        print(f"{field + ':':<14}{watchlist[field]}")
    print(f"{'kinds:':<14}{', '.join(watchlist['kinds']) or 'all'}")
    print(f"{'channels:':<14}{', '.join(watchlist['channels']) or 'none'}")
    print("entries (each covers its contract's fork family too):")
    for entry in watchlist["entries"]:
        print(f"  {entry}")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    from ..config import load
    from ..watchlists import store

    settings = load(args.config)

    async def work(conn):
        watchlist = _find(await store.load(conn), args.key)
        await store.remove(conn, watchlist.id)
        return watchlist.id

    print(f"removed {in_transaction(settings, work)}")
    return 0


def cmd_webhook_list(args: argparse.Namespace) -> int:
    """Where API keys send findings: every registered webhook (never its secret), for the operator to audit."""
    from ..config import load
    from ..watchlists import webhooks

    async def read(conn):
        live = {h.id for h in await webhooks.load(conn)}
        return [{**h.public(), "owner": h.key_id, "delivered_to": h.id in live}
                for h in await webhooks.load(conn, args.owner, revoked=True)]

    shown = in_transaction(load(args.config), read)
    if args.format == "json":
        print(json.dumps({"webhooks": shown}, indent=2))
    elif not shown:
        print("no webhooks")
    else:
        print(render_table(("id", "owner", "name", "url", "created", "live"),
                           [(w["id"], w["owner"], w["name"], w["url"], w["created_at"][:16],
                             "yes" if w["delivered_to"] else "no (key revoked)") for w in shown]), end="")
    return 0


def cmd_webhook_remove(args: argparse.Namespace) -> int:
    from ..config import load
    from ..watchlists import webhooks

    if not in_transaction(load(args.config), lambda conn: webhooks.remove(conn, args.id, None)):
        raise InputError(f"no webhook {args.id!r} (see `kamiyo webhook list`)")
    print(f"removed {args.id}; what was pending for it is a dead letter")
    return 0


def register(sub) -> None:
    from ..watchlists.store import OPERATOR

    watch = sub.add_parser("watchlist", help="what protocol teams watch: contracts (and their fork families), "
                                             "protocols").add_subparsers(dest="watchlist_command", required=True)
    add = watch.add_parser("add", help="create a watchlist; prints its id")
    add.add_argument("name")
    add.add_argument("--entry", action="append", metavar="CHAIN:ADDRESS|protocol:NAME", required=True)
    add.add_argument("--channel", action="append", metavar="NAME",
                     help="a configured channel, or the owner key's own webhook (repeatable)")
    add.add_argument("--min-severity", default="info", choices=("critical", "high", "medium", "low", "info"))
    add.add_argument("--kind", action="append", metavar="KIND", help="finding kinds wanted (repeatable; default all)")
    add.add_argument("--owner", default=OPERATOR, metavar="KEY_ID", help="an API key's id (default: operator)")
    add.add_argument("--config", metavar="PATH", help=CONFIG_HELP)
    add.set_defaults(func=cmd_add)
    listing = watch.add_parser("list", help="every watchlist, or one owner's")
    listing.add_argument("--owner", metavar="KEY_ID")
    listing.add_argument("--format", choices=("text", "json"), default="text")
    listing.add_argument("--config", metavar="PATH", help=CONFIG_HELP)
    listing.set_defaults(func=cmd_list)
    show = watch.add_parser("show", help="one watchlist, by id or name")
    show.add_argument("key", metavar="ID|NAME")
    show.add_argument("--format", choices=("text", "json"), default="text")
    show.add_argument("--config", metavar="PATH", help=CONFIG_HELP)
    show.set_defaults(func=cmd_show)
    remove = watch.add_parser("remove", help="delete a watchlist, by id or name")
    remove.add_argument("key", metavar="ID|NAME")
    remove.add_argument("--config", metavar="PATH", help=CONFIG_HELP)
    remove.set_defaults(func=cmd_remove)
    hooks = sub.add_parser("webhook", help="the webhooks API keys registered for themselves").add_subparsers(
        dest="webhook_command", required=True)
    listing = hooks.add_parser("list", help="every key's webhooks (no secrets), or one key's")
    listing.add_argument("--owner", metavar="KEY_ID")
    listing.add_argument("--format", choices=("text", "json"), default="text")
    listing.add_argument("--config", metavar="PATH", help=CONFIG_HELP)
    listing.set_defaults(func=cmd_webhook_list)
    remove = hooks.add_parser("remove", help="remove a key's webhook; what was pending for it is a dead letter")
    remove.add_argument("id", metavar="ID")
    remove.add_argument("--config", metavar="PATH", help=CONFIG_HELP)
    remove.set_defaults(func=cmd_webhook_remove)
