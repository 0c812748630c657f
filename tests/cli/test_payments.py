"""sale, void, settle, last through Click's runner against the in-process simulator."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from ecrlink.cli.exit_codes import ExitStatus
from ecrlink.journal import Journal, State, default_journal_path
from ecrlink.protocol import Outcome, Result
from ecrlink.simulator import Simulator
from tests.conftest import RawServer, http_reply

from .conftest import run

RESULT_KEYS = set(Result(command="sale", status=None, outcome=Outcome.APPROVED).to_dict())


def _json(stdout: str) -> dict[str, object]:
    data = json.loads(stdout)  # exactly one document, nothing else on stdout
    assert isinstance(data, dict)
    assert set(data) == RESULT_KEYS
    return data


def test_sale_approved_prints_a_receipt_with_only_the_allowed_fields(sim: Simulator) -> None:
    r = run("sale", "150000", "--invoice", "HD0001", "-t", sim.http_url, "--lang", "en")
    assert r.exit_code == ExitStatus.OK, r.stderr
    out = r.stdout
    assert "APPROVED" in out and "150.000 VND" in out
    for label in ("Card", "Cardholder", "Approval code", "Ref. no", "TID", "MID", "Batch",
                  "Receipt", "Time"):
        assert label in out
    assert "31002095" in out  # the simulator's TID
    assert re.search(r"\d{6}X{6}\d{4}|\*{4,}\d{4}|X{4,}\d{4}", out), out  # card masked
    for hidden in ("STAN", "A0000000", "emv", "F5CC"):
        assert hidden not in out
    assert r.stderr == ""


def test_sale_json_is_exactly_result_to_dict(sim: Simulator) -> None:
    r = run("sale", "150.000", "--invoice", "HD0002", "--json", "-t", sim.http_url)
    assert r.exit_code == 0
    data = _json(r.stdout)
    assert data["outcome"] == "approved" and data["approved"] is True
    assert data["transaction"]["amount"] == 150_000  # type: ignore[index]
    entry = Journal(default_journal_path()).get(data["journal_id"])  # type: ignore[arg-type]
    assert entry.state is State.APPROVED and entry.invoice == "HD0002"


def test_sale_over_serial(sim: Simulator) -> None:
    r = run("sale", "85000", "--field", "4=Ban 12", "--json", "-t", sim.serial_url)
    assert r.exit_code == 0, r.stderr
    assert _json(r.stdout)["outcome"] == "approved"
    assert sim.ledger.transactions[-1].fields[3] == "Ban 12"


@pytest.mark.parametrize(
    ("amount", "code", "outcome"),
    [("120051", ExitStatus.DECLINED, "declined"), ("50999", ExitStatus.CANCELED, "canceled"),
     ("200997", ExitStatus.OK, "approved"), ("200996", ExitStatus.OK, "approved")],
)
def test_outcomes_and_exit_codes(
    sim: Simulator, amount: str, code: ExitStatus, outcome: str
) -> None:
    r = run("sale", amount, "--json", "-t", sim.http_url)
    assert r.exit_code == code
    assert _json(r.stdout)["outcome"] == outcome


def test_no_answer_is_resolved_by_last_trans_as_not_approved(sim: Simulator) -> None:
    # With the previous approval in this journal, last trans proves ours never happened.
    assert run("sale", "1000", "--json", "-t", sim.http_url).exit_code == 0
    r = run("sale", "30998", "--json", "--timeout", "0.8", "-t", sim.http_url)
    assert r.exit_code == ExitStatus.DECLINED
    data = _json(r.stdout)
    assert data["outcome"] == "declined" and "no complete reply" in str(data["detail"])


def test_no_answer_on_a_fresh_journal_is_placed_by_asking_first(sim: Simulator) -> None:
    # A fresh journal knows no earlier transaction: it asks last trans before sending,
    # so once the sale's own deadline has passed, an unchanged answer proves "not approved".
    r = run("sale", "30998", "--json", "--timeout", "0.8", "-t", sim.http_url)
    assert r.exit_code == ExitStatus.DECLINED
    assert "from before ours" in str(_json(r.stdout)["detail"])
    assert Journal(default_journal_path()).unresolved() == []


def test_decline_in_vietnamese_says_why_and_what_to_do(sim: Simulator) -> None:
    r = run("sale", "120051", "--lang", "vi", "-t", sim.http_url)
    assert r.exit_code == ExitStatus.DECLINED
    assert "GIAO DỊCH KHÔNG THÀNH CÔNG" in r.stdout
    assert "Tài khoản không đủ số dư" in r.stdout
    assert "Đề nghị khách dùng thẻ khác" in r.stdout


def test_language_follows_the_locale(sim: Simulator) -> None:
    r = run("sale", "1000", "-t", sim.http_url, env={"LANG": "vi_VN.UTF-8"})
    assert "GIAO DỊCH THÀNH CÔNG" in r.stdout and "Số thẻ" in r.stdout
    r = run("sale", "1000", "--json", "-t", sim.http_url, env={"LANG": "vi_VN.UTF-8"})
    assert _json(r.stdout)["message"] == "Giao dịch thành công"


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["sale", "-5"], "amount"),
        (["sale", "0"], "amount"),
        (["sale", "12.5"], "amount"),
        (["sale", "1000", "--invoice", "A|B"], "invoice"),
        (["sale", "1000", "--ref", "R" * 25], "reference"),
        (["sale", "1000", "--field", "9=x"], "--field"),
        (["sale", "1000", "--invoice", "Hóa đơn"], "invoice"),
        (["void", "abc"], "receipt"),
    ],
)
def test_bad_input_is_one_line_naming_the_field_and_nothing_is_sent(
    sim: Simulator, args: list[str], field: str
) -> None:
    before = len(sim.ledger.transactions)
    r = run(*args, "-t", sim.http_url)
    assert r.exit_code == ExitStatus.BAD_INPUT
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and f": {field}: " in lines[0], r.stderr
    assert len(sim.ledger.transactions) == before
    assert list(Journal(default_journal_path()).entries()) == []


def test_unknown_url_scheme_is_bad_input() -> None:
    r = run("sale", "1000", "-t", "ftp://192.168.1.50")
    assert r.exit_code == ExitStatus.BAD_INPUT
    assert "terminal URL" in r.stderr and "ftp" in r.stderr and r.stdout == ""


def test_no_terminal_says_how_to_give_one() -> None:
    r = run("sale", "1000")
    assert r.exit_code == ExitStatus.BAD_INPUT
    assert "--terminal" in r.stderr and "ECRLINK_TERMINAL" in r.stderr
    assert "ecrlink simulate" in r.stderr


def test_usage_errors_are_bad_input() -> None:
    assert run("sale", "1000", "--bogus-option").exit_code == ExitStatus.BAD_INPUT
    assert run("void").exit_code == ExitStatus.BAD_INPUT
    assert run("no-such-command").exit_code == ExitStatus.BAD_INPUT


def test_unreachable_terminal() -> None:
    r = run("sale", "1000", "-t", "http://127.0.0.1:1")
    assert r.exit_code == ExitStatus.UNREACHABLE
    assert "unreachable" in r.stderr.lower()


def ctrl_c_at_the_card_reader(real: Callable[..., bytes]) -> Callable[..., bytes]:
    """An exchange that sends a sale and is interrupted while the customer is paying."""

    def exchange(self: object, line: str, *, timeout: float,
                 on_sent: Callable[[], None] | None = None) -> bytes:
        if "cmd=sale" not in line:
            return real(self, line, timeout=timeout, on_sent=on_sent)
        if on_sent is not None:
            on_sent()
        raise KeyboardInterrupt

    return exchange


def test_ctrl_c_before_the_request_left_is_failed_not_in_doubt(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ecrlink.transports.http import HttpTransport

    real = HttpTransport.exchange

    def connecting(self: object, line: str, *, timeout: float,
                   on_sent: Callable[[], None] | None = None) -> bytes:
        if "cmd=sale" in line:
            raise KeyboardInterrupt  # still connecting: on_sent never called
        return real(self, line, timeout=timeout, on_sent=on_sent)  # type: ignore[arg-type]

    monkeypatch.setattr(HttpTransport, "exchange", connecting)
    r = run("sale", "1000", "-t", sim.http_url)
    assert r.exit_code == ExitStatus.INTERRUPTED
    [entry] = Journal(default_journal_path()).entries(commands=["sale"])
    assert entry.state is State.FAILED and "not sent" in (entry.note or "")
    assert sim.ledger.find(entry.request_id) == []


def test_in_doubt_payment_blocks_the_next_sale_until_forced(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ecrlink.transports.http import HttpTransport

    interrupted = ctrl_c_at_the_card_reader(HttpTransport.exchange)

    with monkeypatch.context() as m:
        m.setattr(HttpTransport, "exchange", interrupted)
        r = run("sale", "1000", "-t", sim.http_url, "--lang", "en")
    assert r.exit_code == ExitStatus.UNKNOWN
    assert "IN DOUBT" in r.stderr and "ecrlink journal recover" in r.stderr
    [entry] = Journal(default_journal_path()).unresolved()
    assert entry.state is State.IN_DOUBT

    r = run("sale", "2000", "-t", sim.http_url)
    assert r.exit_code == ExitStatus.IN_DOUBT_PENDING
    assert str(entry.id) in r.stderr
    r = run("sale", "2000", "--force", "--json", "-t", sim.http_url)
    assert r.exit_code == ExitStatus.OK


def test_interrupt_message_in_vietnamese(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ecrlink.transports.http import HttpTransport

    interrupted = ctrl_c_at_the_card_reader(HttpTransport.exchange)

    monkeypatch.setattr(HttpTransport, "exchange", interrupted)
    r = run("sale", "1000", "-t", sim.http_url, "--lang", "vi")
    assert r.exit_code == ExitStatus.UNKNOWN
    assert "CHƯA RÕ KẾT QUẢ" in r.stderr


def test_void_settle_last(sim: Simulator) -> None:
    sale = _json(run("sale", "77000", "--json", "-t", sim.http_url).stdout)
    receipt = sale["transaction"]["receipt_no"]  # type: ignore[index]
    last = run("last", "--json", "-t", sim.http_url)
    assert last.exit_code == 0
    assert _json(last.stdout)["transaction"]["receipt_no"] == receipt  # type: ignore[index]
    void = run("void", receipt, "--json", "-t", sim.http_url)
    assert void.exit_code == 0, void.stderr
    assert _json(void.stdout)["command"] == "void"
    no = run("settle", "--no", "--json", "-t", sim.http_url)
    assert _json(no.stdout)["command"] == "settle"
    settle = run("settle", "-t", sim.http_url, "--lang", "vi")
    assert settle.exit_code == 0, settle.stdout
    assert "GIAO DỊCH THÀNH CÔNG" in settle.stdout


def test_void_of_unknown_receipt_is_declined(sim: Simulator) -> None:
    r = run("void", "999999", "--json", "-t", sim.http_url)
    assert r.exit_code == ExitStatus.DECLINED
    assert _json(r.stdout)["outcome"] == "declined"


def test_verbose_shows_the_wire_with_cards_masked(sim: Simulator) -> None:
    r = run("sale", "1000", "-v", "--json", "-t", sim.http_url)
    assert r.exit_code == 0
    assert ">>> " in r.stderr and "cmd=sale|1000|" in r.stderr and "<<< " in r.stderr
    cards = re.findall(r'"cardNo":"([^"]*)"', r.stderr)
    assert cards and all("XXXX" in c for c in cards)  # masked on the wire log
    _json(r.stdout)  # the wire log stays off stdout


def test_no_journal(sim: Simulator) -> None:
    r = run("sale", "1000", "--no-journal", "--json", "-t", sim.http_url)
    assert r.exit_code == 0 and _json(r.stdout)["journal_id"] is None
    assert not default_journal_path().exists()


def test_help_documents_the_exit_codes() -> None:
    r = run("--help")
    assert r.exit_code == 0
    for status in ExitStatus:
        assert f"{status.value}  {status.meaning}" in r.stdout
    assert "reconcile" in r.stdout
    assert "Exit codes" in run("sale", "--help").stdout


def test_amount_mismatch_exits_11_and_says_what_was_charged(
    raw_server: Callable[..., RawServer],
) -> None:
    def wrong_amount(conn: socket.socket, request: bytes) -> None:
        line = request.split(b" ")[1].decode()
        rid = line.split("rqt=")[1].split("|")[0]
        body = json.dumps({
            "requestId": rid, "command": line.split("cmd=")[1].split("|")[0].replace(
                "%20", " "),
            "status": "DONE", "transInfo": {
                "transType": "1", "amount": "650000", "returnCode": "00", "STAN": "000007",
                "receiptNo": "000007", "batchNo": "1", "refNo": "R7", "approvalCode": "A7",
                "transStatus": "APPROVE"}}).encode()
        conn.sendall(http_reply(body))

    server = raw_server(wrong_amount)
    r = run("sale", "150000", "-t", server.url, "--lang", "en")
    assert r.exit_code == ExitStatus.AMOUNT_MISMATCH == 11
    assert "WRONG AMOUNT CHARGED" in r.stdout and "650000" in r.stdout
    assert "000007" in r.stdout  # the receipt to void
    assert "APPROVED" not in r.stdout
    [entry] = Journal(default_journal_path()).entries(commands=["sale"])
    assert (entry.state, entry.amount, entry.charged_amount) == (
        State.AMOUNT_MISMATCH, 150000, 650000)
    vi = run("sale", "150000", "-t", server.url, "--lang", "vi")
    assert vi.exit_code == 11 and "SAI SỐ TIỀN" in vi.stdout


def test_a_paid_invoice_exits_12_and_names_the_payment(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run("sale", "81000", "--invoice", "HD-TWICE", "-t", sim.http_url).exit_code == 0
    again = run("sale", "81000", "--invoice", "HD-TWICE", "-t", sim.http_url, "--lang", "en")
    assert again.exit_code == ExitStatus.DUPLICATE_INVOICE == 12
    assert "HD-TWICE" in again.stderr and "already paid" in again.stderr
    vi = run("sale", "81000", "--invoice", "HD-TWICE", "-t", sim.http_url, "--lang", "vi")
    assert vi.exit_code == 12 and "đã được thanh toán" in vi.stderr
    forced = run("sale", "81000", "--invoice", "HD-TWICE", "--allow-duplicate",
                 "-t", sim.http_url)
    assert forced.exit_code == 0
    config = tmp_path / "config.toml"
    config.write_text("duplicate_window = 0.01\n")
    monkeypatch.setenv("ECRLINK_CONFIG", str(config))
    assert run("sale", "81000", "--invoice", "HD-TWICE", "-t", sim.http_url).exit_code == 0
    config.write_text("duplicate_window = -1\n")
    bad = run("sale", "81000", "--invoice", "HD-TWICE", "-t", sim.http_url)
    assert bad.exit_code == ExitStatus.BAD_INPUT and "duplicate_window" in bad.stderr


def test_under_json_every_error_is_also_a_json_object_on_stdout(sim: Simulator) -> None:
    bad = run("sale", "-5", "--json", "-t", sim.http_url)
    assert bad.exit_code == ExitStatus.BAD_INPUT
    error = json.loads(bad.stdout)["error"]
    assert (error["code"], error["exit"], error["type"]) == ("bad_input", 4, "FieldError")
    assert (error["field"], error["rule"]) == ("amount", "must be greater than 0")
    assert bad.stderr.strip() and len(bad.stdout.splitlines()) == 1
    unreachable = run("sale", "1000", "--json", "-t", "http://127.0.0.1:1", "--lang", "en")
    error = json.loads(unreachable.stdout)["error"]
    assert unreachable.exit_code == error["exit"] == ExitStatus.UNREACHABLE
    assert error["code"] == "unreachable" and "127.0.0.1:1" in error["message"]
    assert run("sale", "9000", "--invoice", "HD-J", "--json", "-t", sim.http_url).exit_code == 0
    twice = run("sale", "9000", "--invoice", "HD-J", "--json", "-t", sim.http_url)
    error = json.loads(twice.stdout)["error"]
    assert twice.exit_code == error["exit"] == 12 and len(error["journal_ids"]) == 1


def test_cashier_true_messages_for_settle_no_answer_and_refusal(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    settled = json.loads(run("settle", "--json", "-t", sim.http_url, "--lang", "en").stdout)
    assert settled["approved"] and settled["message"] == "Approved"
    assert run("sale", "1000", "--json", "-t", sim.http_url).exit_code == 0
    silent = json.loads(run("sale", "30998", "--json", "--timeout", "0.8", "-t",
                            sim.http_url, "--lang", "en").stdout)
    assert silent["outcome"] == "declined"
    assert silent["message"] == "Not charged: the terminal did not complete the payment"
    assert "bank" not in silent["advice"]
    from ecrlink.transports.http import HttpTransport

    with monkeypatch.context() as patch:
        patch.setattr(HttpTransport, "exchange", ctrl_c_at_the_card_reader(
            HttpTransport.exchange))
        assert run("sale", "2000", "-t", sim.http_url).exit_code == ExitStatus.UNKNOWN
    refused = run("sale", "3000", "-t", sim.http_url, "--lang", "en")
    assert refused.exit_code == ExitStatus.IN_DOUBT_PENDING
    assert "--force" in refused.stderr and "force=True" not in refused.stderr
