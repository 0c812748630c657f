"""Client-level decisions: request ids, settings, the amount check."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable

import pytest

from ecrlink import ConfigError, FieldError, Outcome, Terminal
from ecrlink.journal import State
from tests.conftest import RawServer, http_reply

Start = Callable[[Callable[[socket.socket, bytes], None]], RawServer]


def echo_sale(amount: str) -> Callable[[socket.socket, bytes], None]:
    """A terminal that approves whatever request id it gets, for ``amount``."""

    def handler(conn: socket.socket, request: bytes) -> None:
        line = request.split(b" ")[1].decode()
        rid, cid = line.split("rqt=")[1].split("&")[0].split("|")
        body = json.dumps({
            "requestId": rid, "clientId": cid, "command": "sale", "status": "DONE",
            "transInfo": {"amount": amount, "returnCode": "00", "receiptNo": "1"},
        }).encode()
        conn.sendall(http_reply(body))

    return handler


def test_generated_request_ids_are_unique_and_short(raw_server: Start) -> None:
    server = raw_server(echo_sale("5000"))
    with Terminal(server.url) as pos:
        ids = [pos.sale(5000).request_id for _ in range(30)]
    assert len(set(ids)) == 30
    assert all(i is not None and 0 < len(i) <= 20 for i in ids)


def test_approved_for_another_amount_is_its_own_outcome(raw_server: Start) -> None:
    server = raw_server(echo_sale("50000"))
    with Terminal(server.url) as pos:
        result = pos.sale(5000)
    assert result.outcome is Outcome.AMOUNT_MISMATCH and not result.approved
    assert result.transaction is not None and result.transaction.amount == 50000
    assert "50000" in result.message("en") and "50000" in result.message("vi")
    assert pos.journal is not None and result.journal_id is not None
    entry = pos.journal.get(result.journal_id)
    assert (entry.state, entry.amount, entry.charged_amount) == (
        State.AMOUNT_MISMATCH, 5000, 50000)


def test_bad_input_raises_before_anything_is_sent(raw_server: Start) -> None:
    server = raw_server(echo_sale("5000"))
    with Terminal(server.url) as pos:
        with pytest.raises(FieldError, match="invoice"):
            pos.sale(5000, invoice="A|B")
        with pytest.raises(FieldError, match="amount"):
            pos.sale(-1)
        with pytest.raises(FieldError, match="receipt_no"):
            pos.void("abc")
    assert server.requests == []


def test_transliteration_is_opt_in_per_terminal(raw_server: Start) -> None:
    server = raw_server(echo_sale("5000"))
    with Terminal(server.url, transliterate=True) as pos:
        pos.sale(5000, invoice="Hóa đơn 5")
    line = server.requests[-1].split(b"\r\n")[0]
    assert line.endswith(b"cmd=sale|5000|||Hoa%20don%205|| HTTP/1.1")


@pytest.mark.parametrize(
    "kwargs",
    [{"timeout": 0}, {"timeout": float("inf")}, {"connect_timeout": -1}, {"timeout": "5"}],
)
def test_timeouts_must_be_positive_and_finite(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        Terminal("http://127.0.0.1:1", **kwargs)  # type: ignore[arg-type]


def test_client_id_is_validated() -> None:
    with pytest.raises(FieldError, match="client_id"):
        Terminal("http://127.0.0.1:1", client_id="a|b")


def test_an_approval_for_another_amount_found_by_recovery_is_a_mismatch_too(
    raw_server: Start,
) -> None:
    """The sale's reply is lost; last trans shows our requestId approved for 65,000."""

    def handler(conn: socket.socket, request: bytes) -> None:
        line = request.split(b" ")[1].decode()
        rid, cid = line.split("rqt=")[1].split("&")[0].split("|")
        if "cmd=sale" in line:
            handler.sale_id = rid  # type: ignore[attr-defined]
            return  # the connection closes without a reply
        info = {"transType": "1", "amount": "65000", "returnCode": "00", "STAN": "000009",
                "receiptNo": "9", "batchNo": "1", "refNo": "R9", "approvalCode": "A9",
                "transStatus": "APPROVE"}
        sale_id = getattr(handler, "sale_id", None)
        if sale_id:
            info.update(requestId=sale_id, clientId=cid)
        conn.sendall(http_reply(json.dumps({
            "requestId": rid, "clientId": cid, "command": "last_trans", "status": "DONE",
            "transInfo": info}).encode()))

    server = raw_server(handler)
    with Terminal(server.url, recovery_timeout=2) as pos:
        result = pos.sale(15_000)
    assert result.outcome is Outcome.AMOUNT_MISMATCH and not result.approved, result.detail
    assert result.transaction is not None and result.transaction.amount == 65_000
    assert pos.journal is not None and result.journal_id is not None
    entry = pos.journal.get(result.journal_id)
    assert (entry.state, entry.amount, entry.charged_amount) == (
        State.AMOUNT_MISMATCH, 15_000, 65_000)
