"""Bugs the console found in the bridge, each over real HTTP against the simulator."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from ecrlink.simulator import Simulator

from .conftest import BridgeProcess
from .test_api import pay

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
