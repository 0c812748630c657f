"""The shapes of reconciliation: one side's rows as columns, categories, keys."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..journal.records import FINAL_STATES, Entry, State
from .values import Kind

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "APPROVED", "IN_DOUBT", "TEXT_FIELDS", "UNSETTLED", "Category", "MatchKey", "Side",
    "kind_dtype", "side_schema",
]  # fmt: skip

APPROVED = "approved"
IN_DOUBT = "in_doubt"
"""A register row whose outcome nobody knows yet (its journal entry is ``UNSETTLED``)."""
UNSETTLED = frozenset(State) - FINAL_STATES
"""Journal states whose outcome nobody knows yet: in_doubt and pending."""


class Category(enum.StrEnum):
    """Where a reconciled row ends up; declared from the most serious to the least."""

    BANK_ONLY = "bank_only"
    """Money taken, and the register has no invoice for it."""
    DUPLICATE = "duplicate"
    """The same invoice charged more than once."""
    ECR_ONLY = "ecr_only"
    """The register counts it as paid; the bank shows nothing."""
    AMOUNT_MISMATCH = "amount_mismatch"
    """Both sides have it (same key), with different amounts."""
    VOIDED = "voided"
    """A sale cancelled by its void (or a void whose sale is outside the period)."""
    MATCHED = "matched"

    @property
    def needs_attention(self) -> bool:
        """Whether a nightly job should alert on this category."""
        return self not in (Category.MATCHED, Category.VOIDED)


class MatchKey(enum.StrEnum):
    """Which key paired a register row with a bank row, tried in this order."""

    INVOICE = "invoice"
    CARD_APPROVAL = "card_approval"
    REF_NO = "ref_no"


TEXT_FIELDS = (
    "invoice", "reference", "card", "last4", "approval", "ref_no", "tid", "mid",
    "batch", "receipt",
)  # fmt: skip


@dataclass(slots=True)
class Side:
    """One side's rows, built row by row, column by column (a row is an index into
    every list): the journal's entries, and files the row reader reads.
    ``to_frame()`` gives the frame the engine matches."""

    source: str
    """The file it came from, or ``journal``."""
    row: list[int] = field(default_factory=list)
    """1-based row in the file, or the journal entry id."""
    kind: list[Kind] = field(default_factory=list)
    amount: list[int] = field(default_factory=list)
    """VND, never negative (the kind says which way the money went)."""
    time: list[datetime | None] = field(default_factory=list)
    invoice: list[str] = field(default_factory=list)
    """Normalised (upper case); '' when the row has none."""
    reference: list[str] = field(default_factory=list)
    card: list[str] = field(default_factory=list)
    """Masked: never more than the first 6 and last 4 digits."""
    last4: list[str] = field(default_factory=list)
    approval: list[str] = field(default_factory=list)
    ref_no: list[str] = field(default_factory=list)
    tid: list[str] = field(default_factory=list)
    mid: list[str] = field(default_factory=list)
    batch: list[str] = field(default_factory=list)
    receipt: list[str] = field(default_factory=list)
    state: list[str] = field(default_factory=list)
    """``approved`` or ``in_doubt`` (bank rows are always approved)."""
    link: list[int] = field(default_factory=list)
    """For a journal void: index of the sale it cancels on this side, else -1."""
    entry: list[Entry | None] = field(default_factory=list)
    """The journal entry behind a row, if any (to resolve it)."""
    dropped: int = 0
    """Rows read but left out: declined in a status column, outside the period."""

    def __len__(self) -> int:
        return len(self.row)

    def add(
        self,
        *,
        row: int,
        kind: Kind,
        amount: int,
        time: datetime | None,
        invoice: str = "",
        reference: str = "",
        card: str = "",
        last4: str = "",
        approval: str = "",
        ref_no: str = "",
        tid: str = "",
        mid: str = "",
        batch: str = "",
        receipt: str = "",
        state: str = APPROVED,
        link: int = -1,
        entry: Entry | None = None,
    ) -> int:
        """Append one row; returns its index."""
        self.row.append(row)
        self.kind.append(kind)
        self.amount.append(amount)
        self.time.append(time)
        self.invoice.append(invoice)
        self.reference.append(reference)
        self.card.append(card)
        self.last4.append(last4)
        self.approval.append(approval)
        self.ref_no.append(ref_no)
        self.tid.append(tid)
        self.mid.append(mid)
        self.batch.append(batch)
        self.receipt.append(receipt)
        self.state.append(state)
        self.link.append(link)
        self.entry.append(entry)
        return len(self.row) - 1

    def to_frame(self) -> pl.DataFrame:
        """The rows as a frame of ``side_schema()`` (``entry`` is the row's position in
        ``self.entry`` where it has one)."""
        import polars as pl

        n = len(self)
        return pl.DataFrame(
            {
                "idx": list(range(n)),
                "row": self.row,
                "kind": [k.value for k in self.kind],
                "amount": self.amount,
                "time": self.time,
                **{name: getattr(self, name) for name in TEXT_FIELDS},
                "state": self.state,
                "link": self.link,
                "unsettled": [e is not None and e.state in UNSETTLED for e in self.entry],
                "entry": [i if e is not None else None for i, e in enumerate(self.entry)],
            },
            schema=side_schema(),
        )


def side_schema() -> dict[str, Any]:
    """The columns of one side's frame: what matching reads (``engine.MATCH_SCHEMA``),
    and what reports show."""
    import polars as pl

    return {
        "idx": pl.Int64,
        "row": pl.Int64,
        "kind": kind_dtype(),
        "amount": pl.Int64,
        "time": pl.Datetime("us"),
        **dict.fromkeys(TEXT_FIELDS, pl.String),
        "state": pl.String,
        "link": pl.Int64,
        "unsettled": pl.Boolean,
        "entry": pl.Int64,
    }


def kind_dtype() -> Any:
    """Kinds as a polars enum: one byte per row, cheap to hash and compare."""
    import polars as pl

    return pl.Enum([k.value for k in Kind])
