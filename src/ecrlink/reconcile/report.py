"""The reconciliation report: summary, rows, and its JSON, CSV and XLSX forms.

The summary is computed when the report is made; rows are built only when asked
for (a month of a chain's payments is millions of them), from the two sides and
the matcher's outcome, sorted from the most serious category to the least and then
by time.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any, Literal

from .._exceptions import ReconcileError
from ..journal.records import Entry
from .matcher import Outcome
from .model import IN_DOUBT, UNSETTLED, Category, MatchKey, Side

__all__ = [
    "ADVICE",
    "LABELS",
    "Lang",
    "Record",
    "Report",
    "ReportRow",
    "Totals",
    "summarise",
    "write_csv",
    "write_json",
    "write_report",
    "write_xlsx",
]

Lang = Literal["vi", "en"]

LABELS: dict[Lang, dict[Category, str]] = {
    "en": {
        Category.BANK_ONLY: "Money taken, no invoice",
        Category.DUPLICATE: "Invoice charged more than once",
        Category.ECR_ONLY: "Paid at the register, nothing at the bank",
        Category.AMOUNT_MISMATCH: "Amounts differ",
        Category.VOIDED: "Voided",
        Category.MATCHED: "Matched",
    },
    "vi": {
        Category.BANK_ONLY: "Ngân hàng đã thu, không có hóa đơn",
        Category.DUPLICATE: "Một hóa đơn thu nhiều lần",
        Category.ECR_ONLY: "Máy tính tiền ghi đã thu, ngân hàng không có",
        Category.AMOUNT_MISMATCH: "Lệch số tiền",
        Category.VOIDED: "Đã hủy",
        Category.MATCHED: "Khớp",
    },
}
"""What each category means, for people."""

ADVICE: dict[Lang, dict[Category, str]] = {
    "en": {
        Category.BANK_ONLY: "Find the sale by card last 4, approval code and time; "
        "issue its invoice or refund the customer.",
        Category.DUPLICATE: "Void or refund the extra charge.",
        Category.ECR_ONLY: "Check the terminal's batch; if the payment failed, collect "
        "again. In-doubt rows: ask the bank, then resolve them in the journal.",
        Category.AMOUNT_MISMATCH: "Correct the invoice, or refund/charge the difference.",
        Category.VOIDED: "Nothing to do.",
        Category.MATCHED: "Nothing to do.",
    },
    "vi": {
        Category.BANK_ONLY: "Tìm giao dịch theo 4 số cuối thẻ, mã chuẩn chi và thời gian; "
        "xuất hóa đơn hoặc hoàn tiền cho khách.",
        Category.DUPLICATE: "Hủy hoặc hoàn lại khoản thu thừa.",
        Category.ECR_ONLY: "Kiểm tra lô giao dịch trên máy POS; nếu giao dịch thất bại, "
        "thu lại. Dòng chưa rõ kết quả: hỏi ngân hàng rồi cập nhật nhật ký.",
        Category.AMOUNT_MISMATCH: "Điều chỉnh hóa đơn hoặc hoàn/thu phần chênh lệch.",
        Category.VOIDED: "Không cần xử lý.",
        Category.MATCHED: "Không cần xử lý.",
    },
}
"""What to do about each category."""


@dataclass(frozen=True, slots=True)
class Totals:
    """How many report rows a category has, and their amount in VND."""

    count: int
    amount: int


@dataclass(frozen=True, slots=True)
class Record:
    """One side's row as the report shows it. The card number is masked."""

    row: int
    """1-based row in the file, or the journal entry id."""
    type: str
    time: datetime | None
    amount: int
    invoice: str
    reference: str
    card: str
    approval: str
    ref_no: str
    tid: str
    mid: str
    batch: str
    receipt: str
    state: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {
            "row": self.row,
            "type": self.type,
            "time": self.time.isoformat(sep=" ") if self.time else None,
            "amount": self.amount,
            "invoice": self.invoice,
            "reference": self.reference,
            "card": self.card,
            "approval": self.approval,
            "ref_no": self.ref_no,
            "tid": self.tid,
            "mid": self.mid,
            "batch": self.batch,
            "receipt": self.receipt,
            "state": self.state,
        }


@dataclass(frozen=True, slots=True)
class ReportRow:
    """One reconciled transaction: its category, the key that paired it, both sides."""

    category: Category
    key: MatchKey | None
    amount: int
    """The bank's amount when the bank has the row, else the register's."""
    register: Record | None
    bank: Record | None
    register_void: Record | None
    bank_void: Record | None
    in_doubt: bool
    """The register row is a journal payment still in doubt."""
    resolved: bool
    """The register row was in doubt, and the statement proved it approved."""

    @property
    def difference(self) -> int | None:
        """Bank amount minus register amount, when both sides have the row."""
        if self.register is None or self.bank is None:
            return None
        return self.bank.amount - self.register.amount

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {
            "category": self.category.value,
            "key": self.key.value if self.key else None,
            "amount": self.amount,
            "difference": self.difference,
            "in_doubt": self.in_doubt,
            "resolved": self.resolved,
            "register": self.register.to_dict() if self.register else None,
            "bank": self.bank.to_dict() if self.bank else None,
            "register_void": self.register_void.to_dict() if self.register_void else None,
            "bank_void": self.bank_void.to_dict() if self.bank_void else None,
        }


_Loader = Callable[[Category | None], tuple[Side, Side, Outcome]]
"""Builds the sides and outcome behind the rows of one category (None: all). A
loader may return more rows than asked; ``rows`` filters."""


class Report:
    """The outcome of one reconciliation.

    ``summary`` has every category, most serious first. ``rows()`` builds the rows
    on demand. ``needs_attention`` is what a nightly job alerts on: anything other
    than matched or voided.
    """

    def __init__(
        self,
        *,
        summary: Mapping[Category, Totals],
        loader: _Loader,
        bank_source: str,
        register_source: str,
        since: datetime | None = None,
        until: datetime | None = None,
        window: timedelta | None = None,
        resolved: Sequence[Entry] = (),
        dropped: Mapping[str, int] | None = None,
        engine: str = "python",
    ) -> None:
        self.summary: dict[Category, Totals] = {c: summary.get(c, Totals(0, 0)) for c in Category}
        self.bank_source = bank_source
        self.register_source = register_source
        self.since = since
        self.until = until
        self.window = window
        self.resolved: tuple[Entry, ...] = tuple(resolved)
        """Journal entries the statement proved approved (resolved through the callback)."""
        self.dropped: dict[str, int] = dict(dropped or {})
        """Rows read but left out, per side: declined in a status column, outside the period."""
        self.engine = engine
        self._loader = loader
        self._loaded: tuple[Side, Side, Outcome] | None = None

    @property
    def needs_attention(self) -> bool:
        """True when any row is in a category other than matched or voided."""
        return any(t.count for c, t in self.summary.items() if c.needs_attention)

    def __len__(self) -> int:
        return sum(t.count for t in self.summary.values())

    def rows(self, category: Category | None = None) -> Iterator[ReportRow]:
        """The report's rows, most serious category first, then by time."""
        reg, bank, out = self._load(category)
        resolved = {r for r, _ in out.resolved}

        def when(i: int) -> tuple[int, bool, datetime, int]:
            lead = _lead(reg, bank, out, i)
            t = lead[0].time[lead[1]] if lead else None
            return _ORDER[out.category[i]], t is None, t or datetime.min, i

        wanted = range(len(out)) if category is None else (
            i for i in range(len(out)) if out.category[i] is category
        )
        for i in sorted(wanted, key=when):
            yield _row(reg, bank, out, i, resolved)

    def _load(self, category: Category | None) -> tuple[Side, Side, Outcome]:
        if self._loaded is not None:
            return self._loaded
        loaded = self._loader(category)
        if category is None:
            self._loaded = loaded
        return loaded

    def to_dict(self, *, rows: bool = True) -> dict[str, Any]:
        """The JSON document: ``{"summary": {...}, "rows": [...]}`` and context."""
        doc = self._head()
        if rows:
            doc["rows"] = [r.to_dict() for r in self.rows()]
        return doc

    def _head(self) -> dict[str, Any]:
        return {
            "summary": {
                c.value: {"count": t.count, "amount": t.amount} for c, t in self.summary.items()
            },
            "needs_attention": self.needs_attention,
            "period": {
                "from": self.since.isoformat(sep=" ") if self.since else None,
                "to": self.until.isoformat(sep=" ") if self.until else None,
            },
            "sources": {"bank": self.bank_source, "register": self.register_source},
            "resolved": [e.id for e in self.resolved],
            "dropped": self.dropped,
        }


_ORDER = {c: n for n, c in enumerate(Category)}


def _lead(reg: Side, bank: Side, out: Outcome, i: int) -> tuple[Side, int] | None:
    """The side row that dates and prices report row ``i``: the bank's if it has
    one, else the register's, else a void's (the polars summary coalesces alike)."""
    for side, j in ((bank, out.bank[i]), (reg, out.reg[i]), (bank, out.bank_void[i]),
                    (reg, out.reg_void[i])):  # fmt: skip
        if j >= 0:
            return side, j
    return None


def _record(side: Side, i: int) -> Record | None:
    if i < 0:
        return None
    return Record(
        row=side.row[i],
        type=side.kind[i].value,
        time=side.time[i],
        amount=side.amount[i],
        invoice=side.invoice[i],
        reference=side.reference[i],
        card=side.card[i],
        approval=side.approval[i],
        ref_no=side.ref_no[i],
        tid=side.tid[i],
        mid=side.mid[i],
        batch=side.batch[i],
        receipt=side.receipt[i],
        state=side.state[i],
    )


def _row(reg: Side, bank: Side, out: Outcome, i: int, resolved: set[int]) -> ReportRow:
    r, b = out.reg[i], out.bank[i]
    lead = _lead(reg, bank, out, i)
    amount = lead[0].amount[lead[1]] if lead else 0
    in_doubt = False
    if r >= 0 and r not in resolved:
        entry = reg.entry[r]
        in_doubt = reg.state[r] == IN_DOUBT or (
            entry is not None and entry.state in UNSETTLED
        )
    return ReportRow(
        category=out.category[i],
        key=out.key[i],
        amount=amount,
        register=_record(reg, r),
        bank=_record(bank, b),
        register_void=_record(reg, out.reg_void[i]),
        bank_void=_record(bank, out.bank_void[i]),
        in_doubt=in_doubt,
        resolved=r in resolved,
    )


def summarise(reg: Side, bank: Side, out: Outcome) -> dict[Category, Totals]:
    """Counts and amounts per category, computed from the outcome's columns."""
    counts = dict.fromkeys(Category, 0)
    amounts = dict.fromkeys(Category, 0)
    for i, category in enumerate(out.category):
        counts[category] += 1
        if lead := _lead(reg, bank, out, i):
            amounts[category] += lead[0].amount[lead[1]]
    return {c: Totals(counts[c], amounts[c]) for c in Category}


# --- writers ---------------------------------------------------------------------------

_RECORD_FIELDS = (
    "row", "type", "time", "amount", "invoice", "reference", "card", "approval", "ref_no",
    "tid", "mid", "batch", "receipt", "state",
)  # fmt: skip
_SIDES = (("register", "reg"), ("bank", "bank"))
CSV_COLUMNS: tuple[str, ...] = (
    "category", "key", "amount", "difference", "in_doubt", "resolved",
    *(f"{short}_{f}" for _, short in _SIDES for f in _RECORD_FIELDS),
    "reg_void_row", "bank_void_row",
)  # fmt: skip


def _flat(row: ReportRow) -> list[Any]:
    values: list[Any] = [
        row.category.value,
        row.key.value if row.key else "",
        row.amount,
        "" if row.difference is None else row.difference,
        row.in_doubt,
        row.resolved,
    ]
    for record in (row.register, row.bank):
        if record is None:
            values.extend([""] * len(_RECORD_FIELDS))
        else:
            values.extend(getattr(record, f) for f in _RECORD_FIELDS)
    values.append(row.register_void.row if row.register_void else "")
    values.append(row.bank_void.row if row.bank_void else "")
    return values


def write_json(report: Report, out: IO[str], *, ascii_only: bool = False) -> None:
    """Write the JSON document, one row at a time (large reports stay small in memory).

    ``ascii_only`` escapes every non-ASCII character, for a console of any code page.
    """
    head = json.dumps(report._head(), ensure_ascii=ascii_only)
    out.write(head[:-1] + ', "rows": [')
    for n, row in enumerate(report.rows()):
        out.write(",\n" if n else "\n")
        out.write(json.dumps(row.to_dict(), ensure_ascii=ascii_only))
    out.write("\n]}\n")


def write_csv(report: Report, out: IO[str]) -> None:
    """Write every row as CSV (one header line; the category is the first column)."""
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for row in report.rows():
        writer.writerow(
            [v.isoformat(sep=" ") if isinstance(v, datetime) else v for v in _flat(row)]
        )


_VND = '#,##0" ₫"'
_WHEN = "dd/mm/yyyy hh:mm:ss"
_XLSX_MAX_ROWS = 1_048_576


def write_xlsx(report: Report, path: str | Path, lang: Lang = "en") -> None:
    """Write a workbook: a summary sheet, then one sheet per category (money as VND)."""
    try:
        from openpyxl import Workbook
        from openpyxl.cell import WriteOnlyCell
        from openpyxl.styles import Font
    except ImportError:
        raise ReconcileError(
            "writing .xlsx needs openpyxl: pip install 'ecrlink[reconcile]'"
        ) from None
    book = Workbook(write_only=True)
    sheet = book.create_sheet("summary")
    bold = Font(bold=True)

    def cell(ws: Any, value: Any, fmt: str | None = None, font: Font | None = None) -> Any:
        c = WriteOnlyCell(ws, value=value)
        if fmt:
            c.number_format = fmt
        if font:
            c.font = font
        return c

    head = ("category", "meaning", "count", "amount", "what to do")
    sheet.append([cell(sheet, h, font=bold) for h in head])
    for category, totals in report.summary.items():
        sheet.append([
            category.value,
            LABELS[lang][category],
            totals.count,
            cell(sheet, totals.amount, _VND),
            ADVICE[lang][category],
        ])
    money = {"amount", "difference", "reg_amount", "bank_amount"}
    for category in Category:
        part, written = 1, 0
        ws = book.create_sheet(category.value)
        ws.append([cell(ws, h, font=bold) for h in CSV_COLUMNS])
        for row in report.rows(category):
            if written == _XLSX_MAX_ROWS - 1:
                part += 1
                ws = book.create_sheet(f"{category.value} ({part})")
                ws.append([cell(ws, h, font=bold) for h in CSV_COLUMNS])
                written = 0
            values = _flat(row)
            ws.append([
                cell(ws, v, _VND) if name in money and isinstance(v, int)
                else cell(ws, v, _WHEN) if isinstance(v, datetime)
                else v
                for name, v in zip(CSV_COLUMNS, values, strict=True)
            ])  # fmt: skip
            written += 1
    try:
        book.save(str(path))
    except OSError as exc:
        raise ReconcileError(f"cannot write {path}: {exc.strerror}") from None


def write_report(report: Report, path: str | Path, lang: Lang = "en") -> None:
    """Write ``.xlsx``, ``.csv`` or ``.json`` by the file's suffix."""
    suffix = Path(path).suffix.lower()
    if suffix == ".xlsx":
        write_xlsx(report, path, lang)
        return
    if suffix not in (".csv", ".json"):
        raise ReconcileError(f"cannot write {path}: use a .xlsx, .csv or .json file name")
    try:
        with open(path, "w", encoding="utf-8-sig" if suffix == ".csv" else "utf-8",
                  newline="" if suffix == ".csv" else None) as fh:
            (write_csv if suffix == ".csv" else write_json)(report, fh)
    except OSError as exc:
        raise ReconcileError(f"cannot write {path}: {exc.strerror}") from None
