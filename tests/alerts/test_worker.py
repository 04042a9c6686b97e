"""The delivery worker against a real SQLite database and a real webhook receiver on loopback."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timezone

import pytest
from sqlalchemy import select

from kamiyo.alerts.worker import DEAD, DELIVERED, PENDING, SUPPRESSED, DeliveryWorker
from kamiyo.config import parse
from kamiyo.findings import Finding, FindingType, Severity, fingerprint
from kamiyo.storage.engine import create_engine
from kamiyo.storage.findings import record_finding, retract_findings
from kamiyo.storage.migrations import upgrade
from kamiyo.storage.schema import deliveries
from tests.alerts.receiver import Receiver

SECRET = "s3cret-for-tests"


def config(db, url: str, allow: bool = True, **alerts) -> str:
    options = {"backoff_seconds": 0.01, "max_backoff_seconds": 0.05, "cooldown_seconds": 0, **alerts}
    return (f'[storage]\nurl = "sqlite:///{db}"\n\n[alerts]\n'
            + (('allow_networks = ["127.0.0.0/8"]\n') if allow else "")
            + "".join(f"{k} = {v}\n" for k, v in options.items())
            + f'\n[[channels]]\ntype = "webhook"\nname = "ops"\nurl = "{url}"\nsecret = "{SECRET}"\n'
            + 'min_severity = "medium"\n')


def finding(n: int, severity=Severity.HIGH, block: int = 10) -> Finding:
    return Finding("large-outflow", severity, FindingType.EXPLOIT, 1, "0x" + f"{n:040x}", block, "0x" + f"{n:064x}",
                   fingerprint("large-outflow", n), {"summary": f"finding {n}", "labels": []})


@pytest.fixture
async def world(tmp_path):
    receiver = await Receiver(SECRET).start()
    engine = create_engine(parse(config(tmp_path / "k.db", receiver.url)).storage)
    await upgrade(engine)
    yield tmp_path, receiver, engine
    await engine.dispose()
    await receiver.stop()


async def record(engine, *found: Finding) -> None:
    async with engine.begin() as conn:
        for f in found:
            await record_finding(conn, f)


async def drain(worker: DeliveryWorker, rounds: int = 200) -> None:
    for _ in range(rounds):
        await worker.step()
        async with worker.engine.connect() as conn:
            if not (await conn.execute(select(deliveries.c.id).where(deliveries.c.status == PENDING))).first():
                return
        await asyncio.sleep(0.01)


async def statuses(engine) -> list[tuple]:
    async with engine.connect() as conn:
        return [tuple(r) for r in await conn.execute(select(deliveries.c.fingerprint, deliveries.c.event,
                                                             deliveries.c.status, deliveries.c.attempts)
                                                      .order_by(deliveries.c.id))]


async def test_each_finding_arrives_signed_once_with_its_delivery_id(world):
    folder, receiver, engine = world
    await record(engine, finding(1), finding(2), finding(3, Severity.LOW))  # low: below the channel's minimum
    worker = DeliveryWorker(engine, parse(config(folder / "k.db", receiver.url)))
    await drain(worker)
    assert [(r.delivery_id, r.event, r.signed) for r in receiver.received] == [
        (f"{finding(n).fingerprint}:finding.created", "finding.created", True) for n in (1, 2)]
    assert receiver.received[0].finding["evidence"]["summary"] == "finding 1"
    assert {s[2] for s in await statuses(engine)} == {DELIVERED}
    await drain(DeliveryWorker(engine, parse(config(folder / "k.db", receiver.url))))  # a restart sends nothing
    assert len(receiver.received) == 2


async def test_a_receiver_failing_for_a_while_gets_everything_after_it_recovers(world):
    folder, receiver, engine = world
    receiver.fail_first = 5
    await record(engine, finding(1), finding(2))
    await drain(DeliveryWorker(engine, parse(config(folder / "k.db", receiver.url))))
    assert sorted(r.finding["id"] for r in receiver.received) == sorted(finding(n).fingerprint for n in (1, 2))
    attempts = [s[3] for s in await statuses(engine)]
    assert sum(attempts) == 2 + 5 and max(attempts) <= 6  # bounded: one attempt per failure, then success


async def test_retry_after_is_honoured(world):
    folder, receiver, engine = world
    receiver.fail_first, receiver.fail_status, receiver.retry_after = 1, 429, "2"
    await record(engine, finding(1))
    worker = DeliveryWorker(engine, parse(config(folder / "k.db", receiver.url)))
    started = time.time()
    await worker.step()
    async with engine.connect() as conn:
        row = (await conn.execute(select(deliveries))).one()
    assert row.status == PENDING and row.attempts == 1 and "429" in row.last_error
    due = row.next_attempt_at.replace(tzinfo=timezone.utc)  # SQLite gives back naive UTC
    assert due.timestamp() - started >= 1.5  # the receiver's 2 s, not the 0.01 s backoff


async def test_after_max_attempts_a_dead_letter_and_redrive_sends_it(world, capsys):
    from kamiyo.cli import main

    folder, receiver, engine = world
    receiver.fail_first = 10**6
    (folder / "k.toml").write_text(config(folder / "k.db", receiver.url, max_attempts=3))
    await record(engine, finding(1))
    await drain(DeliveryWorker(engine, parse((folder / "k.toml").read_text())))
    assert [s[2:] for s in await statuses(engine)] == [(DEAD, 3)]
    await asyncio.to_thread(main, ["alerts", "dead-letters", "--config", str(folder / "k.toml"), "--format", "json"])
    assert '"last_error": "HTTP 500"' in capsys.readouterr().out
    receiver.fail_first = 0
    assert await asyncio.to_thread(main, ["alerts", "redrive", "--all", "--config", str(folder / "k.toml")]) == 0
    await drain(DeliveryWorker(engine, parse((folder / "k.toml").read_text())))
    assert [s[2] for s in await statuses(engine)] == [DELIVERED] and len(receiver.received) == 1


async def test_a_loopback_webhook_is_refused_unless_allowed_and_never_contacted(world):
    folder, receiver, engine = world
    await record(engine, finding(1))
    await drain(DeliveryWorker(engine, parse(config(folder / "k.db", receiver.url, allow=False))))
    async with engine.connect() as conn:
        row = (await conn.execute(select(deliveries))).one()
    assert row.status == DEAD and row.attempts == 1 and "refused destination" in row.last_error
    assert "loopback" in row.last_error and receiver.requests == 0


async def test_a_retraction_is_sent_and_the_same_event_again_within_the_cooldown_is_suppressed(world):
    folder, receiver, engine = world
    settings = parse(config(folder / "k.db", receiver.url, cooldown_seconds=300))
    await record(engine, finding(1, block=10))
    worker = DeliveryWorker(engine, settings)
    await drain(worker)
    async with engine.begin() as conn:
        await retract_findings(conn, 1, 10)  # a reorg drops its block
    await record(engine, finding(1, block=10))  # and the new branch has it again
    await drain(worker)
    assert [r.event for r in receiver.received] == ["finding.created", "finding.retracted"]
    assert [s[1:3] for s in await statuses(engine)] == [("finding.created", DELIVERED),
                                                         ("finding.retracted", DELIVERED),
                                                         ("finding.created", SUPPRESSED)]


async def test_one_channel_failing_never_holds_back_another(world, tmp_path):
    folder, receiver, engine = world
    broken = await Receiver(SECRET, fail_first=10**6).start()
    try:
        text = config(folder / "k.db", receiver.url) + (
            f'\n[[channels]]\ntype = "webhook"\nname = "broken"\nurl = "{broken.url}"\nsecret = "{SECRET}"\n')
        await record(engine, finding(1), finding(2))
        worker = DeliveryWorker(engine, parse(text))
        for _ in range(5):
            await worker.step()
        assert len(receiver.received) == 2 and broken.requests >= 1
    finally:
        await broken.stop()


async def test_suppressions_and_the_allowlist_silence_known_noise_and_say_why(world):
    folder, receiver, engine = world
    keeper = "0x" + "4b" * 20
    noisy = finding(1)
    named = Finding("large-outflow", Severity.HIGH, FindingType.EXPLOIT, 1, "0x" + "77" * 20, 10, "0x" + "02" * 32,
                    fingerprint("large-outflow", 2), {"addresses": [{"role": "victim", "address": "0x" + "77" * 20}]})
    by_keeper = Finding("flash-loan", Severity.HIGH, FindingType.EXPLOIT, 1, "0x" + "88" * 20, 10, "0x" + "03" * 32,
                        fingerprint("flash-loan", 3), {"addresses": [{"role": "tx_sender", "address": keeper}]})
    kept = finding(4)
    text = config(folder / "k.db", receiver.url).replace("[alerts]\n", (
        "[alerts]\n" f'allowlist = ["{keeper.upper().replace("0X", "0x")}"]\n'
        f'suppress = [{{ fingerprint = "{noisy.fingerprint}", reason = "known test finding" }},\n'
        f'            {{ kind = "large-outflow", address = "0x{"77" * 20}", reason = "our treasury" }}]\n'))
    await record(engine, noisy, named, by_keeper, kept)
    await drain(DeliveryWorker(engine, parse(text)))
    assert [r.finding["id"] for r in receiver.received] == [kept.fingerprint]
    async with engine.connect() as conn:
        reasons = dict((await conn.execute(select(deliveries.c.fingerprint, deliveries.c.last_error)
                                           .where(deliveries.c.status == SUPPRESSED))).all())
    assert reasons == {noisy.fingerprint: "suppressed: known test finding",
                       named.fingerprint: "suppressed: our treasury",
                       by_keeper.fingerprint: "allowlisted: the transaction's sender or its only attacker is on "
                                              "[alerts] allowlist"}


def test_a_suppression_is_a_fingerprint_or_a_kind_and_an_address():
    from kamiyo.config import ConfigError

    base = '[storage]\nurl = "sqlite:///x.db"\n[alerts]\n'
    for bad in ('suppress = [{ kind = "reentrancy", reason = "r" }]',
                f'suppress = [{{ fingerprint = "0x1", kind = "x", address = "0x{"11" * 20}", reason = "r" }}]',
                'suppress = [{ kind = "x", address = "0x12", reason = "r" }]',
                'allowlist = ["me"]'):
        with pytest.raises(ConfigError):
            parse(base + bad)


async def test_a_suppression_added_at_run_time_silences_at_once_and_removing_it_lets_the_next_through(world,
                                                                                                    capsys):
    from kamiyo.cli import main

    folder, receiver, engine = world
    toml = folder / "k.toml"
    toml.write_text(config(folder / "k.db", receiver.url))
    worker = DeliveryWorker(engine, parse(toml.read_text()))  # running before the suppression exists
    treasury = "0x" + "77" * 20
    add = ["alerts", "suppress", "--kind", "large-outflow", "--address", treasury.upper().replace("0X", "0x"),
           "--reason", "our treasury's payouts", "--config", str(toml)]
    assert await asyncio.to_thread(main, add) == 0
    ident = capsys.readouterr().out.strip()
    assert ident.startswith("sup_")
    payout = Finding("large-outflow", Severity.HIGH, FindingType.EXPLOIT, 1, treasury, 10, "0x" + "02" * 32,
                     fingerprint("large-outflow", 2), {"summary": "payout"})
    await record(engine, payout)
    await drain(worker)
    assert receiver.received == []
    assert [s[2] for s in await statuses(engine)] == [SUPPRESSED]

    await asyncio.to_thread(main, ["alerts", "suppressions", "--format", "json", "--config", str(toml)])
    listed = json.loads(capsys.readouterr().out)["suppressions"]
    assert [(r["id"], r["kind"], r["address"], r["reason"]) for r in listed] == [
        (ident, "large-outflow", treasury, "our treasury's payouts")]
    assert await asyncio.to_thread(main, ["alerts", "unsuppress", ident, "--config", str(toml)]) == 0
    again = Finding("large-outflow", Severity.HIGH, FindingType.EXPLOIT, 1, treasury, 11, "0x" + "03" * 32,
                    fingerprint("large-outflow", 3), {"summary": "a drain this time"})
    await record(engine, again)
    await drain(worker)
    assert [r.finding["id"] for r in receiver.received] == [again.fingerprint]

    capsys.readouterr()
    both = ["alerts", "suppress", "--fingerprint", "0x" + "ab" * 32, "--kind", "x", "--address", treasury,
            "--reason", "r", "--config", str(toml)]
    assert await asyncio.to_thread(main, both) == 2
    assert "a fingerprint, or a kind and an address, not both" in capsys.readouterr().err
    assert await asyncio.to_thread(main, ["alerts", "unsuppress", ident, "--config", str(toml)]) == 2
