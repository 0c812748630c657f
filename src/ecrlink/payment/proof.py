"""Proving what became of a payment whose answer was lost, from ``last trans``.

Real terminals (the protocol document's own sample) do not repeat the original
requestId in ``last trans``: the transaction is known only by its STAN, receipt,
batch, refNo, approval code, amount and time. So before sending a sale or void the
client knows the terminal's **high-water mark**: the :class:`Mark` of its latest
successful transaction. Afterwards ``last trans`` is compared with it:

- it carries our requestId: ours (approved, or approved for another amount);
- no echo, a mark **newer** than the high-water mark, of our kind (sale/void), with
  our amount and a terminal time not before our send (clock offset and skew
  allowed): ours, approved; the reason names the fields that proved it;
- **the same** mark as the high-water mark: nothing new was approved, so ours was
  not, but only once the terminal can no longer be in our transaction (``idle``);
  while it may still be waiting for the card, nothing is concluded;
- anything else (a newer transaction of another amount, made on the keypad, no
  high-water mark known, a terminal clock we cannot place): unknown, with the reason.

Pure: every input is an argument, including the times.
"""

from __future__ import annotations

import enum
import json
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from ..protocol import Outcome, Result, Transaction

__all__ = [
    "CLOCK_SKEW",
    "FRESH_MARK",
    "NO_TRANSACTION",
    "Judgement",
    "Mark",
    "Verdict",
    "judge",
]

CLOCK_SKEW = timedelta(seconds=120)
"""How far a terminal's clock may stray from its learned offset (it keeps whole seconds
and drifts)."""
FRESH_MARK = timedelta(seconds=10)
"""A high-water mark read this shortly before sending needs no clock to prove order:
nothing can have been done on the terminal in between."""

_TRANS_TYPE = {"sale": "1", "void": "2"}


def _num(text: str | None) -> int | None:
    return int(text) if text is not None and text.isascii() and text.isdigit() else None


@dataclass(frozen=True, slots=True)
class Mark:
    """The identity of one successful transaction on a terminal (numbers compared as such).

    ``Mark()`` with every field ``None`` is :data:`NO_TRANSACTION`: the terminal said
    it holds no successful transaction.
    """

    batch: int | None = None
    stan: int | None = None
    receipt: int | None = None
    ref_no: str | None = None
    approval_code: str | None = None
    amount: int | None = None
    trans_type: str | None = None
    time: str | None = None
    """Terminal time, ISO 8601 (kept as text so that a mark is plain JSON)."""

    @classmethod
    def of(cls, t: Transaction) -> Mark:
        """The mark of a transaction from a reply."""
        return cls(
            batch=_num(t.batch_no), stan=_num(t.stan), receipt=_num(t.receipt_no),
            ref_no=t.ref_no, approval_code=t.approval_code, amount=t.amount,
            trans_type=t.trans_type, time=t.time.isoformat() if t.time else None,
        )

    @classmethod
    def from_last_trans(cls, last: Result) -> Mark | None:
        """The high-water mark a ``last trans`` answer shows; None if it shows nothing usable."""
        t = last.transaction
        if last.outcome is Outcome.APPROVED and t is not None:
            mark = cls.of(t)
            return mark if mark.identified else None
        if last.outcome is Outcome.DECLINED:
            # last trans reports the latest *successful* transaction: a DONE answer
            # that is not an approval says there is none.
            return NO_TRANSACTION
        return None

    @property
    def identified(self) -> bool:
        """Enough fields to tell this transaction from another one."""
        return self.stan is not None or self.ref_no is not None or self.receipt is not None

    def same(self, other: Mark) -> bool:
        """The same transaction (times are ignored: they carry no identity)."""
        return (self.batch, self.stan, self.receipt, self.ref_no, self.approval_code,
                self.amount, self.trans_type) == (
                other.batch, other.stan, other.receipt, other.ref_no, other.approval_code,
                other.amount, other.trans_type)

    def to_json(self) -> str:
        """Compact JSON for the journal."""
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | None) -> Mark | None:
        """The mark stored by :meth:`to_json` (None stays None)."""
        return cls(**json.loads(text)) if text else None

    def describe(self) -> str:
        """A short human form for notes: ``batch 3 STAN 10 receipt 6 refNo … 123456 VND``."""
        if self == NO_TRANSACTION:
            return "no successful transaction"
        parts = [f"{name} {value}" for name, value in (
            ("batch", self.batch), ("STAN", self.stan), ("receipt", self.receipt),
            ("refNo", self.ref_no), ("approval", self.approval_code)) if value is not None]
        if self.amount is not None:
            parts.append(f"{self.amount} VND")
        return " ".join(parts)


NO_TRANSACTION = Mark()


class Verdict(enum.Enum):
    """What ``last trans`` proves about a payment."""

    APPROVED = "approved"
    MISMATCH = "amount_mismatch"
    NOT_APPROVED = "not_approved"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Judgement:
    """A verdict and the sentence that explains it (kept in the journal)."""

    verdict: Verdict
    reason: str
    retry: bool = False
    """Asking again later may prove it (the terminal may still be in our transaction)."""


@dataclass(frozen=True, slots=True)
class Attempt:
    """What the client knew about one sale or void when it sent it."""

    request_id: str
    command: str
    """``sale`` or ``void``."""
    amount: int | None
    """The amount asked (a void: the voided sale's amount, when the journal knows it)."""
    sent_at: datetime
    """Our clock (UTC) when it was written down, just before sending."""
    deadline: datetime
    """Our clock when the terminal can no longer be in this transaction."""
    mark: Mark | None
    """The terminal's high-water mark before sending; None if unknown."""
    mark_at: datetime | None = None
    """When that mark was read (our clock)."""
    clock_offset: float | None = None
    """Terminal clock minus ours, in seconds, learned from earlier replies."""
    echoes: bool | None = None
    """Whether this terminal repeats requestIds inside transInfo (learned)."""


def judge(attempt: Attempt, last: Result, *, idle: bool) -> Judgement:
    """What ``last`` (a ``last trans`` answer) proves about ``attempt``.

    ``idle`` is True when the terminal can no longer be in the attempt's transaction
    (it answered busy and then stopped, or the attempt's own deadline has passed).
    """
    t = last.transaction
    seen = Mark.from_last_trans(last)
    if t is not None and last.outcome is Outcome.APPROVED and t.request_id == attempt.request_id:
        return _ours(attempt, t, "last trans carries our requestId")
    if seen is None:
        return Judgement(Verdict.UNKNOWN, f"last trans answered {last.outcome.value}")
    if attempt.mark is not None and seen.same(attempt.mark):
        if not idle:
            return Judgement(
                Verdict.UNKNOWN,
                "last trans still shows the transaction from before ours, and the terminal "
                "may still be in ours (customer at the card reader)",
                retry=True,
            )
        return Judgement(
            Verdict.NOT_APPROVED,
            f"last trans still shows the transaction from before ours ({seen.describe()}) "
            "and the terminal has finished",
        )
    if seen == NO_TRANSACTION:
        if not idle:
            return Judgement(Verdict.UNKNOWN, "the terminal shows no successful transaction "
                             "yet and may still be in ours", retry=True)
        return Judgement(Verdict.NOT_APPROVED, "the terminal holds no successful transaction")
    assert t is not None
    return _newer(attempt, t, seen)


def _newer(attempt: Attempt, t: Transaction, seen: Mark) -> Judgement:
    """``last trans`` shows a transaction other than the high-water mark: is it ours?"""
    if attempt.mark is None:
        return Judgement(Verdict.UNKNOWN, "the terminal's last transaction before ours is "
                         "unknown, so the one it shows cannot be placed")
    if t.request_id is not None:
        return Judgement(Verdict.UNKNOWN, f"last trans shows request {t.request_id}, not ours")
    if attempt.echoes:
        return Judgement(Verdict.UNKNOWN, "this terminal repeats requestIds, and the newer "
                         "transaction has none: it was made on the terminal's keypad")
    wanted = _TRANS_TYPE.get(attempt.command)
    if seen.trans_type is not None and seen.trans_type != wanted:
        return Judgement(Verdict.UNKNOWN, f"the newer transaction is of type {seen.trans_type}, "
                         f"not a {attempt.command}")
    timing = _after_send(attempt, t)
    if timing is None:
        return Judgement(Verdict.UNKNOWN, "the newer transaction cannot be placed after our "
                         "send (terminal time before it, or the terminal's clock is unknown)")
    if attempt.amount is not None and seen.amount != attempt.amount:
        return Judgement(Verdict.UNKNOWN, f"a newer transaction of {seen.amount} VND (ours: "
                         f"{attempt.amount} VND) cannot be proven ours")
    if attempt.amount is None and attempt.command == "sale":
        return Judgement(Verdict.UNKNOWN, "no amount to compare")
    return Judgement(
        Verdict.APPROVED,
        f"no requestId echo; newer than the last transaction before ours "
        f"({attempt.mark.describe()} -> {seen.describe()}), same amount, {timing}",
    )


def _after_send(attempt: Attempt, t: Transaction) -> str | None:
    """Why ``t`` happened while our request was at the terminal, or None if it may not have."""
    if t.time is not None and attempt.clock_offset is not None:
        offset = timedelta(seconds=attempt.clock_offset)
        earliest = attempt.sent_at + offset - CLOCK_SKEW
        latest = attempt.deadline + offset + CLOCK_SKEW
        if earliest <= t.time <= latest:
            return f"terminal time {t.time:%H:%M:%S} within our request's time"
        return None
    if attempt.mark_at is not None and attempt.sent_at - attempt.mark_at <= FRESH_MARK:
        # Nothing can have happened on the terminal between reading the mark and our
        # send, and the terminal did nothing else while it was in our transaction.
        return "the mark was read just before sending"
    return None


def _ours(attempt: Attempt, t: Transaction, how: str) -> Judgement:
    if attempt.amount is not None and t.amount is not None and t.amount != attempt.amount:
        return Judgement(Verdict.MISMATCH, f"{how}: approved for {t.amount} VND, "
                         f"{attempt.amount} VND was requested")
    return Judgement(Verdict.APPROVED, how)
