"""What the journal stores about one command, as its readers see it."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from ..protocol import INVOICE_FIELD, REFERENCE_FIELD, card_last4

__all__ = ["FINAL_STATES", "Entry", "ResolvedBy", "State"]


class State(enum.StrEnum):
    """Where a journaled command stands."""

    PENDING = "pending"
    """Written down, maybe sent; no answer recorded yet (a crash leaves these)."""
    APPROVED = "approved"
    DECLINED = "declined"
    CANCELED = "canceled"
    IN_DOUBT = "in_doubt"
    """May have reached the terminal, no valid answer: nobody knows yet."""
    FAILED = "failed"
    """Failed before sending: the terminal never saw it (nothing charged)."""


FINAL_STATES = frozenset({State.APPROVED, State.DECLINED, State.CANCELED, State.FAILED})


class ResolvedBy(enum.StrEnum):
    """How the final state became known."""

    REPLY = "reply"
    LAST_TRANS = "last_trans"
    CASHIER = "cashier"
    RECONCILIATION = "reconciliation"


@dataclass(frozen=True, slots=True)
class Entry:
    """One journaled command and what became of it. Card numbers are masked."""

    id: int
    terminal: str
    command: str
    state: State
    request_id: str
    client_id: str
    amount: int | None
    fields: tuple[str, str, str, str, str]
    created_at: datetime
    updated_at: datetime
    receipt_no: str | None = None
    """The terminal's receipt number of this transaction (for a void: of the void)."""
    void_of: str | None = None
    """For a void: the receipt number it asked to cancel."""
    approval_code: str | None = None
    ref_no: str | None = None
    card_no: str | None = None
    tid: str | None = None
    mid: str | None = None
    batch_no: str | None = None
    stan: str | None = None
    trans_time: datetime | None = None
    return_code: str | None = None
    resolved_by: ResolvedBy | None = None
    resolved_who: str | None = None
    note: str | None = None
    raw_reply: bytes | None = None

    @property
    def invoice(self) -> str:
        """F3, the merchant's invoice number ('' if none was sent)."""
        return self.fields[INVOICE_FIELD - 1]

    @property
    def reference(self) -> str:
        """F5, the reference code ('' if none was sent)."""
        return self.fields[REFERENCE_FIELD - 1]

    @property
    def card_last4(self) -> str | None:
        """Last four digits of the card."""
        return card_last4(self.card_no)
