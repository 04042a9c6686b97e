"""Which sender serves which channel type: each is `async send(channel, event, finding, policy, timeout) ->
Outcome`, and must never raise for a receiver's sake (a refusal, an error, a timeout is an Outcome).

`policy` guards the URLs a channel is given (webhook, Slack, Discord, Telegram's api_url); email ignores it, since
its SMTP server is the operator's own (see kamiyo.alerts.email)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timezone

from . import discord, email, slack, telegram, webhook
from .network import NetworkPolicy
from .outcome import Dead, Outcome

Sender = Callable[..., Awaitable[Outcome]]


async def _webhook(channel, event: str, finding: dict, policy: NetworkPolicy, timeout: float) -> Outcome:
    return await webhook.send(channel.url, channel.secret, event, finding, policy, timeout)


async def _slack(channel, event: str, finding: dict, policy: NetworkPolicy, timeout: float) -> Outcome:
    return await slack.send(channel.url, event, finding, policy, timeout)


async def _discord(channel, event: str, finding: dict, policy: NetworkPolicy, timeout: float) -> Outcome:
    return await discord.send(channel.url, event, finding, policy, timeout)


async def _telegram(channel, event: str, finding: dict, policy: NetworkPolicy, timeout: float) -> Outcome:
    return await telegram.send(channel.api_url, channel.bot_token, channel.chat_id, event, finding, policy, timeout)


async def _email(channel, event: str, finding: dict, policy: NetworkPolicy, timeout: float) -> Outcome:
    return await email.send(channel, event, finding, timeout)


SENDERS: dict[str, Sender] = {"webhook": _webhook, "slack": _slack, "discord": _discord, "telegram": _telegram,
                              "email": _email}


async def send_to(channel, event: str, finding: dict, policy: NetworkPolicy, timeout: float) -> Outcome:
    sender = SENDERS.get(channel.type)
    if sender is None:
        return Dead(f"no sender for channel type {channel.type!r}")
    return await sender(channel, event, finding, policy, timeout)


TEST_EVENT = "channel.test"


def test_finding(channel_name: str) -> dict:
    """The finding a test delivery carries: shaped like any other, about nothing (chain 0, the zero address)."""
    now = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
    return {"id": "0x" + "00" * 32, "kind": "channel-test", "severity": "info", "type": "info", "chain_id": 0,
            "subject": "0x" + "00" * 20, "block": 0, "tx_hash": None, "status": "active", "labels": [],
            "evidence": {"summary": f"a test delivery to channel {channel_name}"}, "created_at": now}
