"""Faults: the bridge killed (SIGKILL) while a customer is at the card reader, and a
payment row that a crash left before its command was written to the journal."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from ecrlink.simulator import Simulator

from .conftest import BridgeProcess
from .test_api import final, pay, sales
from .test_events import read_events


def poll_states(bridge: BridgeProcess, payment_id: str, stop: threading.Event,
                seen: list[str]) -> None:
    """A register polling the payment through the crash: what it sees, in order."""
    with bridge.client(timeout=5) as register:
        while not stop.is_set():
            try:
                reply = register.get(f"/v1/payments/{payment_id}", params={"wait": 2})
            except httpx.HTTPError:
                time.sleep(0.05)  # the bridge is down: try again, as a register would
                continue
            if reply.status_code == 200:
                state = reply.json()["state"]
                if not seen or seen[-1] != state:
                    seen.append(state)
                if state == "approved":
                    return


def kill_at_the_card_and_retry(
    bridge: BridgeProcess, register: httpx.Client, key: str, *, at_card: float
) -> tuple[dict[str, Any], list[str], dict[str, Any]]:
    """Pay 250,000 with ``key``; SIGKILL the bridge ``at_card`` seconds later (the
    customer at the card reader), start it again and retry the same POST, which must
    give the same payment; a second register polls throughout. Returns the payment as
    created, the states the poller saw in order, and the final payment."""
    created = pay(register, 250_000, key, invoice="HD-CRASH")
    assert created.status_code == 201
    payment: dict[str, Any] = created.json()
    seen: list[str] = []
    stop = threading.Event()
    poller = threading.Thread(target=poll_states, args=(bridge, payment["id"], stop, seen))
    poller.start()
    time.sleep(at_card)
    bridge.kill()
    bridge.start()
    retried = pay(register, 250_000, key, invoice="HD-CRASH")
    assert retried.status_code == 200, retried.text  # the same payment, not a new one
    assert retried.json()["id"] == payment["id"]
    poller.join(60)
    stop.set()
    assert not poller.is_alive()
    return payment, seen, final(register, payment["id"])


def test_sigkill_while_the_customer_pays_ends_approved_exactly_once(
    bridge: BridgeProcess, sim: Simulator
) -> None:
    sim.configure(card_delay=4.0, on_hangup="finish")
    with bridge.client() as register:
        payment, seen, done = kill_at_the_card_and_retry(bridge, register, "crash-1",
                                                         at_card=1.0)
        events = read_events(register, last_id=0, stop=lambda ev: any(
            e["event"] == "payment.updated" and e["data"]["state"] == "approved"
            for e in ev))
    assert seen[-1] == "approved" and seen.count("approved") == 1
    assert set(seen) <= {"processing", "in_doubt", "approved"}
    assert done["state"] == "approved" and done["amount"] == 250_000
    approvals = [e for e in events if e["event"] == "payment.updated"
                 and e["data"]["id"] == payment["id"] and e["data"]["state"] == "approved"]
    assert len(approvals) == 1
    [sale] = sales(sim)  # the terminal charged once, and that is what the bridge says
    assert sale.approved and sale.amount == 250_000
    assert done["receipt_no"] == f"{sale.receipt_no:06d}"


def test_a_row_without_a_journal_entry_never_left_and_is_failed_after_restart(
    make_bridge: Callable[..., BridgeProcess], sim: Simulator
) -> None:
    bridge = make_bridge()
    bridge.stop()
    # What a crash between writing the payment down and starting its command leaves.
    now = datetime.now(UTC).isoformat()
    with sqlite3.connect(bridge.journal) as db:
        db.execute(
            "INSERT INTO bridge_payments (id, terminal, command, amount, state, request_id, "
            "idem_key, idem_hash, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ("pay_crashedbefore0001", "lane1", "sale", 90_000, "processing",
             "19a0000000000000", "crash-2", "x" * 64, now, now))
    bridge.start()
    with bridge.client() as register:
        payment = register.get("/v1/payments/pay_crashedbefore0001").json()
    assert payment["state"] == "failed"
    assert "nothing was charged" in payment["message"]
    assert sales(sim) == []


def test_a_stop_while_the_customer_pays_leaves_it_to_the_next_start(
    bridge: BridgeProcess, sim: Simulator
) -> None:
    sim.configure(card_delay=5.0, on_hangup="finish")
    with bridge.client() as register:
        payment = pay(register, 260_000, "stop-1").json()
        time.sleep(0.5)
        started = time.monotonic()
        bridge.stop()  # SIGTERM: 2 s of grace (the test's tuning), then it lets go
        assert bridge.process is not None and bridge.process.returncode == 0
        assert time.monotonic() - started < 12
        bridge.start()
        deadline = time.monotonic() + 30
        while (done := final(register, payment["id"]))["state"] == "in_doubt":
            assert time.monotonic() < deadline  # recovery asks the terminal meanwhile
            time.sleep(0.2)
    assert done["state"] == "approved"
    [sale] = sales(sim)
    assert sale.approved and sale.amount == 260_000
    assert "Traceback" not in bridge.log()
