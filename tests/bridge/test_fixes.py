"""Bugs the console found in the bridge, each over real HTTP against the simulator."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from ecrlink.bridge.auth import accept_language
from ecrlink.protocol.field_texts import field_error, field_message
from ecrlink.simulator import Simulator

from .conftest import BridgeProcess
from .test_api import error, final, pay, wait_for_sales

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


@given(st.text(max_size=300))
def test_accept_language_never_fails(header: str) -> None:
    assert accept_language(header) in (None, "vi", "en")


def test_accept_language_picks_the_first_of_vi_en() -> None:
    assert accept_language("vi") == "vi"
    assert accept_language("fr-FR, en-US;q=0.8, vi;q=0.9") == "en"  # order, not q
    assert accept_language("vi;q=0, en") == "en"  # refused
    assert accept_language("vi;q=abc") == "vi"  # a bad q is ignored
    assert accept_language(";;;,,,q=") is None
    assert accept_language("") is None and accept_language(None) is None


def test_texts_follow_accept_language_over_the_key(
    bridge: BridgeProcess, sim: Simulator
) -> None:
    vi = {"Accept-Language": "vi-VN,vi;q=0.9,en;q=0.8"}
    en = {"Accept-Language": "fr, en;q=0.5"}
    with bridge.client() as register, bridge.client("manager") as manager:  # en, vi keys
        with register.stream("GET", "/v1/events", headers=vi, timeout=10) as events:
            created = register.post("/v1/terminals/lane1/payments", json={"amount": 150_051},
                                    headers={"Idempotency-Key": "lang-1", **vi})
            assert created.status_code == 201, created.text
            payment_id = created.json()["id"]
            done = register.get(f"/v1/payments/{payment_id}", params={"wait": 20},
                                headers=vi).json()
            frames = []
            for line in events.iter_lines():
                if line.startswith("data:") and '"declined"' in line:
                    frames.append(json.loads(line[5:]))
                    break
        as_key_en = register.get(f"/v1/payments/{payment_id}").json()
        as_key_vi = manager.get(f"/v1/payments/{payment_id}").json()
        asked_en = manager.get(f"/v1/payments/{payment_id}", headers=en).json()
        refused_vi = error(register.post(
            "/v1/terminals/lane1/payments", json={"amount": 1000, "reference": "R" * 25},
            headers={"Idempotency-Key": "lang-2", **vi}), 422, "bad_input")
        refused_en = error(manager.post(
            "/v1/terminals/lane1/payments", json={"amount": 1000, "reference": "R" * 25},
            headers={"Idempotency-Key": "lang-3", **en}), 422, "bad_input")
    assert done["state"] == "declined"
    assert as_key_en["message"] != as_key_vi["message"]  # the texts really differ
    assert done["message"] == as_key_vi["message"]
    assert done["result"]["message"] == as_key_vi["result"]["message"]
    assert done["result"]["advice"] == as_key_vi["result"]["advice"]
    assert asked_en["message"] == as_key_en["message"]
    assert asked_en["result"] == as_key_en["result"]
    assert frames and frames[0]["message"] == as_key_vi["message"]
    for refused, lang in ((refused_vi, "vi"), (refused_en, "en")):
        assert refused["field"] == "reference" and refused["rule_code"] == "too_long"
        expected = field_error("reference", "too_long", max=20, length=25)
        assert refused["message"] == field_message(expected, lang)
    assert refused_vi["message"] != refused_en["message"]
