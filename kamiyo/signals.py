"""In-process wake-ups: "the outbox has new events", told to every consumer at once (the delivery worker, the
stream hub), each with an event of its own to clear, so one consumer clearing never hides it from another.
A wake-up is a hint only: every consumer also polls, and one in another process (`kamiyo api`) relies on that."""

from __future__ import annotations

import asyncio
import weakref


class Broadcast:
    def __init__(self) -> None:
        self._listeners: weakref.WeakSet[asyncio.Event] = weakref.WeakSet()

    def listener(self) -> asyncio.Event:
        event = asyncio.Event()
        self._listeners.add(event)
        return event

    def notify(self) -> None:
        for event in list(self._listeners):
            event.set()


OUTBOX_WRITTEN = Broadcast()
