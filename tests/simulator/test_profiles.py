"""The behaviours the protocol leaves open: firmware, on_hangup, busy_last_trans.

Each value over real HTTP (raw sockets, the project's client), and over a real pty
where serial behaves differently. The ``sim`` fixture has the defaults: firmware
``v201``, on_hangup ``finish``, busy_last_trans ``refuse``.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any

import httpx
import pytest

from ecrlink import ConfigError, Outcome, ReadTimeout
from ecrlink.simulator import RecordStatus, Simulator
from tests.simulator.conftest import RawSerial, attempt, client, wait_until

INNER_IDS = ("requestId", "clientId")


def _address(sim: Simulator) -> tuple[str, int]:
    host, port = sim.http_url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def hang_up_after(sim: Simulator, target: str, seconds: float) -> None:
    """Send ``GET target`` as an ECR would, then hang up after ``seconds`` unanswered."""
    with socket.create_connection(_address(sim)) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\n\r\n".encode())
        time.sleep(seconds)


def get_json(sim: Simulator, target: str) -> tuple[int, dict[str, Any]]:
    response = httpx.get(sim.http_url + target, timeout=5)
    doc = response.json()
    assert isinstance(doc, dict)
    return response.status_code, doc


def in_background(work: Any) -> threading.Thread:
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


# --- on_hangup ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "status"),
    [(7_000, RecordStatus.APPROVED), (7_051, RecordStatus.DECLINED),
     (7_999, RecordStatus.CANCELED)],
)
def test_finish_the_hangup_changes_nothing_but_the_delivery(
    sim: Simulator, amount: int, status: RecordStatus
) -> None:
    sim.configure(card_delay=1.0)
    started = time.monotonic()
    hang_up_after(sim, f"/ecr?rqt=gone|c&cmd=sale|{amount}", 0.2)
    # The customer is still at the card reader: the terminal stays busy, nothing yet.
    time.sleep(0.3)
    assert sim.terminal().busy and sim.ledger.transactions == ()
    assert get_json(sim, "/ecr?rqt=q|c&cmd=last%20trans")[0] == 503
    assert wait_until(lambda: not sim.terminal().busy, 2.0)
    assert time.monotonic() - started >= 0.9
    record = sim.ledger.find("gone")[0]
    assert (record.status, record.delivery, record.amount) == (status, "lost", amount)


def test_finish_last_trans_then_shows_the_sale_nobody_heard_of(sim: Simulator) -> None:
    with client(sim.http_url) as pos:
        before = pos.sale(1_000)
    assert before.transaction is not None
    sim.configure(card_delay=1.0)
    hang_up_after(sim, "/ecr?rqt=gone|c&cmd=sale|7000", 0.2)
    assert wait_until(lambda: not sim.terminal().busy, 2.0)
    record = sim.ledger.find("gone")[0]
    assert record.status is RecordStatus.APPROVED and record.stan == 2
    status, doc = get_json(sim, "/ecr?rqt=after|c&cmd=last%20trans")
    assert status == 200 and doc["requestId"] == "after"
    info = doc["transInfo"]
    assert (info["amount"], info["refNo"], info["receiptNo"]) == ("7000", record.ref_no, "000002")
    assert info["refNo"] != before.transaction.ref_no


def test_finish_with_the_client_that_gave_up(sim: Simulator) -> None:
    sim.configure(card_delay=0.8)
    with client(sim.http_url, timeout=0.2) as pos:
        got = attempt(pos, 7_000, request_id="impatient")
    # The client may not know, but must never call a payment that went through declined.
    assert isinstance(got, ReadTimeout) or got.outcome in (Outcome.APPROVED, Outcome.UNKNOWN)
    assert wait_until(lambda: bool(sim.ledger.find("impatient")), 2.0)
    assert sim.ledger.find("impatient")[0].status is RecordStatus.APPROVED


def test_cancel_the_hangup_frees_at_once_and_charges_nothing() -> None:
    with Simulator(card_delay=5, on_hangup="cancel") as sim:
        started = time.monotonic()
        hang_up_after(sim, "/ecr?rqt=gone|c&cmd=sale|7000", 0.2)
        assert wait_until(lambda: not sim.terminal().busy, 1.0)
        assert time.monotonic() - started < 0.8
        record = sim.ledger.find("gone")[0]
        assert (record.status, record.stan, record.delivery) == (
            RecordStatus.CANCELED, None, "none",
        )
        assert sim.ledger.last_stan == 0


def test_998_still_frees_when_the_ecr_hangs_up_under_finish(sim: Simulator) -> None:
    sim.configure(card_delay=0.5, no_answer_timeout=30)  # only the hang-up may free it
    started = time.monotonic()
    hang_up_after(sim, "/ecr?rqt=never|c&cmd=sale|7998", 0.1)
    assert wait_until(lambda: not sim.terminal().busy, 2.0)
    assert time.monotonic() - started < 1.5  # the card wait, not the 30 s timer
    record = sim.ledger.find("never")[0]
    assert (record.status, record.stan) == (RecordStatus.NEVER_ANSWERED, None)


# --- busy_last_trans -----------------------------------------------------------------------


def _sale_at_the_card_reader(sim: Simulator, amount: int, results: list[Any]) -> threading.Thread:
    def sell() -> None:
        results.append(get_json(sim, f"/ecr?rqt=slow|c&cmd=sale|{amount}"))

    thread = in_background(sell)
    assert wait_until(lambda: sim.terminal().busy)
    return thread


def test_answer_last_trans_during_a_sale_is_the_previous_success() -> None:
    with Simulator(busy_last_trans="answer") as sim:
        with client(sim.http_url) as pos:
            previous = pos.sale(1_000)
        assert previous.transaction is not None
        sim.configure(card_delay=1.0)
        results: list[Any] = []
        worker = _sale_at_the_card_reader(sim, 2_000, results)
        started = time.monotonic()
        status, doc = get_json(sim, "/ecr?rqt=during|c&cmd=last%20trans")
        assert time.monotonic() - started < 0.5  # at once, not after the sale
        assert status == 200 and doc["requestId"] == "during"
        assert doc["transInfo"]["refNo"] == previous.transaction.ref_no
        assert doc["transInfo"]["amount"] == "1000"
        assert sim.terminal().busy  # the sale goes on
        # Anything else is still refused while the customer is at the card reader.
        assert get_json(sim, "/ecr?rqt=other|c&cmd=sale|3000")[0] == 503
        assert get_json(sim, "/ecr?rqt=other|c&cmd=settle")[0] == 503
        worker.join(5)
    assert results and results[0][0] == 200
    assert results[0][1]["transInfo"]["amount"] == "2000"
    assert [r.amount for r in sim.ledger.transactions] == [1_000, 2_000]


def test_answer_with_nothing_before_is_code_25() -> None:
    with Simulator(busy_last_trans="answer", card_delay=0.8) as sim:
        worker = _sale_at_the_card_reader(sim, 2_000, [])
        status, doc = get_json(sim, "/ecr?rqt=during|c&cmd=last%20trans")
        assert status == 200 and doc["transInfo"]["returnCode"] == "25"
        worker.join(5)


def test_answer_does_not_cover_a_request_held_unanswered() -> None:
    # …998 keeps the terminal deaf: it is not a sale in progress.
    with Simulator(busy_last_trans="answer", no_answer_timeout=0.5) as sim:
        worker = in_background(lambda: hang_up_after(sim, "/ecr?rqt=n|c&cmd=sale|7998", 1.0))
        assert wait_until(lambda: sim.terminal().busy)
        assert get_json(sim, "/ecr?rqt=q|c&cmd=last%20trans")[0] == 503
        worker.join(5)


def test_refuse_last_trans_during_a_sale_is_busy(sim: Simulator) -> None:
    sim.configure(card_delay=0.5)
    worker = _sale_at_the_card_reader(sim, 2_000, [])
    status, doc = get_json(sim, "/ecr?rqt=during|c&cmd=last%20trans")
    assert status == 503 and doc["status"] == "BUSY"
    worker.join(5)


def test_answer_over_serial_while_the_sale_runs(sim: Simulator, raw_serial: RawSerial) -> None:
    with client(sim.serial_url) as pos:
        previous = pos.sale(1_000)
    assert previous.transaction is not None
    sim.configure(card_delay=0.8, busy_last_trans="answer")
    raw_serial.write(b"/ecr?rqt=slow|b&cmd=sale|2000")
    assert wait_until(lambda: sim.terminal().busy)
    raw_serial.write(b"/ecr?rqt=during|b&cmd=last trans")
    reply = raw_serial.read_reply(0.4)  # well before the sale's card wait ends
    assert reply is not None and sim.terminal().busy
    doc = json.loads(reply)
    assert doc["requestId"] == "during" and doc["command"] == "last_trans"
    assert doc["transInfo"]["refNo"] == previous.transaction.ref_no
    raw_serial.write(b"/ecr?rqt=other|b&cmd=settle")  # still refused: silence
    reply = raw_serial.read_reply(2.0)
    assert reply is not None and json.loads(reply)["requestId"] == "slow"
    assert raw_serial.read_reply(0.3) is None
    assert [r.command for r in sim.ledger.transactions] == ["sale", "sale"]


def test_refuse_over_serial_is_silence(sim: Simulator, raw_serial: RawSerial) -> None:
    sim.configure(card_delay=0.5)
    raw_serial.write(b"/ecr?rqt=slow|b&cmd=sale|2000")
    assert wait_until(lambda: sim.terminal().busy)
    raw_serial.write(b"/ecr?rqt=during|b&cmd=last trans")
    reply = raw_serial.read_reply(2.0)
    assert reply is not None and json.loads(reply)["requestId"] == "slow"
    assert raw_serial.read_reply(0.3) is None


# --- firmware ------------------------------------------------------------------------------


def _exchange_http(sim: Simulator) -> dict[str, dict[str, Any]]:
    """A sale, its ``last trans``, a void and a settlement, as raw JSON over HTTP."""
    got: dict[str, dict[str, Any]] = {}
    got["sale"] = get_json(sim, "/ecr?rqt=R1|C1&cmd=sale|5000")[1]
    got["last_sale"] = get_json(sim, "/ecr?rqt=R2|C2&cmd=last%20trans")[1]
    receipt = got["sale"]["transInfo"]["receiptNo"]
    got["void"] = get_json(sim, f"/ecr?rqt=R3|C3&cmd=void|{receipt}")[1]
    got["settle"] = get_json(sim, "/ecr?rqt=R4|C4&cmd=settle")[1]
    return got


def _exchange_serial(port: RawSerial) -> dict[str, dict[str, Any]]:
    got: dict[str, dict[str, Any]] = {}
    for name, line in (
        ("sale", b"/ecr?rqt=R1|C1&cmd=sale|5000"),
        ("last_sale", b"/ecr?rqt=R2|C2&cmd=last trans"),
    ):
        port.write(line)
        reply = port.read_reply()
        assert reply is not None
        got[name] = json.loads(reply)
    return got


def test_v201_no_ids_inside_sale_or_last_trans(sim: Simulator) -> None:
    got = _exchange_http(sim)
    sale, last = got["sale"], got["last_sale"]
    assert (sale["requestId"], sale["clientId"]) == ("R1", "C1")
    assert not set(INNER_IDS) & set(sale["transInfo"])
    assert (last["requestId"], last["clientId"]) == ("R2", "C2")  # only the new request's
    assert not set(INNER_IDS) & set(last["transInfo"])
    assert last["transInfo"] == sale["transInfo"]
    # The document's void and settlement samples repeat them: so does v201.
    assert (got["void"]["transInfo"]["requestId"], got["void"]["transInfo"]["clientId"]) == (
        "R3", "C3",
    )
    assert got["settle"]["transInfo"]["requestId"] == "R4"


def test_echo_repeats_the_original_ids_inside(sim: Simulator) -> None:
    sim.configure(firmware="echo")
    got = _exchange_http(sim)
    assert list(got["sale"]["transInfo"])[-2:] == list(INNER_IDS)
    assert got["sale"]["transInfo"]["requestId"] == "R1"
    last = got["last_sale"]
    assert last["requestId"] == "R2"
    assert (last["transInfo"]["requestId"], last["transInfo"]["clientId"]) == ("R1", "C1")
    assert got["void"]["transInfo"]["requestId"] == "R3"
    assert got["settle"]["transInfo"]["requestId"] == "R4"


@pytest.mark.parametrize("firmware", ["v201", "echo"])
def test_firmware_over_serial(sim: Simulator, raw_serial: RawSerial, firmware: str) -> None:
    sim.configure(firmware=firmware)
    got = _exchange_serial(raw_serial)
    inner = {k: got["last_sale"]["transInfo"].get(k) for k in INNER_IDS}
    assert got["last_sale"]["requestId"] == "R2"
    if firmware == "echo":
        assert inner == {"requestId": "R1", "clientId": "C1"}
        assert got["sale"]["transInfo"]["requestId"] == "R1"
    else:
        assert inner == {"requestId": None, "clientId": None}
        assert "requestId" not in got["sale"]["transInfo"]


def test_the_project_client_reads_both_firmwares(sim: Simulator) -> None:
    for firmware in ("v201", "echo"):
        sim.configure(firmware=firmware)
        with client(sim.http_url) as pos:
            sale = pos.sale(5_000)
            last = pos.last_transaction()
        assert sale.outcome is Outcome.APPROVED and last.transaction is not None
        assert sale.transaction is not None
        assert last.transaction.ref_no == sale.transaction.ref_no
        expected = sale.request_id if firmware == "echo" else None
        assert last.transaction.request_id == expected


# --- where they are set ---------------------------------------------------------------------

DEFAULTS = {"firmware": "v201", "on_hangup": "finish", "busy_last_trans": "refuse"}
OTHERS = {"firmware": "echo", "on_hangup": "cancel", "busy_last_trans": "answer"}


def test_config_endpoint_round_trips(sim: Simulator) -> None:
    status, doc = get_json(sim, "/_sim/config")
    assert status == 200 and DEFAULTS.items() <= doc["settings"].items()
    response = httpx.post(sim.http_url + "/_sim/config", json=OTHERS)
    assert response.status_code == 200 and OTHERS.items() <= response.json()["settings"].items()
    assert OTHERS.items() <= get_json(sim, "/_sim/config")[1]["settings"].items()
    assert OTHERS.items() <= get_json(sim, "/_sim/state")[1]["settings"].items()
    settings = sim.terminal().settings
    assert (settings.firmware, settings.on_hangup, settings.busy_last_trans) == (
        "echo", "cancel", "answer",
    )


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"firmware": "v202"}, ["firmware", "'v201'", "'echo'", "'v202'"]),
        ({"on_hangup": "ignore"}, ["on_hangup", "'finish'", "'cancel'"]),
        ({"busy_last_trans": True}, ["busy_last_trans", "'refuse'", "'answer'"]),
        ({"firmware": "echo", "on_hangup": 1}, ["on_hangup"]),
        ({"hangup": "cancel"}, ["'hangup'", "on_hangup"]),
    ],
)
def test_config_endpoint_refuses_bad_values(
    sim: Simulator, values: dict[str, Any], words: list[str]
) -> None:
    response = httpx.post(sim.http_url + "/_sim/config", json=values)
    assert response.status_code == 400
    doc = response.json()
    assert doc["status"] == "ERROR"
    for word in words:
        assert word in doc["message"]
    # All or nothing: a valid value beside a bad one is not applied either.
    assert DEFAULTS.items() <= get_json(sim, "/_sim/config")[1]["settings"].items()


def test_python_api_sets_and_checks_them() -> None:
    with Simulator(terminals=2, **OTHERS) as sim:
        for terminal in sim.terminals:
            assert terminal.settings.firmware == "echo"
            assert terminal.settings.on_hangup == "cancel"
            assert terminal.settings.busy_last_trans == "answer"
        sim.configure(terminal=1, firmware="v201")
        assert [t.settings.firmware for t in sim.terminals] == ["echo", "v201"]
        with pytest.raises(ConfigError, match=r"busy_last_trans.*'refuse', 'answer'"):
            sim.configure(busy_last_trans="sometimes")
        assert sim.state(0)["settings"]["busy_last_trans"] == "answer"
    with pytest.raises(ConfigError, match="firmware must be one of 'v201', 'echo'"):
        Simulator(firmware="V201")
    with pytest.raises(ConfigError, match="on_hangup"):
        Simulator(on_hangup="hold")
