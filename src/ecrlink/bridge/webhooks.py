"""Webhooks from the durable outbox: every event POSTed, signed, until a 2xx.

Each stored event has an outbox row in the same commit, so none is lost to a crash.
One sender delivers them in event id order (a receiver never sees event 8 before
event 7): the oldest undelivered event is POSTed as ``{"id", "type", "created",
"data"}`` with ``Ecrlink-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret,
"<t>.<raw body>")>``; a 2xx removes it from the outbox; anything else (refused,
timeout, 5xx, 3xx) is retried after a delay that doubles from ``webhook_backoff[0]``
up to ``webhook_backoff[1]``, with the same ``id`` (receivers deduplicate on it).
Delivery is at least once: a crash between the 2xx and its record sends it again.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from typing import Any

import httpx

from .events import Hub

__all__ = ["WebhookSender", "sign"]

log = logging.getLogger("ecrlink.bridge.webhooks")


def sign(secret: str, body: bytes, at: int) -> str:
    """The ``Ecrlink-Signature`` header value for ``body`` sent at unix time ``at``."""
    mac = hmac.new(secret.encode("utf-8"), f"{at}.".encode() + body, hashlib.sha256)
    return f"t={at},v1={mac.hexdigest()}"


class WebhookSender:
    """Drains the outbox to ``url``, in order, with capped exponential backoff."""

    def __init__(
        self, hub: Hub, url: str, secret: str, backoff: tuple[float, float],
        render: Any, timeout: float = 10.0,
    ) -> None:
        self.hub = hub
        self.url = url
        self.secret = secret
        self.first, self.cap = backoff
        self.render = render
        self.timeout = timeout

    async def run(self) -> None:
        """Deliver for ever (cancel to stop)."""
        async with httpx.AsyncClient(timeout=self.timeout, follow_redirects=False) as client:
            while True:
                generation = self.hub.generation
                due = await asyncio.to_thread(self.hub.store.next_outbox)
                if due is None:
                    await self.hub.wait_new(generation, 60.0)
                    continue
                event, attempts, next_at = due
                wait = next_at - time.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                await self._deliver(client, event, attempts)

    async def _deliver(self, client: httpx.AsyncClient, event: Any, attempts: int) -> None:
        body = json.dumps(
            {"id": event.id, "type": event.type, "created": int(event.created),
             "data": self.render(event)},
            ensure_ascii=False, separators=(",", ":"),
        ).encode("utf-8")
        headers = {"Content-Type": "application/json", "User-Agent": "ecrlink-bridge",
                   "Ecrlink-Signature": sign(self.secret, body, int(time.time()))}
        try:
            reply = await client.post(self.url, content=body, headers=headers)
            ok = 200 <= reply.status_code < 300
            error = f"HTTP {reply.status_code}"
        except httpx.HTTPError as exc:
            ok, error = False, f"{type(exc).__name__}: {exc}"
        if ok:
            await asyncio.to_thread(self.hub.store.delivered, event.id)
            return
        delay = min(self.cap, self.first * (2 ** attempts))
        log.warning("webhook: event %d not taken (%s); retry %d in %.1f s",
                    event.id, error, attempts + 1, delay)
        await asyncio.to_thread(self.hub.store.retry_later, event.id, time.time() + delay, error)
