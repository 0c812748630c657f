"""Webhooks: a receiver that is down for a while gets every event afterwards, signed,
in order, once each by id; the outbox survives a bridge restart.

The issue asks for a receiver down for a minute; with the test's backoff (0.2 s
doubling to a 1 s cap, ``[serve.tuning] webhook_backoff``) a 12 s outage exercises
the same path (many retries of the same event, then delivery of the backlog).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ecrlink.simulator import Simulator

from .conftest import BridgeProcess, free_port
from .test_api import final, pay
from .test_events import finished, read_events

SECRET = "whsec-test-0123456789"


class Receiver:
    """An ERP's webhook endpoint on 127.0.0.1: records every delivery."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.deliveries: list[tuple[dict[str, str], bytes]] = []
        received = self.deliveries

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def verify(headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """Check ``Ecrlink-Signature`` as a receiver would; return the event."""
    parts = dict(p.split("=", 1) for p in headers["ecrlink-signature"].split(","))
    expected = hmac.new(SECRET.encode(), f"{parts['t']}.".encode() + body,
                        hashlib.sha256).hexdigest()
    assert hmac.compare_digest(parts["v1"], expected)
    assert abs(int(parts["t"]) - time.time()) < 120
    event: dict[str, Any] = json.loads(body)
    return event


def test_a_receiver_down_for_a_while_gets_every_event_once_in_order(
    make_bridge: Callable[..., BridgeProcess], sim: Simulator
) -> None:
    port = free_port()
    bridge = make_bridge(serve_extra=f'webhook_url = "http://127.0.0.1:{port}/hook"\n'
                         f'webhook_secret = "{SECRET}"')
    outage_started = time.monotonic()
    with bridge.client() as register:
        paid = [final(register, pay(register, 100_000 + n, f"wh-{n}").json()["id"])
                for n in range(3)]
        bridge.restart()  # the outbox is durable: the backlog survives
        paid.append(final(register, pay(register, 100_051, "wh-3").json()["id"]))
        everything = read_events(register, last_id=0, stop=finished(paid[-1]["id"]))
    time.sleep(max(0.0, 12.0 - (time.monotonic() - outage_started)))
    receiver = Receiver(port)
    try:
        wanted = {e["id"] for e in everything}
        deadline = time.monotonic() + 30
        while not wanted <= {json.loads(b)["id"] for _, b in receiver.deliveries}:
            assert time.monotonic() < deadline, (wanted, receiver.deliveries)
            time.sleep(0.1)
        time.sleep(1.5)  # nothing more arrives twice
    finally:
        receiver.stop()
    events = [verify(h, b) for h, b in receiver.deliveries]
    ids = [e["id"] for e in events]
    assert ids == sorted(ids) and len(ids) == len(set(ids))  # in order, once each
    by_id = {e["id"]: e for e in events}
    for sent in everything:
        got = by_id[sent["id"]]
        assert got["type"] == sent["event"]
        assert set(got) == {"id", "type", "created", "data"}
        if got["type"] == "payment.updated":
            assert got["data"]["id"] == sent["data"]["id"]
            assert got["data"]["state"] == sent["data"]["state"]
    finals = {e["data"]["id"]: e["data"]["state"] for e in events
              if e["type"] == "payment.updated" and e["data"]["state"] != "processing"}
    assert finals == {p["id"]: p["state"] for p in paid}
    assert "webhook: event" in bridge.log()  # the retries were logged, without secrets
    assert SECRET not in bridge.log()
