"""Which sender serves which channel type: each is `async send(channel, event, finding, policy, timeout) ->
Outcome`, and must never raise for a receiver's sake (a refusal, an error, a timeout is an Outcome)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from . import webhook
from .network import NetworkPolicy
from .outcome import Dead, Outcome

Sender = Callable[..., Awaitable[Outcome]]


async def _webhook(channel, event: str, finding: dict, policy: NetworkPolicy, timeout: float) -> Outcome:
    return await webhook.send(channel.url, channel.secret, event, finding, policy, timeout)


SENDERS: dict[str, Sender] = {"webhook": _webhook}


async def send_to(channel, event: str, finding: dict, policy: NetworkPolicy, timeout: float) -> Outcome:
    sender = SENDERS.get(channel.type)
    if sender is None:
        return Dead(f"no sender for channel type {channel.type!r}")
    return await sender(channel, event, finding, policy, timeout)
