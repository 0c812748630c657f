"""Live state: the wake-up hub, Server-Sent Events and their resume.

Every stored event (``payment.updated``, ``terminal.updated``) calls
:meth:`Hub.notify`; whoever waits (a long-poll, an SSE stream, the webhook sender)
wakes on an ``asyncio.Condition`` and reads what it needs from the store: no
polling loop, and the store is the only source (an event is sent only once it is
durable, so a resumed stream or a retried webhook sees exactly the same ids).

SSE: ``id:`` is the event's durable id; a client that reconnects with
``Last-Event-ID`` (browsers do it themselves; ``?last_event_id=`` works too) gets
every later event still kept (at least 24 h). Without one the stream starts with
the next event. A comment line (``: heartbeat``) goes out every ``heartbeat``
seconds so proxies keep the connection open and dead clients are noticed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

from .store import BridgeStore, EventRow

__all__ = ["Hub", "sse_stream"]


class Hub:
    """Wakes everyone waiting for a new event (an ``asyncio.Event`` per generation), and
    keeps the latest events in memory so that listeners rarely read the store.

    Events are remembered only as an unbroken run of ids ending at ``top``: a listener
    is served from memory only for ids it cannot miss there; anything else (an id
    older than memory, or a gap while a notification is late) is read from the store.
    """

    def __init__(self, store: BridgeStore, keep: int = 1024) -> None:
        self.store = store
        self._event: asyncio.Event | None = None
        self._generation = 0
        self._recent: deque[EventRow] = deque(maxlen=keep)
        self._early: dict[int, EventRow] = {}
        self._frames: dict[tuple[int, str], bytes] = {}
        self.top = 0
        """The highest id up to which memory holds every event (0: none yet)."""

    def start_at(self, last_id: int) -> None:
        """The store's newest id when the bridge starts: memory begins after it."""
        self.top = last_id
        self._recent.clear()
        self._early.clear()

    def _current(self) -> asyncio.Event:
        if self._event is None:  # made in the running loop, on first use
            self._event = asyncio.Event()
        return self._event

    def notify(self, *events: EventRow | None) -> None:
        """New events are stored: remember them and wake every waiter (event loop only)."""
        for event in events:
            if event is not None and event.id > self.top:
                self._early[event.id] = event
        while self.top + 1 in self._early:
            self.top += 1
            self._recent.append(self._early.pop(self.top))
        if len(self._early) > 64:  # a gap that never fills: memory restarts after it
            self.start_at(max(self._early))
        self._generation += 1
        woken, self._event = self._current(), asyncio.Event()
        woken.set()

    def from_memory(self, after: int) -> list[EventRow] | None:
        """The events after ``after`` up to ``top``, if memory holds all of them."""
        if after >= self.top:
            return []
        if not self._recent or self._recent[0].id > after + 1:
            return None
        found: list[EventRow] = []
        for event in reversed(self._recent):
            if event.id <= after:
                break
            found.append(event)
        found.reverse()
        return found

    async def wait_for(self, ready: Callable[[], bool], seconds: float) -> bool:
        """Wait until ``ready()`` (checked at each event) or ``seconds``; return ready()."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while not ready():
                    await self._current().wait()
        return ready()

    async def wait_new(self, generation: int, seconds: float) -> int:
        """Wait until an event newer than ``generation`` (or ``seconds``); the new one."""
        await self.wait_for(lambda: self._generation != generation, seconds)
        return self._generation

    def frame(
        self, event: EventRow, lang: str, render: Callable[[EventRow], dict[str, Any]]
    ) -> bytes:
        """The SSE frame of ``event`` for listeners of ``lang``, encoded once."""
        key = (event.id, lang)
        frame = self._frames.get(key)
        if frame is None:
            frame = self._frames[key] = _frame(event, render(event))
            if len(self._frames) > 2048:
                self._frames.pop(next(iter(self._frames)))
        return frame

    @property
    def generation(self) -> int:
        """Counts notifications."""
        return self._generation


def _frame(event: EventRow, data: dict[str, Any]) -> bytes:
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"id: {event.id}\nevent: {event.type}\ndata: {body}\n\n".encode()


async def sse_stream(
    hub: Hub, after: int, heartbeat: float,
    render: Callable[[EventRow], dict[str, Any]], lang: str = "",
) -> AsyncIterator[bytes]:
    """The event stream from the event after ``after``, for ever. Frames are encoded
    once per event and ``lang`` (``render`` must depend on nothing else), however many
    listeners there are."""
    yield f"retry: 2000\n: ecrlink events from {after}\n\n".encode()
    cursor = after
    quiet = False
    while True:
        generation = hub.generation
        events = None if quiet else hub.from_memory(cursor)
        if events is None:  # older than memory, or a quiet spell: the store is the truth
            events = await asyncio.to_thread(hub.store.events_after, cursor)
        quiet = False
        for event in events:
            yield hub.frame(event, lang, render)
            cursor = event.id
        if events:
            continue
        if await hub.wait_new(generation, heartbeat) == generation:
            yield b": heartbeat\n\n"
            quiet = True
