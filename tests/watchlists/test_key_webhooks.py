"""A key's own webhooks in the delivery worker, against real receivers: it gets what its owner's watchlists route
to it, signed with its own secret, and nothing else; a configured channel takes a key's routing only when it
grants the key; a removed webhook or a revoked key stops deliveries, and what was pending is a dead letter that
says why."""

from __future__ import annotations

from sqlalchemy import select

from kamiyo.alerts.worker import DEAD, DeliveryWorker
from kamiyo.api import keys
from kamiyo.config import parse
from kamiyo.storage.engine import create_engine
from kamiyo.storage.migrations import upgrade
from kamiyo.storage.schema import deliveries
from kamiyo.watchlists import store, webhooks
from tests.alerts.receiver import Receiver
from tests.alerts.test_worker import drain, finding, record

OPS_SECRET = "ops-secret"


def config(db, ops_url: str, grant: str | None = None) -> str:
    return (f'[storage]\nurl = "sqlite:///{db}"\n\n[alerts]\nallow_networks = ["127.0.0.0/8"]\n'
            'backoff_seconds = 0.01\nmax_backoff_seconds = 0.05\ncooldown_seconds = 0\n\n'
            f'[[channels]]\ntype = "webhook"\nname = "ops"\nurl = "{ops_url}"\nsecret = "{OPS_SECRET}"\n'
            'watchlists_only = true\n' + (f'keys = ["{grant}"]\n' if grant else ""))


async def test_a_keys_webhook_gets_what_its_watchlists_route_signed_with_its_secret(tmp_path):
    ops = await Receiver(OPS_SECRET).start()
    team = await Receiver("set when the webhook is made").start()
    engine = create_engine(parse(config(tmp_path / "k.db", ops.url)).storage)
    await upgrade(engine)
    try:
        watched, other = finding(1), finding(2)
        async with engine.begin() as conn:
            key, _secret = await keys.create(conn, "team", tier="pro", scopes=["watchlists"])
            stranger, _s = await keys.create(conn, "stranger", tier="pro", scopes=["watchlists"])
            hook, team.secret = await webhooks.create(conn, key.id, "team", team.url)
            for owner in (key.id, stranger.id):  # the stranger's list names the same words: they are not its own
                await store.create(conn, owner, "pool", [store.Entry(1, watched.subject)], kinds=[],
                                   min_severity="low", channels=["team", "ops"])
        await record(engine, watched, other)
        await drain(DeliveryWorker(engine, parse(config(tmp_path / "k.db", ops.url))))
        assert [(r.finding["id"], r.signed) for r in team.received] == [(watched.fingerprint, True)]
        assert ops.received == []  # the operator's channel was not granted to the key

        await record(engine, finding(3, block=11))  # not watched: nobody hears of it
        granted = parse(config(tmp_path / "k.db", ops.url, grant=key.id))
        async with engine.begin() as conn:
            await store.create(conn, key.id, "again", [store.Entry(1, finding(4).subject)], kinds=[],
                               min_severity="low", channels=["ops"])
        await record(engine, finding(4, block=13))
        await drain(DeliveryWorker(engine, granted))
        assert [r.finding["id"] for r in ops.received] == [finding(4).fingerprint]  # granted now
        assert [r.finding["id"] for r in team.received] == [watched.fingerprint]

        async with engine.connect() as conn:
            channels = {r.channel for r in await conn.execute(select(deliveries.c.channel))}
        assert channels == {hook.id, "ops"}  # a key's webhook is recorded under its id
    finally:
        await engine.dispose()
        await ops.stop()
        await team.stop()


async def test_a_removed_webhook_and_a_revoked_keys_pending_deliveries_are_dead_letters(tmp_path):
    down = await Receiver("s").start()
    engine = create_engine(parse(config(tmp_path / "k.db", down.url)).storage)
    await upgrade(engine)
    settings = parse(config(tmp_path / "k.db", down.url))
    try:
        async with engine.begin() as conn:
            removed_key, _s = await keys.create(conn, "a", tier="pro", scopes=["watchlists"])
            revoked_key, _s = await keys.create(conn, "b", tier="pro", scopes=["watchlists"])
            removed, _s = await webhooks.create(conn, removed_key.id, "hook", down.url)
            revoked, _s = await webhooks.create(conn, revoked_key.id, "hook", down.url)
            for owner, n in ((removed_key.id, 1), (revoked_key.id, 2)):
                await store.create(conn, owner, "pool", [store.Entry(1, finding(n).subject)], kinds=[],
                                   min_severity="low", channels=["hook"])
        await record(engine, finding(1), finding(2))
        worker = DeliveryWorker(engine, settings)
        await worker.fan_out()  # both pending, not yet sent
        async with engine.begin() as conn:
            assert await webhooks.remove(conn, removed.id, removed_key.id)
            assert not await webhooks.remove(conn, revoked.id, removed_key.id)  # not its own
            await keys.revoke(conn, revoked_key.id)
        await drain(worker)
        async with engine.connect() as conn:
            rows = {r.channel: (r.status, r.last_error) for r in await conn.execute(select(deliveries))}
        assert rows == {removed.id: (DEAD, "the webhook was removed"),
                        revoked.id: (DEAD, "the webhook was removed, or its API key revoked")}
        assert down.requests == 0  # neither was sent
    finally:
        await engine.dispose()
        await down.stop()


async def test_a_keys_suppression_silences_its_own_webhook_and_no_other_channel(tmp_path):
    from kamiyo.alerts import suppressions
    from kamiyo.alerts.worker import SUPPRESSED
    from kamiyo.config import SuppressionSettings

    ops = await Receiver(OPS_SECRET).start()
    team = await Receiver("set when the webhook is made").start()
    engine = create_engine(parse(config(tmp_path / "k.db", ops.url)).storage)
    await upgrade(engine)
    try:
        noisy = finding(1)
        async with engine.begin() as conn:
            key, _secret = await keys.create(conn, "team", tier="pro", scopes=["watchlists"])
            hook, team.secret = await webhooks.create(conn, key.id, "team", team.url)
            await store.create(conn, key.id, "pool", [store.Entry(1, noisy.subject)], kinds=[], min_severity="low",
                               channels=["team"])
            await store.create(conn, store.OPERATOR, "ops pool", [store.Entry(1, noisy.subject)], kinds=[],
                               min_severity="low", channels=["ops"])
            await suppressions.add(conn, SuppressionSettings(kind=noisy.kind, address=noisy.subject,
                                                             reason="our own payouts"), owner=key.id)
        await record(engine, noisy)
        await drain(DeliveryWorker(engine, parse(config(tmp_path / "k.db", ops.url))))
        assert team.received == [] and [r.finding["id"] for r in ops.received] == [noisy.fingerprint]
        async with engine.connect() as conn:
            rows = {r.channel: (r.status, r.last_error) for r in await conn.execute(select(deliveries))}
        assert rows[hook.id] == (SUPPRESSED, "suppressed: our own payouts")
    finally:
        await engine.dispose()
        await ops.stop()
        await team.stop()


async def test_the_operator_lists_every_keys_webhooks_without_secrets_and_removes_one(tmp_path, capsys):
    import asyncio
    import json

    from kamiyo.cli import main

    toml = tmp_path / "k.toml"
    toml.write_text(config(tmp_path / "k.db", "http://127.0.0.1:9/ops"))
    engine = create_engine(parse(toml.read_text()).storage)
    await upgrade(engine)
    try:
        async with engine.begin() as conn:
            key, _s = await keys.create(conn, "team", tier="pro", scopes=["watchlists"])
            hook, secret = await webhooks.create(conn, key.id, "team", "https://team.example.org/hook")
            await keys.revoke(conn, key.id)
        listed = ["webhook", "list", "--format", "json", "--config", str(toml)]
        assert await asyncio.to_thread(main, listed) == 0
        out = capsys.readouterr().out
        assert secret not in out
        (shown,) = json.loads(out)["webhooks"]
        assert (shown["id"], shown["owner"], shown["url"], shown["delivered_to"]) == (
            hook.id, key.id, "https://team.example.org/hook", False)  # its key is revoked: nothing goes there
        assert await asyncio.to_thread(main, ["webhook", "remove", hook.id, "--config", str(toml)]) == 0
        assert await asyncio.to_thread(main, ["webhook", "remove", hook.id, "--config", str(toml)]) == 2
        assert "no webhook" in capsys.readouterr().err
        async with engine.connect() as conn:
            assert await webhooks.load(conn, key.id) == []
    finally:
        await engine.dispose()
