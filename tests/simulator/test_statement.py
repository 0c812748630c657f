"""The acquirer's CSV statement, and that no full card number is ever written."""

from __future__ import annotations

import csv
import io
import logging
import re
from pathlib import Path

import httpx
import pytest

from ecrlink.simulator import STATEMENT_HEADER, Simulator
from ecrlink.simulator.cards import luhn_check_digit
from tests.simulator.conftest import StepClock, attempt, client

HEADER = (
    "Transaction date,TID,MID,Card number,Amount,Approval code,RRN,Invoice,Reference,"
    "Batch,Receipt,Type"
)


def read(path: Path) -> list[dict[str, str]]:
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 with BOM
    text = raw.decode("utf-8-sig")
    assert text.splitlines()[0] == HEADER
    return list(csv.DictReader(io.StringIO(text)))


def test_statement_rows(tmp_path: Path) -> None:
    assert ",".join(STATEMENT_HEADER) == HEADER
    with Simulator(clock=StepClock()) as sim, client(sim.http_url) as pos:
        sold = pos.sale(150_000, invoice="HD0001", reference="REF-1")
        pos.sale(20_051, invoice="DECLINED")
        pos.sale(20_999, invoice="CANCELED")
        attempt(pos, 20_997, invoice="LOST")
        pos.void(sold.transaction.receipt_no if sold.transaction else "")
        pos.settle()
        pos.sale(7_000, invoice="OPEN")
        assert sim.write_statement(tmp_path / "settled.csv") == 3
        assert sim.write_statement(tmp_path / "all.csv", include_open_batch=True) == 4
    rows = read(tmp_path / "settled.csv")
    assert [(r["Invoice"], r["Type"], r["Amount"]) for r in rows] == [
        ("HD0001", "SALE", "150000"),
        ("LOST", "SALE", "20997"),  # the bank took it even though the ECR never heard
        ("HD0001", "VOID", "150000"),
    ]
    sale, lost, void = rows
    assert sale["Transaction date"] == "05/03/2025 15:22:37"  # Vietnam time, first tick
    assert (sale["TID"], sale["MID"]) == ("31002095", "000000100091555")
    assert sale["Reference"] == "REF-1" and void["Reference"] == "REF-1"
    assert void["Approval code"] == sale["Approval code"]
    assert void["Card number"] == sale["Card number"]
    assert void["RRN"] != sale["RRN"]
    assert (sale["Batch"], sale["Receipt"], void["Receipt"], lost["Receipt"]) == (
        "000001", "000001", "000001", "000003",  # a Cancel takes no receipt number
    )
    for row in rows:
        assert re.fullmatch(r"\d{6}\*{6,9}\d{4}", row["Card number"])
        assert re.fullmatch(r"\d{6}", row["Approval code"]) and re.fullmatch(r"\d{12}", row["RRN"])
        assert re.fullmatch(r"\d{2}/\d{2}/\d{4} \d{2}:\d{2}:\d{2}", row["Transaction date"])
    assert sale["Card number"][-4:] == (sold.transaction.card_last4 if sold.transaction else "")
    opened = read(tmp_path / "all.csv")[-1]
    assert (opened["Invoice"], opened["Batch"]) == ("OPEN", "000002")


def test_statement_option_writes_on_settle_and_at_stop(tmp_path: Path) -> None:
    path = tmp_path / "bank.csv"
    with Simulator(statement=path, terminals=2) as sim:
        with client(sim.http_urls[0]) as pos:
            pos.sale(1000)
            assert not path.exists()
            pos.settle()
            assert [r["Amount"] for r in read(path)] == ["1000"]
        with client(sim.http_urls[1]) as pos:
            pos.sale(2000)
            pos.settle()
            pos.sale(3000)  # open at stop: not in a statement of settled batches
    rows = read(path)
    assert [(r["TID"], r["Amount"]) for r in rows] == [("31002095", "1000"), ("31002096", "2000")]


_CARD_RUN = re.compile(rb"(?<!\d)(?:9704|4|5[1-5]|35)\d{9,15}(?!\d)")


def _full_card_numbers(data: bytes) -> list[bytes]:
    return [
        m.group() for m in _CARD_RUN.finditer(data)
        if 13 <= len(m.group()) <= 19
        and luhn_check_digit(m.group()[:-1].decode()) == m.group()[-1:].decode()
    ]


def test_no_full_card_number_anywhere(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ecrlink.simulator")
    replies = b""
    state = tmp_path / "state.json"
    with Simulator(state_file=state, clock=StepClock()) as sim, client(sim.http_url) as pos:
        for i in range(24):
            result = pos.sale(10_000 + i * 1000, invoice=f"HD{i}")
            replies += result.raw
            if i % 5 == 0 and result.transaction:
                replies += pos.void(result.transaction.receipt_no or "").raw
        replies += pos.settle().raw
        replies += httpx.get(sim.http_url + "/_sim/state").content
        sim.write_statement(tmp_path / "statement.csv")
    assert {r.card.card_type for r in sim.ledger.settled if r.card} >= {"VISA", "DEBIT CARD"}
    written = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    logs = caplog.text.encode()
    for blob in (replies, written, logs):
        assert _full_card_numbers(blob) == []
    assert _full_card_numbers(b'"4111111111111111"') == [b"4111111111111111"]  # it would see one
