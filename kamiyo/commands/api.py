"""API commands: `apikey create|list|revoke` (keys in the database; a secret is printed once, when it is made) and
`api` (the HTTP API alone, read-only, until SIGTERM or SIGINT).

`kamiyo api` reads a database the daemon writes: it opens it only if it exists at this schema (never creating or
migrating it, never taking the daemon's lock) and refuses every change (405), so it can run beside `kamiyo run`
or over a backup copy. `--workers N` runs N such processes on the one port (SO_REUSEPORT: the kernel spreads the
connections), one event loop per core; a key's day quota is shared by them through the database. A user mistake
is an InputError (one line, exit 2).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
import time

from . import CONFIG_HELP, in_transaction
from ..errors import InputError
from ..reports.table import render_table


def cmd_apikey_create(args: argparse.Namespace) -> int:
    from ..api import keys
    from ..config import load

    settings = load(args.config)
    tier = args.tier or (settings.api.default_tier if settings.api is not None else "free")
    scopes = sorted(set(args.scope or [keys.READ]))
    keys.check_request(args.name, tier, scopes)  # before the database is touched
    key, secret = in_transaction(settings, lambda conn: keys.create(conn, args.name, tier=tier, scopes=scopes))
    if args.format == "json":
        print(json.dumps({**key.public(), "secret": secret}, indent=2))
    else:
        print(f"id:     {key.id}\nsecret: {secret}\ntier:   {key.tier}\nscopes: {', '.join(sorted(key.scopes))}")
        print("the secret is shown this once and stored only as a hash: keep it now")
    return 0


def cmd_apikey_list(args: argparse.Namespace) -> int:
    from ..api import keys
    from ..config import load

    found = [key.public() for key in in_transaction(load(args.config), keys.list_keys)]
    if args.format == "json":
        print(json.dumps({"keys": found}, indent=2))
    elif not found:
        print("no API keys")
    else:
        print(render_table(("id", "name", "tier", "scopes", "created", "revoked"),
                           [(k["id"], k["name"], k["tier"], ",".join(k["scopes"]), k["created_at"][:19] + "Z",
                             (k["revoked_at"][:19] + "Z") if k["revoked_at"] else "-") for k in found]), end="")
    return 0


def cmd_apikey_revoke(args: argparse.Namespace) -> int:
    from ..api import keys
    from ..config import load

    key = in_transaction(load(args.config), lambda conn: keys.revoke(conn, args.id))
    print(f"revoked {key.id} ({key.name}) at {key.public()['revoked_at']}")
    return 0


async def serve(settings, stop: asyncio.Event | None = None, *, reuse_port: bool = False) -> None:
    """The read-only API on `[api] listen` until SIGTERM/SIGINT (or `stop`); requests in flight get the
    daemon's shutdown grace to finish."""
    from .. import log
    from ..api import create_app, start
    from ..storage.reading import open_for_reading

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    for signum in signals:
        loop.add_signal_handler(signum, stop.set)
    try:
        engine = await open_for_reading(settings.storage)
        try:
            app = create_app(engine, settings, read_only=True)
            runner = await start(app, *settings.api.address, shutdown_timeout=settings.daemon.shutdown_grace,
                                 reuse_port=reuse_port)
            try:
                await stop.wait()
            finally:
                await runner.cleanup()
            log.get("kamiyo.api").info("api.stopped")
        finally:
            await engine.dispose()
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)


def cmd_api(args: argparse.Namespace) -> int:
    from ..config import config_path, load

    settings = load(args.config)
    if settings.api is None:
        raise InputError(f"{config_path(args.config)}: no [api] table, so nowhere to listen (add [api] with "
                         'listen = "127.0.0.1:8080")')
    if args.workers == 1 or args.reuse_port:
        asyncio.run(serve(settings, reuse_port=args.reuse_port))
        return 0
    return _pool(args)


def _pool(args: argparse.Namespace) -> int:
    """`args.workers` processes of `kamiyo api` on one port, until SIGTERM or SIGINT (passed on to each), or until
    one of them ends by itself: then the others are stopped too, and its exit status is this one's (systemd
    restarts the whole)."""
    command = [sys.executable, "-m", "kamiyo.cli", "api", "--reuse-port"]
    if args.config:
        command += ["--config", args.config]
    stopping = False

    def stop(_signum, _frame) -> None:
        nonlocal stopping
        stopping = True

    previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGTERM, signal.SIGINT)}
    workers = [subprocess.Popen(command) for _ in range(args.workers)]
    try:
        while not stopping and all(w.poll() is None for w in workers):
            time.sleep(0.2)
        ended = next((w.returncode for w in workers if w.returncode is not None), None)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.terminate()
        for worker in workers:
            worker.wait()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0 if stopping or ended is None else (ended or 1)  # a worker that ended by itself is a failure


def _workers(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 64:
        raise argparse.ArgumentTypeError(f"expected a whole number from 1 to 64, got {text!r}")
    return int(text)


def register(sub) -> None:
    from ..api.keys import SCOPES, TIERS

    apikey = sub.add_parser("apikey", help="API keys: create (the secret is shown once), list, revoke") \
        .add_subparsers(dest="apikey_command", required=True)
    create = apikey.add_parser("create", help="make a key; prints its id and its secret, once")
    create.add_argument("name", help="who or what it is for")
    create.add_argument("--tier", choices=tuple(TIERS), help="default: [api] default_tier, else free")
    create.add_argument("--scope", action="append", choices=SCOPES, metavar="SCOPE",
                        help=f"one of {', '.join(SCOPES)} (repeatable; default read)")
    create.add_argument("--format", choices=("text", "json"), default="text")
    create.add_argument("--config", metavar="PATH", help=CONFIG_HELP)
    create.set_defaults(func=cmd_apikey_create)
    listing = apikey.add_parser("list", help="every key: id, name, tier, scopes, created, revoked (never secrets)")
    listing.add_argument("--format", choices=("text", "json"), default="text")
    listing.add_argument("--config", metavar="PATH", help=CONFIG_HELP)
    listing.set_defaults(func=cmd_apikey_list)
    revoke = apikey.add_parser("revoke", help="revoke a key by id: refused within a second")
    revoke.add_argument("id", metavar="ID", help="e.g. key_0123456789abcdef")
    revoke.add_argument("--config", metavar="PATH", help=CONFIG_HELP)
    revoke.set_defaults(func=cmd_apikey_revoke)

    api = sub.add_parser("api", help="serve the HTTP API alone, read-only, until SIGTERM or SIGINT")
    api.add_argument("--workers", type=_workers, default=1, metavar="N",
                     help="processes serving the one port (default 1; about one per core)")
    api.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)  # one of --workers' processes
    api.add_argument("--config", metavar="PATH", help=CONFIG_HELP)
    api.set_defaults(func=cmd_api)
