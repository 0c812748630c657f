"""Every category, every key, voids and in-doubt resolution."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ecrlink import ReconcileError
from ecrlink.journal.records import Entry, State
from ecrlink.reconcile import Category, MatchKey, Report, reconcile

from .conftest import DAY, bank_row, categories, entry, write_bank, write_csv


class Run:
    """Reconcile journal entries (or an invoice list) against statement rows."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.resolved: list[tuple[Entry, State, str]] = []

    def __call__(
        self,
        entries: Sequence[Entry] | None,
        bank: Sequence[Sequence[object]],
        *,
        invoices: Sequence[Sequence[object]] | None = None,
        **options: Any,
    ) -> Report:
        statement = write_bank(self.tmp / "bank.csv", bank)
        invoice_file = None
        if invoices is not None:
            invoice_file = write_csv(
                self.tmp / "inv.csv", ["Mã hóa đơn", "Ngày", "Số tiền", "Loại"], invoices
            )
        return reconcile(
            statement, invoices=invoice_file, entries=entries,
            resolve=lambda e, s, note: self.resolved.append((e, s, note)), **options,
        )  # fmt: skip


@pytest.fixture
def run(tmp_path: Path) -> Run:
    return Run(tmp_path)


def _only(report: Report, category: Category) -> list[Any]:
    return list(report.rows(category))


def test_matched_by_invoice_and_amount(run: Run) -> None:
    report = run([entry(150_000, invoice="HD1", approval="999999")],
                 [bank_row(150_000, invoice="HD1")])
    assert categories(report) == {"matched": 1}
    row = _only(report, Category.MATCHED)[0]
    assert row.key is MatchKey.INVOICE
    assert row.register.invoice == "HD1" and row.bank.row == 2
    assert not report.needs_attention


def test_matched_by_card_and_approval(run: Run) -> None:
    report = run([entry(150_000, invoice="HD1")], [bank_row(150_000, invoice="")])
    assert [r.key for r in report.rows()] == [MatchKey.CARD_APPROVAL]
    assert categories(report) == {"matched": 1}


def test_matched_by_reference_number(run: Run) -> None:
    report = run([entry(150_000, approval=None, ref_no="020037020001")],
                 [bank_row(150_000, last4="", approval="", rrn="20037020001")])
    assert [(r.category, r.key) for r in report.rows()] == [
        (Category.MATCHED, MatchKey.REF_NO)
    ]


def test_card_and_approval_only_within_the_window(run: Run) -> None:
    far = DAY + timedelta(days=3)
    report = run([entry(150_000)], [bank_row(150_000, at=far)])
    assert categories(report) == {"bank_only": 1, "ecr_only": 1}
    report = run([entry(150_000)], [bank_row(150_000, at=far)], window=timedelta(days=4))
    assert categories(report) == {"matched": 1}


@pytest.mark.parametrize("key", ["invoice", "card_approval", "ref_no"])
def test_amount_mismatch_by_each_key(run: Run, key: str) -> None:
    register = {
        "invoice": entry(150_000, invoice="HD1", approval="999999"),
        "card_approval": entry(150_000),
        "ref_no": entry(150_000, approval=None, ref_no="020037020001"),
    }[key]
    bank = {
        "invoice": bank_row(151_000, invoice="HD1"),
        "card_approval": bank_row(151_000),
        "ref_no": bank_row(151_000, last4="", approval="", rrn="020037020001"),
    }[key]
    report = run([register], [bank])
    [row] = list(report.rows())
    assert (row.category, row.key) == (Category.AMOUNT_MISMATCH, MatchKey(key))
    assert row.difference == 1_000 and row.amount == 151_000
    assert report.needs_attention


def test_ecr_only_and_bank_only(run: Run) -> None:
    report = run([entry(150_000, invoice="HD1", approval="1")],
                 [bank_row(99_000, invoice="XX", approval="2")])
    assert categories(report) == {"bank_only": 1, "ecr_only": 1}
    rows = list(report.rows())
    assert rows[0].category is Category.BANK_ONLY  # the most serious first
    assert report.summary[Category.BANK_ONLY].amount == 99_000


def test_duplicate_charge_of_one_invoice(run: Run) -> None:
    later = DAY + timedelta(minutes=2)
    report = run(
        [entry(150_000, invoice="HD1")],
        [bank_row(150_000, invoice="HD1"), bank_row(150_000, invoice="HD1", at=later,
                                                    approval="222222")],
    )
    assert categories(report) == {"matched": 1, "duplicate": 1}
    assert _only(report, Category.DUPLICATE)[0].bank.time == later


def test_duplicate_even_when_the_register_also_charged_twice(run: Run) -> None:
    later = DAY + timedelta(minutes=2)
    report = run(
        [entry(150_000, invoice="HD1"), entry(150_000, invoice="HD1", approval="2", at=later)],
        [bank_row(150_000, invoice="HD1"), bank_row(150_000, invoice="HD1", approval="2",
                                                    at=later)],
    )
    assert categories(report) == {"matched": 1, "duplicate": 1}
    dup = _only(report, Category.DUPLICATE)[0]
    assert dup.register is not None and dup.bank is not None


def test_duplicates_of_an_invoice_the_register_never_had(run: Run) -> None:
    later = DAY + timedelta(minutes=2)
    report = run([], [bank_row(1, invoice="ZZ"), bank_row(1, invoice="ZZ", at=later)])
    assert categories(report) == {"bank_only": 1, "duplicate": 1}
    assert _only(report, Category.BANK_ONLY)[0].bank.time == DAY


def test_void_cancels_its_sale_on_both_sides(run: Run) -> None:
    sale = entry(150_000, invoice="HD1", receipt="1")
    void = entry(None, command="void", void_of="1", receipt="2", at=DAY + timedelta(minutes=5))
    report = run([sale, void], [
        bank_row(150_000, invoice="HD1", receipt=1),
        bank_row(150_000, invoice="HD1", receipt=2, kind="VOID", at=DAY + timedelta(minutes=5)),
    ])  # fmt: skip
    [row] = list(report.rows())
    assert (row.category, row.key) == (Category.VOIDED, MatchKey.INVOICE)
    assert row.register is not None and row.register_void is not None
    assert row.bank is not None and row.bank_void is not None
    assert not report.needs_attention


def test_a_void_the_bank_does_not_show(run: Run) -> None:
    sale = entry(150_000, invoice="HD1", receipt="1")
    void = entry(None, command="void", void_of="1", receipt="2")
    report = run([sale, void], [bank_row(150_000, invoice="HD1")])
    assert categories(report) == {"bank_only": 1, "voided": 1}


def test_a_void_the_register_does_not_know(run: Run) -> None:
    report = run([entry(150_000, invoice="HD1")], [
        bank_row(150_000, invoice="HD1"), bank_row(150_000, invoice="HD1", kind="VOID"),
    ])  # fmt: skip
    assert categories(report) == {"ecr_only": 1, "voided": 1}


def test_voids_whose_sale_is_outside_the_period(run: Run) -> None:
    yesterday = DAY - timedelta(days=1)
    sale = entry(150_000, invoice="HD1", receipt="1", at=yesterday)
    void = entry(None, command="void", void_of="1", receipt="2")
    bank = [bank_row(150_000, invoice="HD1", at=yesterday),
            bank_row(150_000, invoice="HD1", kind="VOID")]
    report = run([sale, void], bank, since=DAY - timedelta(hours=1))
    [row] = list(report.rows())
    assert row.category is Category.VOIDED and row.register is None
    assert row.register_void is not None and row.bank_void is not None
    # ...and the register's void alone, with nothing at the bank: ecr_only.
    report = run([sale, void], bank[:1], since=DAY - timedelta(hours=1))
    assert categories(report) == {"ecr_only": 1}


def test_invoice_list_voids_and_refunds(run: Run) -> None:
    when = DAY.strftime("%d/%m/%Y %H:%M")
    invoices = [["HD1", when, "150.000", "Bán"], ["HD1", when, "150.000", "Hủy"],
                ["HD2", when, "80.000", "Trả hàng"]]
    bank = [bank_row(150_000, invoice="HD1"), bank_row(150_000, invoice="HD1", kind="VOID"),
            bank_row(80_000, invoice="HD2", kind="REFUND")]
    report = run(None, bank, invoices=invoices)
    assert categories(report) == {"voided": 1, "matched": 1}
    # A refund never matches a sale.
    report = run(None, [bank_row(80_000, invoice="HD2")], invoices=invoices[2:])
    assert categories(report) == {"bank_only": 1, "ecr_only": 1}


def test_in_doubt_proved_by_the_statement_is_resolved(run: Run) -> None:
    doubt = entry(200_000, invoice="HD5", state=State.IN_DOUBT)
    report = run([doubt], [bank_row(200_000, invoice="HD5", rrn="020037020001")])
    assert categories(report) == {"matched": 1}
    [(resolved, state, note)] = run.resolved
    assert resolved is doubt and state is State.APPROVED
    assert "row 2" in note and "111112" in note and "020037020001" in note
    assert report.resolved == (doubt,)
    row = next(report.rows())
    assert row.resolved and not row.in_doubt


def test_in_doubt_not_in_the_statement_stays_in_doubt(run: Run) -> None:
    doubt = entry(200_000, invoice="HD5", state=State.PENDING)
    report = run([doubt], [bank_row(1, invoice="OTHER")])
    assert categories(report) == {"bank_only": 1, "ecr_only": 1}
    [row] = _only(report, Category.ECR_ONLY)
    assert row.in_doubt and not row.resolved
    assert run.resolved == []


def test_in_doubt_needs_an_exact_match(run: Run) -> None:
    doubt = entry(200_000, invoice="HD5", state=State.IN_DOUBT)
    report = run([doubt], [bank_row(201_000, invoice="HD5")])
    assert categories(report) == {"bank_only": 1, "ecr_only": 1}
    assert run.resolved == []


def test_an_approved_retry_pairs_before_the_in_doubt_attempt(run: Run) -> None:
    doubt = entry(200_000, invoice="HD5", state=State.IN_DOUBT)
    retry = entry(200_000, invoice="HD5", at=DAY + timedelta(minutes=3))
    report = run([doubt, retry], [bank_row(200_000, invoice="HD5")])
    assert categories(report) == {"ecr_only": 1, "matched": 1}
    assert _only(report, Category.ECR_ONLY)[0].in_doubt
    assert run.resolved == []
    # Both attempts charged: the in-doubt one is proved, and it is a duplicate charge.
    report = run([doubt, retry], [bank_row(200_000, invoice="HD5"),
                                  bank_row(200_000, invoice="HD5", approval="333333")])
    assert categories(report) == {"matched": 1, "duplicate": 1}
    assert [e for e, _, _ in run.resolved] == [doubt]


def test_declined_and_canceled_entries_are_not_payments(run: Run) -> None:
    report = run([entry(1, invoice="A", state=State.DECLINED),
                  entry(2, invoice="B", state=State.CANCELED),
                  entry(3, invoice="C", state=State.FAILED)], [])
    assert len(report) == 0 and not report.needs_attention


def test_period_leaves_out_both_sides(run: Run) -> None:
    inside, outside = DAY, DAY + timedelta(days=2)
    report = run([entry(1, invoice="A", at=inside), entry(2, invoice="B", at=outside)],
                 [bank_row(1, invoice="A", at=inside), bank_row(3, invoice="C", at=outside)],
                 since=datetime(2026, 3, 2), until=datetime(2026, 3, 2, 23, 59, 59))
    assert categories(report) == {"matched": 1}
    assert report.dropped == {"bank": 1, "register": 1}


def test_every_row_in_exactly_one_category(run: Run) -> None:
    entries = [entry(100, invoice="A", approval="1"), entry(200, invoice="B", approval="2"),
               entry(300, invoice="C", approval="3")]
    bank = [bank_row(100, invoice="A", approval="1"), bank_row(250, invoice="B", approval="2"),
            bank_row(400, invoice="D", approval="4"), bank_row(100, invoice="A", approval="5")]
    report = run(entries, bank)
    seen_bank = [r.bank.row for r in report.rows() if r.bank]
    seen_reg = [r.register.row for r in report.rows() if r.register]
    assert sorted(seen_bank) == [2, 3, 4, 5]
    assert sorted(seen_reg) == sorted(e.id for e in entries)
    assert categories(report) == {
        "matched": 1, "amount_mismatch": 1, "bank_only": 1, "ecr_only": 1, "duplicate": 1
    }


def test_arguments_are_checked(tmp_path: Path) -> None:
    bank = write_bank(tmp_path / "b.csv", [])
    with pytest.raises(ReconcileError, match="nothing to reconcile"):
        reconcile(bank)
    with pytest.raises(ReconcileError, match="period"):
        reconcile(bank, entries=[], since=DAY, until=DAY - timedelta(days=1))
    with pytest.raises(ReconcileError, match="window"):
        reconcile(bank, entries=[], window=timedelta(hours=-1))
