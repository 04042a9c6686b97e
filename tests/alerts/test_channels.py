"""The Slack, Discord, Telegram and email channels against real peers on loopback (tests/alerts/peers.py): what
arrives, in the shape each service takes, and what each of their answers comes to; then the delivery worker
sending one finding through all four."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from kamiyo.alerts import discord, email, slack, telegram
from kamiyo.alerts.channels import SENDERS
from kamiyo.alerts.message import Rendered, clip, render, utf16_length
from kamiyo.alerts.network import NetworkPolicy
from kamiyo.alerts.outcome import Dead, Delivered, Retry
from kamiyo.alerts.worker import DELIVERED, DeliveryWorker
from kamiyo.config import EmailChannel, parse
from kamiyo.findings import Finding, FindingType, Severity, fingerprint
from kamiyo.storage.engine import create_engine
from kamiyo.storage.migrations import upgrade
from tests.alerts.peers import Answer, FakeDiscord, FakeSlack, FakeTelegram, SmtpServer, self_signed_certificate
from tests.alerts.test_worker import drain, record, statuses

LOOPBACK = NetworkPolicy.from_strings(["127.0.0.0/8"])
TOKEN = "123456789:AAE-bot_token-secret"
CHAT = -1001234567890
SUBJECT, TX = "0x" + "11" * 20, "0x" + "22" * 32
TITLE = f"[CRITICAL] reentrancy on chain 1: {SUBJECT}"


def finding(summary: str = "withdraw() re-entered 14 times; 812 ETH left the vault", **changes) -> dict:
    labels = [{"entity": "0x" + "33" * 20, "entityType": "Address", "label": "attacker", "confidence": 0.9},
              {"entity": SUBJECT, "entityType": "Address", "label": "victim", "confidence": 0.9}]
    return {"id": "0x" + "ab" * 32, "kind": "reentrancy", "severity": "critical", "type": "exploit", "chain_id": 1,
            "subject": SUBJECT, "block": 19_000_000, "tx_hash": TX, "status": "active", "labels": labels,
            "evidence": {"summary": summary, "labels": labels}, "created_at": "2024-05-01T12:00:00Z", **changes}


@pytest.fixture
async def peers():
    started = [await FakeSlack().start(), await FakeDiscord().start(), await FakeTelegram(TOKEN, CHAT).start()]
    yield started
    for peer in started:
        await peer.stop()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# The rendered message -----------------------------------------------------------------------------------------

def test_a_finding_renders_once_as_plain_text_with_its_facts_and_links():
    rendered = render("finding.created", finding("Drained\u202e 812 ETH\x07\r\n\n\n\nby re-entry"))
    assert rendered.headline == "[CRITICAL] reentrancy on chain 1" and rendered.title == TITLE
    assert rendered.summary == "Drained 812 ETH\n\nby re-entry"  # no bidi override, bell, or run of blank lines
    facts = dict(rendered.facts)
    assert facts["Chain"] == "Ethereum (1)" and facts["Transaction"] == TX and facts["Block"] == "19000000"
    assert facts["Labels"] == f"attacker 0x{'33' * 20}, victim {SUBJECT}"
    assert facts["Transaction link"] == f"https://etherscan.io/tx/{TX}"
    assert rendered.text.startswith(TITLE + "\n\nDrained 812 ETH") and f"Subject: {SUBJECT}" in rendered.text
    many = render("finding.created", finding(labels=[f"label-{n}" for n in range(9)]))
    assert dict(many.facts)["Labels"] == "label-0, label-1, label-2, label-3, label-4, +4 more"


def test_retractions_and_tests_say_so_and_odd_findings_get_no_links():
    retracted = render("finding.retracted", finding())
    assert retracted.headline == "Retracted: [CRITICAL] reentrancy on chain 1"
    assert retracted.summary.startswith("This finding is retracted")
    odd = render("channel.test", finding(chain_id=999_999_999, tx_hash="0x12\nEvil: 1", subject="not\nan address"))
    assert odd.headline.startswith("Test: [CRITICAL]") and odd.title.endswith(": not an address")
    assert not any(name.endswith("link") for name, _ in odd.facts)
    assert dict(odd.facts)["Transaction"] == "0x12 Evil: 1"  # one line: no fake "Evil:" fact


def test_clip_counts_utf16_units_and_never_splits_a_surrogate_pair():
    assert clip("abcdef", 6) == "abcdef" and clip("abcdef", 4) == "abc…"
    assert clip("ab😀cd", 4) == "ab…" and clip("ab😀cd", 5) == "ab😀…"
    assert all(utf16_length(clip("😀" * 50, n)) <= n for n in range(0, 60))


def test_every_channel_type_of_the_configuration_has_a_sender():
    assert set(SENDERS) == {"webhook", "slack", "discord", "telegram", "email"}


# Slack --------------------------------------------------------------------------------------------------------

async def test_slack_gets_plain_text_blocks_and_an_escaped_fallback(peers):
    fake = peers[0]
    outcome = await slack.send(fake.url, "finding.created", finding("<!channel> & <https://x.test|your wallet>"),
                               LOOPBACK, 5)
    assert outcome == Delivered(200)
    doc = fake.seen[0].doc
    header, section, facts = doc["blocks"]
    assert header == {"type": "header", "text": {"type": "plain_text", "text": TITLE, "emoji": False}}
    assert section["text"] == {"type": "plain_text", "text": "<!channel> & <https://x.test|your wallet>",
                               "emoji": False}  # plain_text: shown as written, never parsed
    assert f"Transaction: {TX}" in [f["text"] for f in facts["fields"]]
    assert all(f["type"] == "plain_text" for f in facts["fields"])
    assert doc["text"] == f"{TITLE}\n&lt;!channel&gt; &amp; &lt;https://x.test|your wallet&gt;"


async def test_slack_limits_are_kept(peers):
    fake = peers[0]
    long = finding("x" * 10_000, subject="0x" + "f" * 400)
    assert await slack.send(fake.url, "finding.created", long, LOOPBACK, 5) == Delivered(200)  # the fake checks


@pytest.mark.parametrize("answer, outcome", [
    (Answer(429, "rate_limited", {"Retry-After": "7"}), Retry("HTTP 429: rate_limited", after=7.0)),
    (Answer(500, "internal_error"), Retry("HTTP 500: internal_error")),
    (Answer(403, "action_prohibited"), Dead("HTTP 403: action_prohibited")),
    (Answer(410, "channel_is_archived"), Dead("HTTP 410: channel_is_archived")),
])
async def test_slack_answers_are_judged(peers, answer, outcome):
    fake = peers[0]
    fake.script.append(answer)
    assert await slack.send(fake.url, "finding.created", finding(), LOOPBACK, 5) == outcome


async def test_a_wrong_slack_url_is_dead_and_a_loopback_one_refused_without_an_allowed_network(peers):
    fake = peers[0]
    assert await slack.send(fake.base + "/services/T0000/B0000/gone", "finding.created", finding(), LOOPBACK, 5
                            ) == Dead("HTTP 404: no_service")
    refused = await slack.send(fake.url, "finding.created", finding(), NetworkPolicy(), 5)
    assert isinstance(refused, Dead) and "loopback" in refused.error and len(fake.seen) == 1
    assert "slacksecret" not in refused.error


# Discord ------------------------------------------------------------------------------------------------------

async def test_discord_gets_one_embed_coloured_by_severity_and_pings_no_one(peers):
    fake = peers[1]
    assert await discord.send(fake.url, "finding.created", finding("@everyone look"), LOOPBACK, 5) == Delivered(204)
    doc = fake.seen[0].doc
    assert doc["content"] == "[CRITICAL] reentrancy on chain 1" and doc["allowed_mentions"] == {"parse": []}
    (embed,) = doc["embeds"]
    assert embed["title"] == TITLE and embed["description"] == "@everyone look"
    assert embed["color"] == discord.COLORS["critical"] and embed["timestamp"] == "2024-05-01T12:00:00Z"
    assert {"name": "Transaction", "value": TX, "inline": False} in embed["fields"]
    assert {"name": "Chain", "value": "Ethereum (1)", "inline": True} in embed["fields"]
    low = await discord.send(fake.url, "finding.created", finding(severity="low", created_at="yesterday"), LOOPBACK, 5)
    assert low == Delivered(204) and fake.seen[1].doc["embeds"][0]["color"] == discord.COLORS["low"]
    assert "timestamp" not in fake.seen[1].doc["embeds"][0]  # one Discord cannot read would refuse the message


async def test_discord_limits_are_kept_so_the_message_is_never_refused(peers):
    fake = peers[1]
    huge = finding("é" * 9000, subject="0x" + "f" * 600, labels=[{"label": "victim", "entity": "x" * 300}] * 5)
    assert await discord.send(fake.url, "finding.created", huge, LOOPBACK, 5) == Delivered(204)  # the fake checks
    (embed,) = fake.seen[0].doc["embeds"]
    assert len(embed["title"]) == 256 and embed["description"].endswith("…")
    crowded = Rendered("finding.created", "high", "h", "t", "s" * 5000,
                       tuple((f"fact {n}", "v" * 1500) for n in range(40)), None)
    made = discord.embed(crowded)
    total = sum(len(f["name"]) + len(f["value"]) for f in made["fields"]) + len(made["title"]) + len(
        made["description"])
    assert len(made["fields"]) <= 25 and total <= 6000 and len(made["description"]) >= 1024
    assert all(len(f["value"]) <= 1024 for f in made["fields"])


@pytest.mark.parametrize("answer, outcome", [
    (Answer(429, {"message": "You are being rate limited.", "retry_after": 1.5, "global": False},
            {"Retry-After": "2"}), Retry("HTTP 429: You are being rate limited.", after=1.5)),
    (Answer(429, "slow down", {"Retry-After": "3"}), Retry("HTTP 429: slow down", after=3.0)),
    (Answer(502, "<html>bad gateway</html>"), Retry("HTTP 502: <html>bad gateway</html>")),
    (Answer(400, {"message": "Invalid Form Body", "code": 50035}), Dead("HTTP 400: Invalid Form Body (code 50035)")),
    (Answer(200, {"id": "1"}), Delivered(200)),  # ?wait=true answers the message
])
async def test_discord_answers_are_judged(peers, answer, outcome):
    fake = peers[1]
    fake.script.append(answer)
    assert await discord.send(fake.url, "finding.created", finding(), LOOPBACK, 5) == outcome


async def test_an_unknown_discord_webhook_is_dead(peers):
    fake = peers[1]
    outcome = await discord.send(fake.base + "/api/webhooks/1234/revoked", "finding.created", finding(), LOOPBACK, 5)
    assert outcome == Dead("HTTP 404: Unknown Webhook (code 10015)")


# Telegram -----------------------------------------------------------------------------------------------------

async def test_telegram_gets_plain_text_to_its_chat_at_the_bot_tokens_path(peers):
    fake = peers[2]
    outcome = await telegram.send(fake.base, TOKEN, CHAT, "finding.created", finding("<b>not bold</b> _x_"),
                                  LOOPBACK, 5)
    assert outcome == Delivered(200)
    seen = fake.seen[0]
    assert seen.path == f"/bot{TOKEN}/sendMessage"
    assert set(seen.doc) == {"chat_id", "text", "disable_web_page_preview"} and seen.doc["chat_id"] == CHAT
    assert seen.doc["disable_web_page_preview"] is True
    assert seen.doc["text"].startswith(TITLE + "\n\n<b>not bold</b> _x_\n")


async def test_a_long_telegram_message_is_clipped_to_4096_units(peers):
    fake = peers[2]
    assert await telegram.send(fake.base, TOKEN, CHAT, "finding.created", finding("😀" * 5000), LOOPBACK, 5
                               ) == Delivered(200)
    text = fake.seen[0].doc["text"]
    assert utf16_length(text) <= 4096 and text.endswith("…")


@pytest.mark.parametrize("answer, outcome", [
    (Answer(429, {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 3",
                  "parameters": {"retry_after": 3}}), Retry("Telegram 429: Too Many Requests: retry after 3", 3.0)),
    (Answer(400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}),
     Dead("Telegram 400: Bad Request: chat not found")),
    (Answer(403, {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}),
     Dead("Telegram 403: Forbidden: bot was blocked by the user")),
    (Answer(400, {"ok": False, "error_code": 400, "description": "Bad Request: group chat was upgraded to a "
                  "supergroup chat", "parameters": {"migrate_to_chat_id": -1009876}}),
     Dead("Telegram 400: Bad Request: group chat was upgraded to a supergroup chat; the group is now the "
          "supergroup -1009876: set the channel's chat_id to that")),
    (Answer(500, {"ok": False, "error_code": 500, "description": "Internal Server Error"}),
     Retry("Telegram 500: Internal Server Error")),
    (Answer(502, "<html>Bad Gateway</html>"), Retry("HTTP 502: <html>Bad Gateway</html>")),
    (Answer(200, "<html>a captive portal</html>"), Dead("HTTP 200, but not a Bot API answer: is api_url right?")),
])
async def test_telegram_answers_are_judged(peers, answer, outcome):
    fake = peers[2]
    fake.script.append(answer)
    assert await telegram.send(fake.base, TOKEN, CHAT, "finding.created", finding(), LOOPBACK, 5) == outcome


async def test_the_bot_token_never_appears_in_an_error(peers):
    fake = peers[2]
    wrong = await telegram.send(fake.base, TOKEN + "x", CHAT, "finding.created", finding(), LOOPBACK, 5)
    assert wrong == Dead("Telegram 404: Not Found")
    echo = {"ok": False, "error_code": 400, "description": f"bad token {TOKEN} in /bot{TOKEN}"}  # a careless server
    fake.script.append(Answer(400, echo))
    echoed = await telegram.send(fake.base, TOKEN, CHAT, "finding.created", finding(), LOOPBACK, 5)
    assert echoed == Dead("Telegram 400: bad token <redacted> in /bot<redacted>")
    unreachable = await telegram.send(f"http://127.0.0.1:{closed_port()}/{TOKEN}", TOKEN, CHAT, "finding.created",
                                      finding(), LOOPBACK, 5)
    assert isinstance(unreachable, Retry) and "ClientConnectorError" in unreachable.error
    refused = await telegram.send(f"http://10.0.0.1/{TOKEN}", TOKEN, CHAT, "finding.created", finding(), LOOPBACK, 5)
    assert isinstance(refused, Dead) and "private" in refused.error
    for outcome in (wrong, echoed, unreachable, refused):
        assert TOKEN not in outcome.error and "AAE-bot_token" not in outcome.error


async def test_a_token_that_is_not_one_cannot_change_the_method_called(peers):
    fake = peers[2]
    outcome = await telegram.send(fake.base, "1:x/../getUpdates?", CHAT, "finding.created", finding(), LOOPBACK, 5)
    assert isinstance(outcome, Dead) and fake.seen[0].raw_path == "/bot1:x%2F..%2FgetUpdates%3F/sendMessage"


# Email --------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    made = self_signed_certificate(tmp_path_factory.mktemp("tls"))
    if made is None:
        pytest.skip("needs the openssl CLI to make a certificate for the STARTTLS server")
    return made


def mail_channel(port: int, **changes) -> EmailChannel:
    return EmailChannel(**{"type": "email", "name": "mail", "host": "127.0.0.1", "port": port,
                           "sender": "kamiyo@example.org", "to": ["ops@example.org"], **changes})


async def serving(*args, **kwargs):
    return await SmtpServer(*args, **kwargs).start()


async def test_email_goes_over_verified_starttls_after_login(certificate):
    server = await serving(certificate, credentials=("alerts", "pw-secret"))
    try:
        channel = mail_channel(server.port, ca_file=str(certificate[0]), username="alerts", password="pw-secret")
        assert await email.send(channel, "finding.created", finding(), 5) == Delivered(250)
    finally:
        await server.stop()
    (mail,) = server.mailbox.mail
    assert mail.tls and mail.login == "alerts" and mail.recipients == ["ops@example.org"]
    message = mail.message
    assert message["Subject"] == "[CRITICAL] reentrancy on chain 1" and message["From"] == "kamiyo@example.org"
    assert message["X-Kamiyo-Delivery-Id"] == "0x" + "ab" * 32 + ":finding.created"
    body = message.get_content()
    assert body.startswith(TITLE) and "812 ETH left the vault" in body and f"Transaction: {TX}" in body


async def test_email_is_refused_to_a_server_without_starttls_and_sent_in_the_clear_only_when_configured():
    server = await serving()
    try:
        refused = await email.send(mail_channel(server.port), "finding.created", finding(), 5)
        assert isinstance(refused, Dead) and "does not offer STARTTLS" in refused.error
        assert server.mailbox.mail == []
        relay = await email.send(mail_channel(server.port, starttls=False), "finding.created", finding(), 5)
        assert relay == Delivered(250) and [m.tls for m in server.mailbox.mail] == [False]
    finally:
        await server.stop()


async def test_an_untrusted_certificate_or_a_wrong_password_is_dead(certificate):
    server = await serving(certificate, credentials=("alerts", "pw-secret"))
    try:
        untrusted = await email.send(mail_channel(server.port, username="alerts", password="pw-secret"),
                                     "finding.created", finding(), 5)
        assert isinstance(untrusted, Dead) and "certificate" in untrusted.error
        wrong = await email.send(mail_channel(server.port, ca_file=str(certificate[0]), username="alerts",
                                              password="guess"), "finding.created", finding(), 5)
        assert isinstance(wrong, Dead) and "535" in wrong.error and "guess" not in wrong.error
        assert server.mailbox.mail == []
    finally:
        await server.stop()


async def test_smtp_replies_are_judged_permanent_or_transient(certificate):
    server = await serving(certificate)
    server.mailbox.refuse = {"gone@example.org": "550 5.1.1 no such user", "full@example.org": "452 4.2.2 mailbox full"}
    send = lambda to: email.send(mail_channel(server.port, ca_file=str(certificate[0]), to=to),  # noqa: E731
                                 "finding.created", finding(), 5)
    try:
        gone = await send(["gone@example.org"])
        assert isinstance(gone, Dead) and "550 5.1.1 no such user" in gone.error
        full = await send(["full@example.org"])
        assert isinstance(full, Retry) and "452" in full.error
        some = await send(["gone@example.org", "ops@example.org"])  # accepted for one: delivered, not repeated
        assert some == Delivered(250) and [m.recipients for m in server.mailbox.mail] == [["ops@example.org"]]
    finally:
        await server.stop()


async def test_an_unreachable_or_silent_smtp_server_is_retried():
    refused = await email.send(mail_channel(closed_port(), starttls=False), "finding.created", finding(), 5)
    assert isinstance(refused, Retry) and "email: 127.0.0.1" in refused.error
    writers = []
    silent = await asyncio.start_server(lambda reader, writer: writers.append(writer), "127.0.0.1", 0)  # no greeting
    try:
        started = time.monotonic()
        quiet = await email.send(mail_channel(silent.sockets[0].getsockname()[1]), "finding.created", finding(), 0.5)
        assert isinstance(quiet, Retry) and "timed out" in quiet.error and time.monotonic() - started < 3
    finally:
        for writer in writers:
            writer.close()
        silent.close()
        await silent.wait_closed()


# The worker ---------------------------------------------------------------------------------------------------

async def test_the_worker_delivers_one_finding_through_every_channel_type(peers, certificate, tmp_path):
    fake_slack, fake_discord, fake_telegram = peers
    server = await serving(certificate)
    text = (f'[storage]\nurl = "sqlite:///{tmp_path / "k.db"}"\n\n[alerts]\nallow_networks = ["127.0.0.0/8"]\n'
            'backoff_seconds = 0.01\nmax_backoff_seconds = 0.05\ncooldown_seconds = 0\n'
            f'\n[[channels]]\ntype = "slack"\nname = "slack"\nurl = "{fake_slack.url}"\n'
            f'\n[[channels]]\ntype = "discord"\nname = "discord"\nurl = "{fake_discord.url}"\n'
            f'\n[[channels]]\ntype = "telegram"\nname = "telegram"\nbot_token = "{TOKEN}"\nchat_id = {CHAT}\n'
            f'api_url = "{fake_telegram.base}"\n'
            f'\n[[channels]]\ntype = "email"\nname = "email"\nhost = "127.0.0.1"\nport = {server.port}\n'
            f'sender = "kamiyo@example.org"\nto = ["ops@example.org"]\nca_file = "{certificate[0]}"\n')
    settings = parse(text)
    engine = create_engine(settings.storage)
    try:
        await upgrade(engine)
        fake_slack.script.append(Answer(503, "try later"))  # one retry on the way, to show it is one
        await record(engine, Finding("reentrancy", Severity.CRITICAL, FindingType.EXPLOIT, 1, SUBJECT, 10, TX,
                                     fingerprint("reentrancy", 1), {"summary": "812 ETH left the vault"}))
        await drain(DeliveryWorker(engine, settings))
        assert sorted((s[2], s[3]) for s in await statuses(engine)) == [(DELIVERED, 1)] * 3 + [(DELIVERED, 2)]
    finally:
        await engine.dispose()
        await server.stop()
    assert fake_slack.seen[-1].doc["blocks"][0]["text"]["text"] == TITLE
    assert fake_discord.seen[0].doc["embeds"][0]["description"] == "812 ETH left the vault"
    assert fake_telegram.seen[0].doc["text"].startswith(TITLE) and fake_telegram.seen[0].doc["chat_id"] == CHAT
    assert [m.message["Subject"] for m in server.mailbox.mail] == ["[CRITICAL] reentrancy on chain 1"]
