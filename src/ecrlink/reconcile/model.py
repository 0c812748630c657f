"""The shapes both engines share: one side's rows as columns, categories, keys."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields
from datetime import datetime

from ..journal.records import FINAL_STATES, Entry, State
from .values import Kind

__all__ = ["APPROVED", "IN_DOUBT", "TEXT_FIELDS", "UNSETTLED", "Category", "MatchKey", "Side"]

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
    """One side's rows, column by column (a row is an index into every list).

    Columns rather than row objects: a month of a chain's payments is millions of
    rows, and per-row objects would cost several times the memory.
    """

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

    def take(self, keep: list[int]) -> Side:
        """A new side with only the rows at ``keep`` (links renumbered)."""
        new_index = {old: new for new, old in enumerate(keep)}
        out = Side(self.source, dropped=self.dropped + len(self) - len(keep))
        for f in fields(self):
            if f.name in ("source", "dropped", "link"):
                continue
            column = getattr(self, f.name)
            setattr(out, f.name, [column[i] for i in keep])
        out.link = [new_index.get(self.link[i], -1) for i in keep]
        return out
