"""The simulator over a real pseudo-terminal: the project's client and raw bytes."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from ecrlink import Outcome, ReadTimeout, Result
from ecrlink.simulator import RecordStatus, Simulator
from tests.simulator.conftest import RawSerial, attempt, client, wait_until


def test_symlink_points_at_the_pty_and_goes_away(tmp_path: Path) -> None:
    link = tmp_path / "ecr-port"
    with Simulator(http=None, serial=link) as sim:
        assert sim.serial_url == f"serial://{link}"
        assert os.path.realpath(link) == sim.serial_devices[0]
        assert sim.serial_devices[0].startswith("/dev/pts/")
    assert not link.exists() and not link.is_symlink()


def test_client_sale_void_last_trans_settle(sim: Simulator) -> None:
    with client(sim.serial_url) as pos:
        sale = pos.sale(2000, invoice="HD9", reference="R9")
        assert sale.outcome is Outcome.APPROVED and sale.transaction is not None
        void = pos.void(sale.transaction.receipt_no or "")
        assert void.outcome is Outcome.APPROVED
        last = pos.last_transaction()
        assert last.transaction is not None and void.transaction is not None
        assert last.transaction.ref_no == void.transaction.ref_no  # the void itself
        assert pos.settle().outcome is Outcome.APPROVED
        assert pos.void(sale.transaction.receipt_no or "").return_code == "12"
    assert [r.status for r in sim.ledger.transactions] == [
        "voided", "approved", "approved", "declined",
    ]


def test_http_and_serial_share_one_terminal(sim: Simulator) -> None:
    with client(sim.http_url) as pos:
        pos.sale(1000)
    with client(sim.serial_url) as pos:
        result = pos.sale(2000)
    assert result.transaction is not None and result.transaction.receipt_no == "000002"


@pytest.mark.parametrize(("amount", "code"), [(3_051, "51"), (3_055, "55"), (3_005, "05"),
                                              (3_091, "91")])
def test_declines_by_amount(sim: Simulator, amount: int, code: str) -> None:
    with client(sim.serial_url) as pos:
        assert pos.sale(amount).return_code == code


def test_999_is_canceled(sim: Simulator) -> None:
    with client(sim.serial_url) as pos:
        assert pos.sale(3_999).outcome is Outcome.CANCELED


def test_998_silence_until_the_terminals_own_timer(sim: Simulator, raw_serial: RawSerial) -> None:
    raw_serial.write(b"/ecr?rqt=a|b&cmd=sale|3998")
    assert raw_serial.read_reply(0.2) is None
    raw_serial.write(b"/ecr?rqt=c|b&cmd=last trans")  # ignored: the terminal is still busy
    assert raw_serial.read_reply(0.15) is None
    assert wait_until(lambda: not sim.terminal().busy, 1.0)  # no_answer_timeout = 0.5 s
    raw_serial.write(b"/ecr?rqt=d|b&cmd=last trans")
    reply = raw_serial.read_reply()
    assert reply is not None and json.loads(reply)["transInfo"]["returnCode"] == "25"
    assert [r.status for r in sim.ledger.transactions] == ["never_answered"]


def test_998_with_the_client(sim: Simulator) -> None:
    with client(sim.serial_url, timeout=0.3) as pos:
        got = attempt(pos, 3_998)
        assert isinstance(got, ReadTimeout) or got.outcome is not Outcome.APPROVED
        assert wait_until(lambda: not sim.terminal().busy, 1.0)
        assert pos.sale(1000).outcome is Outcome.APPROVED


@pytest.mark.parametrize("amount", [3_997, 3_996])
def test_997_996_approved_then_silence_or_half_a_reply(sim: Simulator, amount: int) -> None:
    with client(sim.serial_url, timeout=0.5) as pos:
        got = attempt(pos, amount, request_id="in-doubt")
        assert isinstance(got, ReadTimeout) or (
            isinstance(got, Result) and got.outcome in (Outcome.APPROVED, Outcome.UNKNOWN)
        )
        last = pos.last_transaction()
    record = sim.ledger.find("in-doubt")[0]
    assert last.transaction is not None and last.transaction.ref_no == record.ref_no
    assert record.status is RecordStatus.APPROVED


def test_second_request_while_busy_is_dropped(sim: Simulator, raw_serial: RawSerial) -> None:
    sim.configure(card_delay=0.4)
    raw_serial.write(b"/ecr?rqt=first|b&cmd=sale|1000")
    assert wait_until(lambda: sim.terminal().busy)
    raw_serial.write(b"/ecr?rqt=second|b&cmd=sale|2000")
    reply = raw_serial.read_reply()
    assert reply is not None and json.loads(reply)["requestId"] == "first"
    assert raw_serial.read_reply(0.3) is None
    assert [r.request_id for r in sim.ledger.transactions] == ["first"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x00\x01\x02garbage\xff", "not ASCII"),
        (b"\x00\x01\x02garbage", "must contain '/ecr?'"),
        (b"/ecr?rqt=a|b&cmd=sa", "unknown command"),
        (b"/ecr?rqt=a|b&cmd=sale|100|" + b"X" * 21, "at most 20"),
        (b"/ecr?rqt=a|b&cmd=sale|" + b"9" * 5000, "longer than 1024"),
    ],
)
def test_garbage_gets_an_error_reply_and_changes_nothing(
    sim: Simulator, raw_serial: RawSerial, data: bytes, message: str
) -> None:
    raw_serial.write(data)
    reply = raw_serial.read_reply()
    assert reply is not None
    doc = json.loads(reply)
    assert doc["status"] == "ERROR" and message in doc["message"]
    assert sim.ledger.transactions == ()
    with client(sim.serial_url) as pos:
        assert pos.sale(1000).outcome is Outcome.APPROVED


def test_request_written_in_pieces_is_one_request(sim: Simulator, raw_serial: RawSerial) -> None:
    for piece in (b"/ecr?rqt=a|b", b"&cmd=sale|", b"4200"):
        raw_serial.write(piece)
        time.sleep(0.01)  # shorter than the idle gap: still the same request
    reply = raw_serial.read_reply()
    assert reply is not None and json.loads(reply)["transInfo"]["amount"] == "4200"


def test_ecr_port_closed_and_reopened(sim: Simulator) -> None:
    for _ in range(3):
        port = RawSerial(sim.serial_url.removeprefix("serial://"))
        port.write(b"/ecr?rqt=a|b&cmd=sale|1")  # and close before the reply
        port.close()
        time.sleep(0.08)
    with client(sim.serial_url) as pos:
        assert pos.last_transaction().transaction is not None


def test_baud_pacing_takes_the_time_of_the_wire(tmp_path: Path) -> None:
    with Simulator(http=None, serial=tmp_path / "ecr", baud_pacing=True) as sim:
        port = RawSerial(sim.serial_url.removeprefix("serial://"))
        try:
            port.write(b"/ecr?rqt=a|b&cmd=sale|2000")
            time.sleep(0.05)
            started = time.monotonic()
            reply = port.read_reply()
            took = time.monotonic() - started
        finally:
            port.close()
    assert reply is not None
    wire = len(reply) * 10 / 115200
    assert took >= wire * 0.8, (took, wire)
