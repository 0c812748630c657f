"""The simulator over real HTTP: the project's client, curl, raw sockets."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ecrlink import (
    Outcome,
    ReadError,
    ReadTimeout,
    RemoteProtocolError,
    Result,
)
from ecrlink.simulator import RecordStatus, Simulator
from tests.simulator.conftest import attempt, client, wait_until


def raw_exchange(url: str, data: bytes, *, timeout: float = 2.0) -> bytes:
    """Send raw bytes to the simulator, return everything it sends until it closes."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        # It may close on us mid-send (oversized); what it answered still counts.
        with contextlib.suppress(OSError):
            sock.sendall(data)
        out = b""
        try:
            while chunk := sock.recv(65536):
                out += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    return out


def get(url: str, target: str) -> tuple[int, dict[str, Any]]:
    response = httpx.get(url + target)
    return response.status_code, response.json()


# --- the happy path, by the client and by curl ------------------------------------------


def test_client_sale_void_last_trans_settle(sim: Simulator) -> None:
    with client(sim.http_url) as pos:
        sale = pos.sale(150_000, invoice="HD0001", reference="REF5")
        assert sale.outcome is Outcome.APPROVED and sale.transaction is not None
        assert sale.transaction.amount == 150_000
        void = pos.void(int(sale.transaction.receipt_no or 0))
        assert void.outcome is Outcome.APPROVED
        last = pos.last_transaction()
        assert last.transaction is not None and void.transaction is not None
        assert last.transaction.ref_no == void.transaction.ref_no  # the void itself
        assert last.transaction.request_id is None  # firmware v201: no ids inside transInfo
        settle = pos.settle()
        assert settle.outcome is Outcome.APPROVED
    statuses = [(r.command, r.status) for r in sim.ledger.transactions]
    assert statuses == [("sale", "voided"), ("void", "approved"), ("settle", "approved")]
    record = sim.ledger.transactions[0]
    assert (record.invoice, record.reference, record.request_id) == (
        "HD0001", "REF5", sale.request_id,
    )


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_sale_void_last_trans_settle(sim: Simulator) -> None:
    def curl(target: str) -> dict[str, Any]:
        out = subprocess.run(
            ["curl", "-s", "--max-time", "5", sim.http_url + target],
            check=True, capture_output=True,
        ).stdout
        doc = json.loads(out.decode("utf-8"))
        assert isinstance(doc, dict)
        return doc

    sale = curl("/ecr?rqt=Request:001|UserName:Manh123&cmd=sale|123456|1|2|3|4|5")
    assert sale["transInfo"]["returnCode"] == "00"
    receipt = int(sale["transInfo"]["receiptNo"])
    void = curl(f"/ecr?rqt=Request:002|UserName:Manh123&cmd=void|{receipt}")
    assert void["transInfo"]["returnCode"] == "00"
    last = curl("/ecr?rqt=Request:003|UserName:Manh123&cmd=last%20trans")
    assert last["command"] == "last_trans" and last["requestId"] == "Request:003"
    assert last["transInfo"]["transType"] == "2"
    assert last["transInfo"]["refNo"] == void["transInfo"]["refNo"]
    assert "requestId" not in last["transInfo"]  # firmware v201, as the document's sample
    settle = curl("/ecr?rqt=Request:004|UserName:Manh123&cmd=settle|YES")
    assert settle["transInfo"]["transStatus"] == "APPROVE"


@pytest.mark.parametrize(
    "target",
    [
        "/ecr?rqt=a|b&cmd=last%20trans",
        "/ecr?rqt=a|b&cmd=last+trans",
        "/ecr?rqt=a|b&cmd=last_trans",
        "/ecr?rqt=a%7Cb&cmd=last%20trans",
    ],
)
def test_last_trans_spellings_and_encoded_form(sim: Simulator, target: str) -> None:
    status, doc = get(sim.http_url, target)
    assert status == 200 and doc["command"] == "last_trans"


def test_raw_space_in_target_and_short_sale(sim: Simulator) -> None:
    raw = raw_exchange(sim.http_url, b"GET /ecr?rqt=a|b&cmd=last trans HTTP/1.1\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Content-Type: application/json; charset=utf-8\r\n" in raw
    status, doc = get(sim.http_url, "/ecr?rqt=a|b&cmd=sale|2000|F1")
    assert status == 200 and doc["transInfo"]["amount"] == "2000"
    assert sim.ledger.transactions[-1].fields == ("F1", "", "", "", "")


# --- outcomes by amount -----------------------------------------------------------------


@pytest.mark.parametrize(("amount", "code"), [(10_051, "51"), (10_055, "55"), (10_005, "05"),
                                              (10_091, "91"), (10_000, "00")])
def test_declines_by_amount(sim: Simulator, amount: int, code: str) -> None:
    with client(sim.http_url) as pos:
        result = pos.sale(amount)
    assert result.return_code == code and result.status is not None
    assert result.status.value == "DONE"
    assert sim.ledger.transactions[-1].status == ("approved" if code == "00" else "declined")


def test_999_is_canceled(sim: Simulator) -> None:
    with client(sim.http_url) as pos:
        assert pos.sale(20_999).outcome is Outcome.CANCELED
    assert sim.ledger.transactions[-1].status is RecordStatus.CANCELED
    assert sim.ledger.last_stan == 0


def test_998_never_answers_then_frees_on_hangup(sim: Simulator) -> None:
    sim.configure(no_answer_timeout=30)  # only the hang-up may free it here
    with client(sim.http_url, timeout=0.3) as pos:
        pos.sale(5_000)
        got = attempt(pos, 20_998)
    # Nothing was charged: the client must not call it approved.
    assert isinstance(got, ReadTimeout) or (
        isinstance(got, Result) and got.outcome is not Outcome.APPROVED
    )
    assert wait_until(lambda: not sim.terminal().busy, 1.0)
    with client(sim.http_url) as pos:
        last = pos.last_transaction()
    assert last.transaction is not None and last.transaction.amount == 5_000
    record = sim.ledger.transactions[1]
    assert (record.amount, record.status, record.stan) == (20_998, "never_answered", None)


@pytest.mark.parametrize(("amount", "error"), [(20_997, ReadError), (20_996, RemoteProtocolError)])
def test_997_996_approved_then_reply_lost_or_cut(
    sim: Simulator, amount: int, error: type[Exception]
) -> None:
    with client(sim.http_url) as pos:
        got = attempt(pos, amount, request_id="in-doubt")
        last = pos.last_transaction()
    # The bank took the money: the client may not know it, but must never say declined.
    assert isinstance(got, error) or (
        isinstance(got, Result) and got.outcome in (Outcome.APPROVED, Outcome.UNKNOWN)
    )
    record = sim.ledger.find("in-doubt")[0]
    assert last.transaction is not None
    assert (last.transaction.ref_no, last.transaction.amount) == (record.ref_no, amount)
    assert record.status is RecordStatus.APPROVED
    assert record.delivery == ("lost" if amount == 20_997 else "truncated")


# --- script, control endpoints -----------------------------------------------------------


def test_script_through_http_overrides_amounts(sim: Simulator) -> None:
    response = httpx.post(sim.http_url + "/_sim/script", json=["decline:05", "cancel", "approve"])
    assert response.status_code == 200 and response.json()["script"] == [
        "decline:05", "cancel", "approve",
    ]
    assert httpx.post(sim.http_url + "/_sim/script", json=["decline:5"]).status_code == 400
    assert httpx.post(sim.http_url + "/_sim/script", content=b"{nope").status_code == 400
    with client(sim.http_url) as pos:
        assert pos.sale(1000).return_code == "05"
        assert pos.sale(1000).outcome is Outcome.CANCELED
        assert pos.sale(1051).outcome is Outcome.APPROVED  # the script wins over the amount
        assert pos.sale(1051).return_code == "51"  # script empty: the amount rule again
    state = httpx.get(sim.http_url + "/_sim/state").json()
    assert state["script"] == [] and len(state["transactions"]) == 4
    assert state["batch_no"] == 1 and state["last_receipt"] == 3


def test_script_through_api_and_reset(sim: Simulator) -> None:
    sim.script(["lost_reply", "decline:62"])
    with client(sim.http_url) as pos:
        got = attempt(pos, 1000)
        assert isinstance(got, ReadError) or got.outcome is not Outcome.DECLINED
        assert pos.sale(1000).return_code == "62"
    response = httpx.post(sim.http_url + "/_sim/reset")
    assert response.status_code == 200
    assert sim.ledger.transactions == () and sim.ledger.last_stan == 0
    response = httpx.post(sim.http_url + "/_sim/config", json={"card_delay": 0.05})
    assert response.json()["settings"]["card_delay"] == 0.05
    assert httpx.post(sim.http_url + "/_sim/config", json={"speed": 1}).status_code == 400


# --- one at a time, and ECRs that vanish ------------------------------------------------


def test_busy_terminal_answers_503(sim: Simulator) -> None:
    sim.configure(card_delay=0.4)
    results: list[Outcome] = []

    def first() -> None:
        with client(sim.http_url, timeout=3) as pos:
            results.append(pos.sale(1000).outcome)

    worker = threading.Thread(target=first)
    worker.start()
    assert wait_until(lambda: sim.terminal().busy)
    response = httpx.get(sim.http_url + "/ecr?rqt=x|y&cmd=last%20trans")
    assert response.status_code == 503 and response.json()["status"] == "BUSY"
    response = httpx.get(sim.http_url + "/ecr?rqt=x|y&cmd=sale|2000")
    assert response.status_code == 503
    worker.join()
    assert results == [Outcome.APPROVED]
    assert [r.amount for r in sim.ledger.transactions] == [1000]


def test_hangup_during_card_wait_frees_the_terminal_and_charges_nothing(sim: Simulator) -> None:
    sim.configure(card_delay=5, on_hangup="cancel")
    host, port = sim.http_url.removeprefix("http://").rsplit(":", 1)
    sock = socket.create_connection((host, int(port)))
    sock.sendall(b"GET /ecr?rqt=gone|c&cmd=sale|7000 HTTP/1.1\r\n\r\n")
    assert wait_until(lambda: sim.terminal().busy)
    started = time.monotonic()
    sock.close()
    assert wait_until(lambda: not sim.terminal().busy, 1.0)
    assert time.monotonic() - started < 0.5
    record = sim.ledger.find("gone")[0]
    assert record.status is RecordStatus.CANCELED and record.stan is None
    sim.configure(card_delay=0)
    with client(sim.http_url) as pos:
        assert pos.sale(1000).outcome is Outcome.APPROVED


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_killed_client_after_the_bank_approved_is_still_charged(sim: Simulator) -> None:
    sim.configure(bank_delay=0.5)
    proc = subprocess.Popen(
        ["curl", "-s", sim.http_url + "/ecr?rqt=killed|c&cmd=sale|8000"],
        stdout=subprocess.DEVNULL,
    )
    assert wait_until(lambda: bool(sim.ledger.find("killed")))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert wait_until(lambda: not sim.terminal().busy, 2.0)
    sim.configure(bank_delay=0)
    with client(sim.http_url) as pos:
        last = pos.last_transaction()
    record = sim.ledger.find("killed")[0]
    assert last.transaction is not None and last.transaction.ref_no == record.ref_no
    assert record.status is RecordStatus.APPROVED


# --- garbage never stops it ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"\x00\xff\x16\x03 garbage\r\n\r\n", b"400"),
        (b"GET /ecr?rqt=a|b&cmd=sale|12x HTTP/1.1\r\n\r\n", b"400"),
        (b"GET /ecr?rqt=a|b&cmd=sale|100|" + b"F" * 30 + b" HTTP/1.1\r\n\r\n", b"400"),
        (b"GET /ecr?rqt=a|b&cmd=" + b"A" * 2000 + b" HTTP/1.1\r\n\r\n", b"414"),
        (b"GET /" + b"A" * 100_000 + b" HTTP/1.1\r\n\r\n", b"414"),
        (b"GET / HTTP/1.1\r\n" + b"X-A: b\r\n" * 100 + b"\r\n", b"431"),
        (b"POST /_sim/script HTTP/1.1\r\nContent-Length: 999999\r\n\r\n", b"413"),
        (b"DELETE /ecr?rqt=a|b&cmd=settle HTTP/1.1\r\n\r\n", b"405"),
        (b"GET /index.html HTTP/1.1\r\n\r\n", b"404"),
        (b"GET /ecr?rqt=a|b&cmd=sale|100 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", b"501"),
    ],
)
def test_garbage_gets_an_error_and_changes_nothing(
    sim: Simulator, data: bytes, status: bytes
) -> None:
    raw = raw_exchange(sim.http_url, data)
    if raw:  # an oversized request may be cut off by a reset before its answer arrives
        assert raw.startswith(b"HTTP/1.1 " + status), raw[:80]
        body = raw.split(b"\r\n\r\n", 1)[1]
        assert json.loads(body)["status"] == "ERROR"
    assert sim.ledger.transactions == ()
    with client(sim.http_url) as pos:
        assert pos.sale(1000).outcome is Outcome.APPROVED


@pytest.fixture
def half_open(sim: Simulator) -> Iterator[socket.socket]:
    host, port = sim.http_url.removeprefix("http://").rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=3)
    yield sock
    sock.close()


def test_half_written_request_is_dropped_and_blocks_no_one(
    sim: Simulator, half_open: socket.socket
) -> None:
    half_open.sendall(b"GET /ecr?rqt=a|b&cmd=sale|100")  # ... and nothing more
    with client(sim.http_url) as pos:
        assert pos.sale(1000).outcome is Outcome.APPROVED
    assert half_open.recv(100) == b""  # dropped once head_timeout (0.5 s) passes
    assert [r.amount for r in sim.ledger.transactions] == [1000]


def test_many_clients_vanishing_mid_request_leave_it_serving(sim: Simulator) -> None:
    host, port = sim.http_url.removeprefix("http://").rsplit(":", 1)
    for i in range(30):
        sock = socket.create_connection((host, int(port)))
        sock.sendall(f"GET /ecr?rqt=v{i}|c&cmd=sale|{1000 + i}".encode()[: 10 + i])
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()  # with an RST
    with client(sim.http_url) as pos:
        assert pos.sale(1000).outcome is Outcome.APPROVED


def test_many_terminals_on_consecutive_ports() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        base = probe.getsockname()[1]
    try:
        sim = Simulator(http=("127.0.0.1", base), terminals=3).start()
    except Exception:  # the port range was taken meanwhile: fall back to free ports
        pytest.skip("no free consecutive ports")
    try:
        ports = [int(u.rsplit(":", 1)[1]) for u in sim.http_urls]
        assert ports == [base, base + 1, base + 2]
        tids = set()
        for i, url in enumerate(sim.http_urls):
            with client(url) as pos:
                result = pos.sale(1000 * (i + 1))
            assert result.transaction is not None
            tids.add(result.transaction.tid)
        assert len(tids) == 3
        assert [len(t.ledger.transactions) for t in sim.terminals] == [1, 1, 1]
    finally:
        sim.stop()


def test_stop_does_not_wait_for_held_or_waiting_connections() -> None:
    sim = Simulator(terminals=2, card_delay=30).start()
    socks = []
    try:
        sim.configure(terminal=0, card_delay=0)
        for url, amount in zip(sim.http_urls, (1_998, 1_000), strict=True):
            host, port = url.removeprefix("http://").rsplit(":", 1)
            sock = socket.create_connection((host, int(port)))
            sock.sendall(f"GET /ecr?rqt=a|b&cmd=sale|{amount} HTTP/1.1\r\n\r\n".encode())
            socks.append(sock)
        assert wait_until(lambda: all(t.busy for t in sim.terminals))
    finally:
        started = time.monotonic()
        sim.stop()
        assert time.monotonic() - started < 3
        for sock in socks:
            sock.close()
    held, waiting = (t.ledger.transactions for t in sim.terminals)
    assert [r.status for r in held] == [RecordStatus.NEVER_ANSWERED]
    assert waiting == ()  # switched off before a card was read: nothing happened
