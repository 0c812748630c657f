"""The simulated terminal's batch ledger: every state transition lives in this file.

A pure state machine in the terminal's role (see STYLE.md, h11): no I/O, no clock, no
randomness. Time comes in as an argument; "random" values (card, approval code, TC)
are derived from the terminal's seed and the STAN, so a run is reproducible and a
restarted terminal continues with the same sequence.

Transitions:

=====================  ===========================================================
``sale(ret="00")``     STAN+1, receipt+1, approved record, becomes ``last trans``
``sale(ret="NN")``     STAN+1, receipt+1, declined record (the bank answered)
``not_charged(...)``   nothing consumed: canceled at the terminal / never answered
``void(receipt)``      receipt of an approved sale in the open batch, once: STAN+1,
                       the sale becomes ``voided``, the void becomes ``last trans``;
                       anything else answers return code ``12`` and changes nothing
                       but the record list
``settle()``           STAN+1, the open batch closes (counts and totals), batch+1;
                       its receipts can no longer be voided
=====================  ===========================================================

Numbers wrap from 999999 to 1, as six-digit terminal counters do.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from .._exceptions import ConfigError
from ..protocol import INVOICE_FIELD, REFERENCE_FIELD, VIETNAM_TIME, Sale, Settle, Void
from .cards import TestCard, card_pool

__all__ = [
    "APPROVED_CODE",
    "DECLINED_APPROVAL_CODE",
    "INVALID_TRANSACTION",
    "BatchSummary",
    "Identity",
    "Ledger",
    "RecordStatus",
    "TransactionRecord",
]

APPROVED_CODE = "00"
INVALID_TRANSACTION = "12"
"""The return code for a void of a receipt that cannot be voided (spec §7 decision)."""
DECLINED_APPROVAL_CODE = "000000"
"""A declined sale carries no approval; six zeros keep the field's shape."""
_COUNTER_MAX = 999_999


class RecordStatus(enum.StrEnum):
    """What became of one transaction, from the terminal's side."""

    APPROVED = "approved"
    DECLINED = "declined"
    CANCELED = "canceled"
    """Canceled at the terminal (customer pressed Cancel, or the ECR hung up first)."""
    VOIDED = "voided"
    """An approved sale that a later void canceled."""
    NEVER_ANSWERED = "never_answered"
    """The terminal never answered and charged nothing (magic amount …998)."""


@dataclass(frozen=True, slots=True)
class Identity:
    """Who the terminal is: printed on every reply, fixed for its life."""

    tid: str
    mid: str
    pos_serial: str
    seed: int = 0


@dataclass(frozen=True, slots=True)
class TransactionRecord:
    """One transaction the terminal processed. Card numbers are masked; numbers are ints."""

    seq: int
    """Order of processing on this terminal, from 1."""
    command: str
    """``sale``, ``void`` or ``settle``."""
    status: RecordStatus
    request_id: str
    client_id: str
    time: datetime
    batch_no: int
    return_code: str | None = None
    amount: int | None = None
    fields: tuple[str, str, str, str, str] = ("", "", "", "", "")
    receipt_no: int | None = None
    stan: int | None = None
    approval_code: str | None = None
    ref_no: str | None = None
    card: TestCard | None = None
    emv_tc: str | None = None
    void_of: int | None = None
    """For a void: the receipt number it canceled (also its own ``receipt_no``)."""
    delivery: str = "reply"
    """How the answer left the terminal: ``reply``, ``lost``, ``truncated``, ``none``."""
    detail: str | None = None

    @property
    def approved(self) -> bool:
        """The bank approved it (a later void does not undo that the sale happened)."""
        return self.status in (RecordStatus.APPROVED, RecordStatus.VOIDED)

    @property
    def card_no(self) -> str | None:
        """The masked card number as the reply shows it."""
        return self.card.card_no if self.card else None

    @property
    def invoice(self) -> str:
        """F3, the merchant's invoice number."""
        return self.fields[INVOICE_FIELD - 1]

    @property
    def reference(self) -> str:
        """F5, the reference code."""
        return self.fields[REFERENCE_FIELD - 1]


@dataclass(frozen=True, slots=True)
class BatchSummary:
    """Counts and totals of one batch, as the settlement report prints them."""

    batch_no: int
    sale_count: int = 0
    sale_total: int = 0
    void_count: int = 0
    void_total: int = 0
    settled_at: datetime | None = None
    stan: int | None = None

    @property
    def net_total(self) -> int:
        """What the bank pays the merchant for the batch: sales less voids."""
        return self.sale_total - self.void_total


def _next(counter: int) -> int:
    return 1 if counter >= _COUNTER_MAX else counter + 1


def _summary_of(batch_no: int, records: Iterable[TransactionRecord]) -> BatchSummary:
    sale_count = sale_total = void_count = void_total = 0
    for r in records:
        if r.command == "sale" and r.approved:
            sale_count += 1
            sale_total += r.amount or 0
        elif r.command == "void" and r.status is RecordStatus.APPROVED:
            void_count += 1
            void_total += r.amount or 0
    return BatchSummary(batch_no, sale_count, sale_total, void_count, void_total)


class Ledger:
    """The batch ledger of one terminal.

    Read it freely (``transactions``, ``open_batch``, ``last_success``, ...); only
    the simulator's event loop changes it. ``revision`` grows with every change, so
    a writer knows when to persist.
    """

    def __init__(
        self,
        identity: Identity,
        *,
        batch_no: int = 1,
        last_receipt: int = 0,
        last_stan: int = 0,
        last_seq: int = 0,
        open_batch: Iterable[TransactionRecord] = (),
        settled: Iterable[TransactionRecord] = (),
        settlements: Iterable[BatchSummary] = (),
        last_success: TransactionRecord | None = None,
    ) -> None:
        self.identity = identity
        self._cards = card_pool(identity.seed)
        self._batch_no = batch_no
        self._last_receipt = last_receipt
        self._last_stan = last_stan
        self._last_seq = last_seq
        # Settled and open records in one tuple, replaced in one assignment at
        # settlement, so a reader in another thread never sees a record twice.
        self._books: tuple[list[TransactionRecord], list[TransactionRecord]] = (
            list(settled), list(open_batch),
        )
        self._settlements: list[BatchSummary] = list(settlements)
        self._last_success = last_success
        self.revision = 0

    # --- reading ------------------------------------------------------------------

    @property
    def _settled(self) -> list[TransactionRecord]:
        return self._books[0]

    @property
    def _open(self) -> list[TransactionRecord]:
        return self._books[1]

    @property
    def batch_no(self) -> int:
        """The open batch's number."""
        return self._batch_no

    @property
    def last_receipt(self) -> int:
        """The last receipt number given (0 before the first sale)."""
        return self._last_receipt

    @property
    def last_stan(self) -> int:
        """The last STAN used (0 before the first message to the bank)."""
        return self._last_stan

    @property
    def last_seq(self) -> int:
        """The ``seq`` of the last record."""
        return self._last_seq

    @property
    def open_batch(self) -> tuple[TransactionRecord, ...]:
        """Records of the open batch, in order."""
        return tuple(self._open)

    @property
    def settled(self) -> tuple[TransactionRecord, ...]:
        """Records of every settled batch, in order."""
        return tuple(self._settled)

    @property
    def transactions(self) -> tuple[TransactionRecord, ...]:
        """Every record, settled batches first, in processing order."""
        settled, open_batch = self._books
        return tuple(settled) + tuple(open_batch)

    @property
    def settlements(self) -> tuple[BatchSummary, ...]:
        """Summaries of the settled batches, oldest first."""
        return tuple(self._settlements)

    @property
    def last_success(self) -> TransactionRecord | None:
        """What ``last trans`` answers: the most recent approved sale or void."""
        return self._last_success

    def summary(self) -> BatchSummary:
        """Counts and totals of the open batch so far."""
        return _summary_of(self._batch_no, self._open)

    def open_sale(self, receipt_no: int) -> TransactionRecord | None:
        """The sale with this receipt number in the open batch, if any."""
        index = self._open_sale_index(receipt_no)
        return self._open[index] if index is not None else None

    def _open_sale_index(self, receipt_no: int) -> int | None:
        for i, r in enumerate(self._open):
            if r.command == "sale" and r.receipt_no == receipt_no:
                return i
        return None

    def find(self, request_id: str) -> list[TransactionRecord]:
        """Every record made for ``request_id`` (normally one)."""
        return [r for r in self.transactions if r.request_id == request_id]

    # --- deriving "random" values ------------------------------------------------------

    def _digest(self, *parts: object) -> int:
        text = "|".join(str(p) for p in (self.identity.seed, self.identity.tid, *parts))
        return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")

    def _card_for(self, stan: int) -> TestCard:
        return self._cards[self._digest("card", self._batch_no, stan) % len(self._cards)]

    def _approval_code(self, stan: int) -> str:
        return f"{self._digest('auth', self._batch_no, stan) % 1_000_000:06d}"

    def _emv_tc(self, card: TestCard, stan: int) -> str | None:
        if card.card_input != "C":
            return None
        return f"{self._digest('tc', self._batch_no, stan):016X}"

    @staticmethod
    def _ref_no(now: datetime, stan: int) -> str:
        # ISO 8583 retrieval reference number: YDDDhh + STAN, 12 digits.
        local = now.astimezone(VIETNAM_TIME)
        return f"{local.year % 10}{local.timetuple().tm_yday:03d}{local.hour:02d}{stan:06d}"

    # --- transitions --------------------------------------------------------------------

    def _add(self, record: TransactionRecord) -> TransactionRecord:
        self._open.append(record)
        self._last_seq = record.seq
        self.revision += 1
        return record

    def _consume_stan(self) -> int:
        self._last_stan = _next(self._last_stan)
        return self._last_stan

    def sale(
        self,
        request: Sale,
        *,
        now: datetime,
        return_code: str = APPROVED_CODE,
        delivery: str = "reply",
    ) -> TransactionRecord:
        """The bank answered a sale with ``return_code``: record it, approved or declined."""
        stan = self._consume_stan()
        self._last_receipt = _next(self._last_receipt)
        card = self._card_for(stan)
        approved = return_code == APPROVED_CODE
        record = TransactionRecord(
            seq=self._last_seq + 1,
            command="sale",
            status=RecordStatus.APPROVED if approved else RecordStatus.DECLINED,
            request_id=request.request_id,
            client_id=request.client_id,
            time=now,
            batch_no=self._batch_no,
            return_code=return_code,
            amount=request.amount,
            fields=request.fields,
            receipt_no=self._last_receipt,
            stan=stan,
            approval_code=self._approval_code(stan) if approved else DECLINED_APPROVAL_CODE,
            ref_no=self._ref_no(now, stan),
            card=card,
            emv_tc=self._emv_tc(card, stan),
            delivery=delivery,
        )
        if approved:
            self._last_success = record
        return self._add(record)

    def not_charged(
        self,
        request: Sale,
        *,
        now: datetime,
        status: RecordStatus,
        detail: str,
        delivery: str = "reply",
    ) -> TransactionRecord:
        """A sale that never reached the bank (canceled, never answered): nothing consumed."""
        if status not in (RecordStatus.CANCELED, RecordStatus.NEVER_ANSWERED):
            raise ConfigError(f"not_charged takes canceled or never_answered, not {status}")
        return self._add(
            TransactionRecord(
                seq=self._last_seq + 1,
                command="sale",
                status=status,
                request_id=request.request_id,
                client_id=request.client_id,
                time=now,
                batch_no=self._batch_no,
                amount=request.amount,
                fields=request.fields,
                delivery=delivery,
                detail=detail,
            )
        )

    def void(self, request: Void, *, now: datetime, delivery: str = "reply") -> TransactionRecord:
        """Void the approved sale with this receipt number in the open batch, once."""
        wanted = int(request.receipt_no)
        index = self._open_sale_index(wanted)
        if index is None:
            why = f"no receipt {wanted} in open batch {self._batch_no}"
            return self._void_refused(request, now, wanted, delivery, why)
        original = self._open[index]
        if original.status is not RecordStatus.APPROVED:
            why = f"receipt {wanted} is {original.status.value}"
            return self._void_refused(request, now, wanted, delivery, why)
        stan = self._consume_stan()
        assert original.card is not None
        record = TransactionRecord(
            seq=self._last_seq + 1,
            command="void",
            status=RecordStatus.APPROVED,
            request_id=request.request_id,
            client_id=request.client_id,
            time=now,
            batch_no=self._batch_no,
            return_code=APPROVED_CODE,
            amount=original.amount,
            fields=original.fields,
            receipt_no=original.receipt_no,
            stan=stan,
            approval_code=original.approval_code,
            ref_no=self._ref_no(now, stan),
            card=original.card,
            emv_tc=self._emv_tc(original.card, stan),
            void_of=original.receipt_no,
            delivery=delivery,
        )
        self._open[index] = replace(original, status=RecordStatus.VOIDED)
        self._last_success = record
        return self._add(record)

    def _void_refused(
        self, request: Void, now: datetime, receipt_no: int, delivery: str, why: str
    ) -> TransactionRecord:
        """Return code 12: nothing changes but the record list."""
        return self._add(
            TransactionRecord(
                seq=self._last_seq + 1,
                command="void",
                status=RecordStatus.DECLINED,
                request_id=request.request_id,
                client_id=request.client_id,
                time=now,
                batch_no=self._batch_no,
                return_code=INVALID_TRANSACTION,
                receipt_no=receipt_no,
                void_of=receipt_no,
                delivery=delivery,
                detail=why,
            )
        )

    def settle(
        self, request: Settle, *, now: datetime, delivery: str = "reply"
    ) -> tuple[TransactionRecord, BatchSummary]:
        """Close the open batch: its summary is kept and a new batch opens."""
        stan = self._consume_stan()
        closed = self._batch_no
        summary = replace(_summary_of(closed, self._open), settled_at=now, stan=stan)
        record = TransactionRecord(
            seq=self._last_seq + 1,
            command="settle",
            status=RecordStatus.APPROVED,
            request_id=request.request_id,
            client_id=request.client_id,
            time=now,
            batch_no=closed,
            return_code=APPROVED_CODE,
            amount=summary.net_total,
            stan=stan,
            delivery=delivery,
            detail=None if request.confirm else "settle|NO (treated as YES)",
        )
        self._add(record)
        self._books = ([*self._settled, *self._open], [])
        self._settlements.append(summary)
        self._batch_no = _next(closed)
        return record, summary
