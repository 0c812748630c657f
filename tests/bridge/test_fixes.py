"""Bugs the console found in the bridge, each over real HTTP against the simulator."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from ecrlink.simulator import Simulator

from .conftest import BridgeProcess
from .test_api import final, pay, wait_for_sales

_FINAL = {"approved", "declined", "canceled", "amount_mismatch"}


def _whole(payment: dict[str, Any]) -> None:
    """A payment in a final state with a terminal outcome carries that outcome."""
    if payment["state"] in _FINAL:
        assert payment["result"] is not None, payment
        assert payment["result"]["outcome"] == payment["state"], payment


def test_a_final_state_always_comes_with_its_result(
    make_bridge: Callable[..., BridgeProcess], sim: Simulator
) -> None:
    # Quick declines while the journal sync (every 2 ms here: it races each command's
    # end) and a reader poll the same payments: nobody may ever see "declined" without
    # the terminal's result.
    bridge = make_bridge(start=False)
    config = bridge.config_path.read_text("utf-8")
    assert "sync_interval = 0.3" in config
    bridge.config_path.write_text(config.replace("sync_interval = 0.3",
                                                 "sync_interval = 0.002"), "utf-8")
    bridge.start()
    stop = threading.Event()
    seen: list[dict[str, Any]] = []
    problems: list[BaseException] = []

    def reader() -> None:
        with bridge.client() as client:
            while not stop.is_set():
                try:
                    page = client.get("/v1/payments", params={"limit": 5}).json()["data"]
                    for payment in page:
                        _whole(payment)
                    seen.extend(page)
                except BaseException as exc:  # reported by the main thread
                    problems.append(exc)
                    return

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    count = 0
    try:
        with bridge.client() as register:
            deadline = time.monotonic() + 4.0
            while time.monotonic() < deadline:
                created = pay(register, 150_051, f"decline-{count}")
                assert created.status_code == 201, created.text
                count += 1
                payment = created.json()
                _whole(payment)
                for _ in range(3):
                    payment = register.get(f"/v1/payments/{payment['id']}",
                                           params={"wait": 5}).json()
                    _whole(payment)
                    if payment["state"] != "processing":
                        break
                assert payment["state"] == "declined", payment
                assert payment["result"]["return_code"] == "51"
    finally:
        stop.set()
        thread.join(10)
    assert not problems, problems[0]
    assert count >= 5 and seen  # it really ran
    declines = [s for s in sim.ledger.transactions if s.command == "sale"]
    assert len(declines) == count


def test_a_resolved_payment_reads_as_its_new_state(
    make_bridge: Callable[..., BridgeProcess], sim: Simulator
) -> None:
    # In doubt (the customer takes 4 s, the bridge waits 1 s), then resolved by a
    # manager: the payment's message says what it is now; the terminal's old words stay
    # in result.
    bridge = make_bridge(
        terminal_options="timeout = 1\nrecovery_timeout = 1\nstatus_timeout = 1")
    sim.configure(card_delay=4.0)
    with bridge.client() as register, bridge.client("manager") as manager:
        first = final(register, pay(register, 70_000, "doubt-a").json()["id"])
        assert first["state"] == "in_doubt", first
        wait_for_sales(sim, 1)
        declined = manager.post(f"/v1/payments/{first['id']}/resolve",
                                json={"not_approved": True, "who": "Lan"})
        assert declined.status_code == 200, declined.text
        body = declined.json()
        assert body["state"] == "declined"
        assert body["message"].startswith("Không trừ tiền"), body["message"]  # vi key
        assert "CHƯA RÕ" not in body["message"]
        assert body["result"]["outcome"] == "unknown"  # the terminal's words, kept
        again = register.get(f"/v1/payments/{first['id']}").json()  # the en key
        assert again["message"].startswith("Not charged"), again["message"]
        assert "UNKNOWN" not in again["message"].upper()

        second = final(register, pay(register, 80_000, "doubt-b").json()["id"])
        assert second["state"] == "in_doubt", second
        paid = wait_for_sales(sim, 2)[-1]
        receipt = f"{paid.receipt_no:06d}"
        approved = manager.post(f"/v1/payments/{second['id']}/resolve",
                                json={"approved_receipt": receipt, "who": "Lan"}).json()
        assert approved["state"] == "approved"
        assert approved["message"].startswith("Đã thanh toán"), approved["message"]
        assert receipt in approved["message"]
        again = register.get(f"/v1/payments/{second['id']}").json()
        assert again["message"] == f"Paid: confirmed approved, receipt {receipt}"
        assert approved["result"]["outcome"] == "unknown"
