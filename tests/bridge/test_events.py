"""Live state: Server-Sent Events with durable ids and resume, and the long-poll."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from ecrlink.simulator import Simulator

from .conftest import BridgeProcess
from .test_api import final, pay


def read_events(
    client: httpx.Client, *, last_id: int | None, stop: Callable[[list[dict[str, Any]]], bool],
    seconds: float = 20.0, comments: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Read the stream until ``stop(events)``; each event as {id, event, data}."""
    headers = {"Last-Event-ID": str(last_id)} if last_id is not None else {}
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + seconds
    with client.stream("GET", "/v1/events", headers=headers, timeout=5) as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/event-stream")
        frame: dict[str, Any] = {}
        for line in reply.iter_lines():
            assert time.monotonic() < deadline, events
            if line.startswith(":") and comments is not None:
                comments.append(line)
            elif line.startswith("id: "):
                frame["id"] = int(line[4:])
            elif line.startswith("event: "):
                frame["event"] = line[7:]
            elif line.startswith("data: "):
                frame["data"] = json.loads(line[6:])
            elif line == "" and "id" in frame:
                events.append(frame)
                frame = {}
                if stop(events):
                    return events
            if stop(events):
                return events
    raise AssertionError("stream ended")


def finished(payment_id: str) -> Callable[[list[dict[str, Any]]], bool]:
    return lambda events: any(
        e["event"] == "payment.updated" and e["data"]["id"] == payment_id
        and e["data"]["state"] != "processing" for e in events)


def test_sse_streams_every_change_and_resumes_with_last_event_id_across_a_restart(
    bridge: BridgeProcess, sim: Simulator
) -> None:
    with bridge.client() as register:
        first: dict[str, Any] = {}
        seen: list[dict[str, Any]] = []

        def listen() -> None:
            seen.extend(read_events(register, last_id=None,
                                    stop=lambda ev: bool(first) and finished(first["id"])(ev)))

        listener = threading.Thread(target=listen)
        listener.start()
        time.sleep(0.5)  # connected: the stream starts with the next event
        first.update(pay(register, 110_000, "sse-1").json())
        listener.join(30)
        assert not listener.is_alive()
        mine = [e for e in seen if e["event"] == "payment.updated"]
        assert [e["data"]["state"] for e in mine][-1] == "approved"
        assert mine[-1]["data"] == final(register, first["id"])
        ids = [e["id"] for e in seen]
        assert ids == sorted(set(ids))
        # Away: a second payment happens, the bridge restarts, a third happens.
        second = final(register, pay(register, 120_000, "sse-2").json()["id"])
        bridge.restart()
        third = final(register, pay(register, 130_000, "sse-3").json()["id"])
        resumed = read_events(register, last_id=ids[-1], stop=finished(third["id"]))
    assert resumed[0]["id"] > ids[-1]
    resumed_ids = [e["id"] for e in resumed]
    assert resumed_ids == sorted(set(resumed_ids))
    states = {(e["data"]["id"], e["data"]["state"]) for e in resumed
              if e["event"] == "payment.updated"}
    assert (second["id"], "approved") in states and (third["id"], "approved") in states
    assert not any(e["data"].get("id") == first["id"] for e in resumed)
    assert {e["event"] for e in resumed} <= {"payment.updated", "terminal.updated"}


def test_sse_sends_heartbeats_and_the_key_language(bridge: BridgeProcess) -> None:
    comments: list[str] = []
    with bridge.client("manager") as manager:
        paid = final(manager, pay(manager, 140_000, "sse-vi").json()["id"])
        events = read_events(manager, last_id=0, comments=comments,
                             stop=lambda ev: len([c for c in comments if "heartbeat" in c]) > 1
                             and finished(paid["id"])(ev))
    mine = [e for e in events if e["event"] == "payment.updated"]
    assert mine[-1]["data"]["message"] == "Giao dịch thành công"  # the manager key: vi
    terminals = [e for e in events if e["event"] == "terminal.updated"]
    assert terminals and terminals[-1]["data"]["name"] == "lane1"


def test_long_poll_wakes_when_the_payment_ends(bridge: BridgeProcess, sim: Simulator) -> None:
    sim.configure(card_delay=2.0)
    with bridge.client() as register:
        payment = pay(register, 150_000, "lp-1").json()
        started = time.monotonic()
        waited = register.get(f"/v1/payments/{payment['id']}", params={"wait": 30})
        took = time.monotonic() - started
        assert waited.json()["state"] == "approved"
        assert 1.0 < took < 10  # held until the customer paid, not until the 30 s bound
        sim.configure(card_delay=3.0)
        slow = pay(register, 160_000, "lp-2").json()
        started = time.monotonic()
        early = register.get(f"/v1/payments/{slow['id']}", params={"wait": 0.5}).json()
        assert early["state"] == "processing"
        assert time.monotonic() - started < 2.5  # the bound is kept
        assert final(register, slow["id"])["state"] == "approved"
