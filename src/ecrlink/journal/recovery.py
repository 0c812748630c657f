"""Deciding what became of an in-doubt payment from the terminal's ``last trans``.

``judge`` is pure: given the in-doubt entry, the latest approval the journal knew on
that terminal before it, and what ``last trans`` answered, it says approved, not
approved, or still unknown. The client does the asking (with retries) and records.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..protocol import Outcome, Result, Transaction
from .records import Entry

__all__ = ["Judgement", "Verdict", "judge", "same_transaction"]


class Verdict(enum.Enum):
    """What ``last trans`` proves about an in-doubt entry."""

    APPROVED = "approved"
    NOT_APPROVED = "not_approved"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Judgement:
    """A verdict and the sentence that explains it (kept in the journal)."""

    verdict: Verdict
    reason: str


def _num(text: str | None) -> int | None:
    return int(text) if text is not None and text.isdigit() else None


def same_transaction(entry: Entry, t: Transaction) -> bool:
    """Whether ``t`` (from ``last trans``) is the transaction journaled as ``entry``."""
    if t.request_id is not None:
        return t.request_id == entry.request_id
    if entry.ref_no and t.ref_no:
        return entry.ref_no == t.ref_no and entry.approval_code == t.approval_code
    receipt, batch = _num(entry.receipt_no), _num(entry.batch_no)
    return receipt is not None and receipt == _num(t.receipt_no) and batch == _num(t.batch_no)


def judge(request_id: str, amount: int | None, previous: Entry | None, last: Result) -> Judgement:
    """What ``last`` (the reply to ``last trans``) proves about an in-doubt command.

    ``request_id`` and ``amount`` are the in-doubt command's; ``previous`` is the
    latest approval the journal knew on that terminal before it.

    - it carries our requestId: ours went through, approved;
    - it is the latest approval we knew before ours: ours was not approved;
    - the terminal has no successful transaction and we knew none: not approved;
    - anything else proves nothing: unknown.
    """
    t = last.transaction
    if last.outcome is Outcome.APPROVED and t is not None:
        if t.request_id is not None and t.request_id == request_id:
            if amount is not None and t.amount != amount:
                return Judgement(
                    Verdict.APPROVED,
                    f"last trans shows our requestId, approved for {t.amount} VND "
                    f"(requested {amount}): AMOUNT MISMATCH",
                )
            return Judgement(Verdict.APPROVED, "last trans carries our requestId")
        if previous is not None and same_transaction(previous, t):
            return Judgement(
                Verdict.NOT_APPROVED,
                f"last trans still shows the previous approval (journal entry {previous.id})",
            )
        return Judgement(Verdict.UNKNOWN, "last trans shows a transaction we cannot place")
    if last.outcome is Outcome.DECLINED and previous is None:
        # last trans reports the latest *successful* transaction: a DONE reply that is
        # not an approval says there is none, and the journal knew none either.
        return Judgement(
            Verdict.NOT_APPROVED, "the terminal holds no successful transaction at all"
        )
    return Judgement(Verdict.UNKNOWN, f"last trans answered {last.outcome.value}")
