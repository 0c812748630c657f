"""The batch ledger as a pure state machine: no sockets, no clock."""

from __future__ import annotations

import asyncio
import re
import tempfile
from datetime import timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from ecrlink.protocol import Sale, Settle, Void
from ecrlink.simulator import Identity, Ledger, RecordStatus
from ecrlink.simulator.cards import card_pool, luhn_check_digit
from ecrlink.simulator.state import StateStore, TerminalState
from tests.simulator.conftest import START

IDENTITY = Identity("31002095", "000000100091555", "10079CT71002095", seed=7)


def sale(amount: int, rid: str = "r", invoice: str = "") -> Sale:
    return Sale.build(amount, request_id=rid, client_id="c", invoice=invoice or None)


def void(receipt: int | str, rid: str = "v") -> Void:
    return Void(request_id=rid, client_id="c", receipt_no=str(receipt))


SETTLE = Settle(request_id="s", client_id="c")


def test_sale_numbers_and_approval() -> None:
    ledger = Ledger(IDENTITY)
    first = ledger.sale(sale(150_000, "a"), now=START)
    second = ledger.sale(sale(20_000, "b"), now=START, return_code="55")
    assert (first.stan, first.receipt_no, first.batch_no) == (1, 1, 1)
    assert (second.stan, second.receipt_no) == (2, 2)
    assert first.status is RecordStatus.APPROVED
    assert re.fullmatch(r"\d{6}", first.approval_code or "")
    assert second.status is RecordStatus.DECLINED and second.approval_code == "000000"
    assert re.fullmatch(r"\d{12}", first.ref_no or "")
    assert ledger.last_success is first  # a decline is not a successful transaction


def test_void_once_with_or_without_leading_zeros() -> None:
    ledger = Ledger(IDENTITY)
    ledger.sale(sale(1000), now=START)
    target = ledger.sale(sale(2000, invoice="HD7"), now=START)
    done = ledger.void(void("000002"), now=START)
    assert done.status is RecordStatus.APPROVED and done.return_code == "00"
    assert (done.amount, done.receipt_no, done.void_of, done.invoice) == (2000, 2, 2, "HD7")
    assert done.approval_code == target.approval_code and done.stan == 3
    assert ledger.open_batch[1].status is RecordStatus.VOIDED
    assert ledger.last_success is done
    again = ledger.void(void(2), now=START)
    assert again.return_code == "12" and again.stan is None
    assert ledger.last_stan == 3  # a refused void never reaches the bank


def test_unknown_declined_and_settled_receipts_cannot_be_voided() -> None:
    ledger = Ledger(IDENTITY)
    ledger.sale(sale(1000), now=START, return_code="51")
    ledger.sale(sale(3000), now=START)
    assert ledger.void(void(1), now=START).return_code == "12"  # declined
    assert ledger.void(void(99), now=START).return_code == "12"  # unknown
    ledger.settle(SETTLE, now=START)
    assert ledger.void(void(2), now=START).return_code == "12"  # settled batch
    assert ledger.settled[1].status is RecordStatus.APPROVED


def test_settle_closes_the_batch_with_counts_and_totals() -> None:
    ledger = Ledger(IDENTITY)
    for amount in (1000, 2000, 4000):
        ledger.sale(sale(amount), now=START)
    ledger.sale(sale(8000), now=START, return_code="05")
    ledger.void(void(2), now=START)
    record, summary = ledger.settle(SETTLE, now=START)
    assert (summary.sale_count, summary.sale_total) == (3, 7000)
    assert (summary.void_count, summary.void_total, summary.net_total) == (1, 2000, 5000)
    assert record.batch_no == 1 and ledger.batch_no == 2 and ledger.open_batch == ()
    nxt = ledger.sale(sale(500), now=START)
    assert nxt.receipt_no == 5 and nxt.batch_no == 2  # receipts continue across batches


def test_nothing_charged_consumes_no_number() -> None:
    ledger = Ledger(IDENTITY)
    ledger.not_charged(sale(999), now=START, status=RecordStatus.CANCELED, detail="x")
    ledger.not_charged(sale(998), now=START, status=RecordStatus.NEVER_ANSWERED, detail="y")
    assert (ledger.last_stan, ledger.last_receipt, ledger.last_success) == (0, 0, None)
    assert [r.status for r in ledger.transactions] == ["canceled", "never_answered"]


def test_same_seed_same_run() -> None:
    a, b = Ledger(IDENTITY), Ledger(IDENTITY)
    for i in range(20):
        ra = a.sale(sale(1000 + i), now=START)
        rb = b.sale(sale(1000 + i), now=START)
        assert (ra.card, ra.approval_code, ra.emv_tc) == (rb.card, rb.approval_code, rb.emv_tc)


def test_test_cards_are_masked_luhn_valid_and_varied() -> None:
    pool = card_pool(0)
    assert {c.card_input for c in pool} == {"S", "C", "F"}
    assert {c.card_type for c in pool} >= {"DEBIT CARD", "VISA", "MASTER", "JCB"}
    for card in pool:
        assert card.bin6[:1] in "45" or card.bin6.startswith(("9704", "35"))
        assert len(re.sub(r"\D", "", card.card_no)) == 8  # first 4 + last 4
        assert re.fullmatch(r"\d{6}\*+\d{4}", card.statement_card_no)
        assert len(card.statement_card_no) == card.length
        assert len(card.cardholder) == 26
        assert (card.emv_aid is not None) == (card.card_input == "C")
    assert card_pool(0) == pool and card_pool(1) != pool
    assert luhn_check_digit("411111111111111") == "1"  # 4111 1111 1111 1111
    assert luhn_check_digit("970400000000001") == "8"  # Napas sandbox 9704 0000 0000 0018


ops = st.lists(
    st.one_of(
        st.tuples(st.just("sale"), st.integers(1, 10**9), st.sampled_from(["00", "00", "51"])),
        st.tuples(st.just("void"), st.integers(1, 40), st.just("")),
        st.tuples(st.just("settle"), st.just(0), st.just("")),
        st.tuples(st.just("cancel"), st.integers(1, 10**6), st.just("")),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(ops)
def test_invariants_hold_for_any_sequence(sequence: list[tuple[str, int, str]]) -> None:
    ledger = Ledger(IDENTITY)
    now = START
    for i, (op, number, code) in enumerate(sequence):
        now += timedelta(seconds=1)
        if op == "sale":
            ledger.sale(sale(number, f"r{i}"), now=now, return_code=code)
        elif op == "void":
            ledger.void(void(number, f"r{i}"), now=now)
        elif op == "settle":
            ledger.settle(Settle(request_id=f"r{i}", client_id="c"), now=now)
        else:
            ledger.not_charged(sale(number, f"r{i}"), now=now, status=RecordStatus.CANCELED,
                               detail="test")
    records = ledger.transactions
    assert [r.seq for r in records] == list(range(1, len(records) + 1))
    stans = [r.stan for r in records if r.stan is not None]
    assert stans == list(range(1, len(stans) + 1))  # every bank message, once, in order
    receipts = [r.receipt_no for r in records if r.command == "sale" and r.receipt_no]
    assert receipts == list(range(1, len(receipts) + 1))
    voided = [r for r in records if r.command == "void" and r.status is RecordStatus.APPROVED]
    keys = [(r.batch_no, r.void_of) for r in voided]
    assert len(keys) == len(set(keys))  # a receipt is voided at most once
    for v in voided:
        (original,) = [r for r in records if r.command == "sale" and r.receipt_no == v.void_of
                       and r.batch_no == v.batch_no]
        assert original.status is RecordStatus.VOIDED and original.amount == v.amount
    approved = [r for r in records if r.status is RecordStatus.APPROVED and r.command != "settle"]
    assert ledger.last_success == (approved[-1] if approved else None)
    for summary in ledger.settlements:
        batch = [r for r in records if r.batch_no == summary.batch_no]
        assert summary.sale_total == sum(
            r.amount or 0 for r in batch if r.command == "sale" and r.approved
        )
        assert summary.void_total == sum(r.amount or 0 for r in voided if r in batch)
    assert all(r.batch_no == ledger.batch_no for r in ledger.open_batch)
    # The flash (and the settled sidecar) survive a power cycle exactly.
    with tempfile.TemporaryDirectory() as folder:
        store = StateStore(Path(folder) / "state.json")
        store.attach(lambda: [TerminalState(ledger)])
        for summary in ledger.settlements:
            batch = [r for r in ledger.settled if r.batch_no == summary.batch_no]
            asyncio.run(store.append_settled(0, 0, batch))
        store.save_now()
        back = StateStore(Path(folder) / "state.json").load([IDENTITY])[0].ledger
    assert back.settled == ledger.settled
    assert back.open_batch == ledger.open_batch
    assert back.last_success == ledger.last_success
    assert (back.batch_no, back.last_stan, back.last_receipt, back.last_seq) == (
        ledger.batch_no, ledger.last_stan, ledger.last_receipt, ledger.last_seq,
    )
    assert back.settlements == ledger.settlements
