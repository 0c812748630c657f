"""What the journal stores about one command, as its readers see it."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from ..payment.states import FINAL_STATES, State
from ..protocol import INVOICE_FIELD, REFERENCE_FIELD, card_last4

__all__ = ["FINAL_STATES", "Change", "Entry", "ResolvedBy", "State", "TerminalProfile"]


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
    charged_amount: int | None = None
    """What the terminal charged (approved or amount_mismatch), next to ``amount`` asked."""
    mark_before: str | None = None
    """The terminal's high-water mark known before sending (JSON), for recovery."""
    mark_at: datetime | None = None
    deadline: datetime | None = None
    """When the terminal can no longer be in this transaction."""

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


@dataclass(frozen=True, slots=True)
class TerminalProfile:
    """What the journal has learned about one terminal from its replies."""

    terminal: str
    mark: str | None = None
    """The latest successful transaction's mark (JSON, ``ecrlink.payment.proof.Mark``)."""
    mark_at: datetime | None = None
    mark_valid: bool = False
    """False while a command whose outcome is unknown may have moved the mark."""
    echoes: bool | None = None
    """Whether the terminal repeats requestIds inside transInfo (None: not seen yet)."""
    clock_offset: float | None = None
    """Terminal clock minus ours, in seconds."""
    tid: str | None = None
    pos_serial: str | None = None


@dataclass(frozen=True, slots=True)
class Change:
    """One state change of a journal (a row of its ``history``)."""

    id: int
    """The history row id: the journal's change number, increasing with every commit."""
    entry_id: int
    at: datetime
    state: State
    by: str | None = None
    who: str | None = None
    note: str | None = None
