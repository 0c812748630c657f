"""The reconciliation report: summary, rows, and the table behind its written forms.

The report holds both sides and the engine's rows as frames. ``table()`` joins them
into one frame, a row per reconciled transaction, sorted from the most serious
category to the least and then by time: the writers (``writers``) stream it to
JSON, CSV and XLSX without a Python object per row. ``rows()`` gives Python objects
for the few rows a person looks at.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import polars as pl

from ..journal.records import Entry
from .model import IN_DOUBT, Category, MatchKey

__all__ = [
    "ADVICE",
    "LABELS",
    "RECORD_FIELDS",
    "ROLES",
    "Lang",
    "Record",
    "Report",
    "ReportRow",
    "Totals",
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
    site: str | None = None
    """Head office's report: the store of the journal row."""

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
        } | ({"site": self.site} if self.site is not None else {})


RECORD_FIELDS = (
    "row", "type", "time", "amount", "invoice", "reference", "card", "approval", "ref_no",
    "tid", "mid", "batch", "receipt", "state",
)  # fmt: skip
"""A side's row as reports show it (``Record``'s fields)."""
ROLES = (("register", "reg"), ("bank", "bank"), ("register_void", "reg_void"),
         ("bank_void", "bank_void"))  # fmt: skip
"""(JSON name, column prefix) of the four side rows a report row may name."""
_ORDER = {c.value: n for n, c in enumerate(Category)}
_SOURCE = {"type": "kind"}


class Report:
    """The outcome of one reconciliation.

    ``summary`` has every category, most serious first. ``rows()`` builds the rows
    on demand. ``needs_attention`` is what a nightly job alerts on: anything other
    than matched or voided.
    """

    def __init__(
        self,
        *,
        reg: pl.DataFrame,
        bank: pl.DataFrame,
        items: pl.DataFrame,
        bank_source: str,
        register_source: str,
        since: datetime | None = None,
        until: datetime | None = None,
        window: timedelta | None = None,
        resolved: Sequence[Entry] = (),
        dropped: Mapping[str, int] | None = None,
        sites: pl.Series | None = None,
        resolved_sites: Sequence[str | None] = (),
    ) -> None:
        self.bank_source = bank_source
        self.register_source = register_source
        self.since = since
        self.until = until
        self.window = window
        self.resolved: tuple[Entry, ...] = tuple(resolved)
        """Journal entries the statement proved approved (resolved through the callback)."""
        self._resolved_sites = tuple(resolved_sites) or (None,) * len(self.resolved)
        self.dropped: dict[str, int] = dict(dropped or {})
        """Rows read but left out, per side: declined in a status column, outside the period."""
        self._reg, self._bank = reg, bank
        # In the engine's order: the summary needs no sort, and a summary is all most
        # runs print (``_items`` sorts on first use, by the writers).
        self._unsorted = _with_amounts(reg, bank, items)
        self._sorted: pl.DataFrame | None = None
        self.by_site = sites is not None
        """Head office's report: journal rows carry their store (``site``)."""
        if sites is not None:
            self._unsorted = _with_site(self._unsorted, reg, bank, sites)
        counts = {
            c: (n, total)
            for c, n, total in self._unsorted.group_by("category")
            .agg(pl.len(), pl.col("amount").sum())
            .iter_rows()
        }
        self.summary: dict[Category, Totals] = {
            c: Totals(*(int(v) for v in counts.get(c.value, (0, 0)))) for c in Category
        }

    @property
    def needs_attention(self) -> bool:
        """True when any row is in a category other than matched or voided."""
        return any(t.count for c, t in self.summary.items() if c.needs_attention)

    def __len__(self) -> int:
        return self._unsorted.height

    @property
    def _items(self) -> pl.DataFrame:
        """Every row, most serious category first, then by time (sorted once)."""
        if self._sorted is None:
            self._sorted = _sorted(self._reg, self._bank, self._unsorted)
        return self._sorted

    def table(
        self, category: Category | None = None, *, start: int = 0, length: int | None = None
    ) -> pl.DataFrame:
        """The report rows as one flat frame (most serious first, then by time):
        ``category``, ``key``, ``amount``, ``difference``, ``in_doubt``, ``resolved``,
        then each role's ``RECORD_FIELDS`` prefixed ``reg_``, ``bank_``, ``reg_void_``,
        ``bank_void_`` (null where the row has no such side row).

        ``start`` and ``length`` take a slice of the rows: writers build the table a
        chunk at a time, so that a million rows never sit in memory twice.
        """
        items = self._items
        if category is not None:
            items = items.filter(pl.col("category") == category.value)
        if start or length is not None:
            items = items.slice(start, length)
        return self._table(items)

    def _table(self, items: pl.DataFrame) -> pl.DataFrame:
        """``table()`` of these rows of ``_items``."""
        lead = ["category", "key", "amount", "difference", "in_doubt", "resolved"]
        parts = [items.select(*lead, *(["site"] if self.by_site else []))]
        for _, prefix in ROLES:
            side = self._reg if prefix.startswith("reg") else self._bank
            at = items.get_column(prefix)
            columns = [pl.col(_SOURCE.get(f, f)).alias(f"{prefix}_{f}") for f in RECORD_FIELDS]
            if at.null_count() == len(at):  # no such side row here (voids are few)
                part = side.select(columns).clear(len(at))
            else:
                part = side.select(c.gather(at) for c in columns)
            parts.append(part.with_columns(pl.col(f"{prefix}_type").cast(pl.String)))
        return pl.concat(parts, how="horizontal")

    def rows(
        self, category: Category | None = None, *, limit: int | None = None
    ) -> Iterator[ReportRow]:
        """The report's rows as objects, most serious category first, then by time.

        ``limit``: only the first rows, without sorting the whole report when it has
        not been sorted yet (a summary shows a few of a million).
        """
        if limit is not None:
            yield from (_report_row(v) for v in self._first(category, limit).iter_rows(
                named=True))
            return
        total = self.count(category)
        for start in range(0, total, 10_000):
            for values in self.table(category, start=start, length=10_000).iter_rows(named=True):
                yield _report_row(values)

    def _first(self, category: Category | None, limit: int) -> pl.DataFrame:
        """``table(category, length=limit)``, sorting only that category's rows."""
        if self._sorted is not None:
            return self.table(category, length=limit)
        items = self._unsorted
        if category is not None:
            items = items.filter(pl.col("category") == category.value)
        return self._table(_sorted(self._reg, self._bank, items).head(limit))

    def count(self, category: Category | None = None) -> int:
        """How many report rows (of one category)."""
        return len(self) if category is None else self.summary[category].count

    def count_in_doubt(self, category: Category | None = None) -> int:
        """How many report rows (of one category) have their register row in doubt."""
        items = self._unsorted
        if category is not None:
            items = items.filter(pl.col("category") == category.value)
        return int(items.get_column("in_doubt").sum())

    def totals(self, by: Literal["site", "mid"]) -> dict[str | None, dict[Category, Totals]]:
        """Head office's totals: per store (``site``; None: bank rows no journal row
        explains) or per merchant id (``mid``, the register's, else the bank's), the
        count and amount of each category. Empty unless ``by_site``."""
        if not self.by_site:
            return {}
        out: dict[str | None, dict[Category, Totals]] = {}
        grouped = (
            self._unsorted.group_by(by, "category").agg(pl.len(), pl.col("amount").sum())
            .sort(by, "category", nulls_last=True)
        )
        for key, category, n, amount in grouped.iter_rows():
            out.setdefault(key, {})[Category(category)] = Totals(int(n), int(amount))
        return out

    def to_dict(self, *, rows: bool = True) -> dict[str, Any]:
        """The JSON document: ``{"summary": {...}, "rows": [...]}`` and context."""
        doc = self.head()
        if rows:
            doc["rows"] = [r.to_dict() for r in self.rows()]
        return doc

    def head(self) -> dict[str, Any]:
        """The JSON document without its rows."""
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
        } | (self._site_head() if self.by_site else {})

    def _site_head(self) -> dict[str, Any]:
        def section(by: Literal["site", "mid"]) -> list[dict[str, Any]]:
            return [
                {by: key, **{c.value: {"count": t.count, "amount": t.amount}
                             for c, t in per.items()}}
                for key, per in self.totals(by).items()
            ]

        return {
            "totals": {"site": section("site"), "mid": section("mid")},
            # Head office never writes a store's journal: these are resolved there.
            "resolve_at_store": [
                {"site": site, "id": e.id} for site, e in self.resolved_at_sites
            ],
        }

    @property
    def resolved_at_sites(self) -> list[tuple[str | None, Entry]]:
        """``resolved`` with each entry's store (head office's report)."""
        return list(zip(self._resolved_sites, self.resolved, strict=True))


def _with_amounts(reg: pl.DataFrame, bank: pl.DataFrame, items: pl.DataFrame) -> pl.DataFrame:
    """The engine's rows with their amount, difference, in_doubt and resolved, in the
    engine's order.

    Sides are looked up by position (``idx`` is the row's position): a gather, with
    null for a row the report row does not have.
    """
    reg_amount, bank_amount = _of(reg, items, "reg", "amount"), _of(bank, items, "bank", "amount")
    in_doubt = (
        pl.col("reg").is_not_null()
        & ~pl.col("proves")
        & ((_of(reg, items, "reg", "state") == IN_DOUBT)
           | _of(reg, items, "reg", "unsettled").fill_null(False))
    )
    return (
        items.with_columns(
            pl.coalesce(
                bank_amount, reg_amount,
                _of(bank, items, "bank_void", "amount"), _of(reg, items, "reg_void", "amount"),
            ).fill_null(0).alias("amount"),
            (bank_amount - reg_amount).alias("difference"),
            in_doubt.alias("in_doubt"),
            pl.col("proves").alias("resolved"),
        )
        .select("category", "key", *_LEAD, "amount", "difference", "in_doubt", "resolved")
    )  # fmt: skip


_LEAD = ("bank", "reg", "bank_void", "reg_void")
"""The roles in the order a report row takes its amount and time from."""


def _of(side: pl.DataFrame, items: pl.DataFrame, role: str, column: str) -> pl.Series:
    return side.get_column(column).gather(items.get_column(role)).rename(f"{role}_{column}")


def _sorted(reg: pl.DataFrame, bank: pl.DataFrame, items: pl.DataFrame) -> pl.DataFrame:
    """``items`` (of ``_with_amounts``) most serious category first, then by time, then
    by the rows' places in their files.

    Not the engine's order for ties: its joins run on several threads and may list
    the same rows in another order from one run to the next, and a report must read
    the same every time. Each file row is in one item, so the places decide."""
    time = pl.coalesce(
        [_of(reg if role.startswith("reg") else bank, items, role, "time") for role in _LEAD]
    )
    return (
        items.with_columns(
            pl.col("category").replace_strict(_ORDER, return_dtype=pl.Int8).alias("_order"),
            time.alias("_time"),
        )
        .sort(["_order", "_time", *_LEAD], nulls_last=True)
        .drop("_order", "_time")
    )


def _with_site(
    items: pl.DataFrame, reg: pl.DataFrame, bank: pl.DataFrame, sites: pl.Series
) -> pl.DataFrame:
    """The items with each row's store (from its journal sale, else its void) and MID
    (the register's, else the bank's)."""

    def at(series: pl.Series, role: str) -> pl.Series:
        return series.gather(items.get_column(role))

    reg_mid, bank_mid = reg.get_column("mid"), bank.get_column("mid")
    mid = pl.DataFrame([
        at(reg_mid, "reg").alias("a"), at(reg_mid, "reg_void").alias("b"),
        at(bank_mid, "bank").alias("c"), at(bank_mid, "bank_void").alias("d"),
    ]).select(pl.coalesce(pl.col(c).replace("", None) for c in "abcd").alias("mid"))
    site = pl.DataFrame([at(sites, "reg").alias("a"), at(sites, "reg_void").alias("b")]).select(
        pl.coalesce("a", "b").alias("site"))
    return pl.concat([items, site, mid], how="horizontal")


def _report_row(values: dict[str, Any]) -> ReportRow:
    def record(prefix: str) -> Record | None:
        if values[f"{prefix}_row"] is None:
            return None
        return Record(**{f: values[f"{prefix}_{f}"] for f in RECORD_FIELDS})

    return ReportRow(
        category=Category(values["category"]),
        key=MatchKey(values["key"]) if values["key"] else None,
        amount=values["amount"],
        register=record("reg"),
        bank=record("bank"),
        register_void=record("reg_void"),
        bank_void=record("bank_void"),
        in_doubt=values["in_doubt"],
        resolved=values["resolved"],
        site=values.get("site"),
    )


_WRITERS = ("CSV_COLUMNS", "write_csv", "write_json", "write_report", "write_xlsx")


def __getattr__(name: str) -> Any:
    """The writers, where they used to live (``ecrlink.reconcile`` exports them)."""
    if name in _WRITERS:
        from . import writers

        return getattr(writers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
