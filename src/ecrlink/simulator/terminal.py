"""One simulated terminal: a request line in, an :class:`Answer` out.

This is the device both front ends (HTTP and serial) share: it is single-threaded
like the real one (a second request while one is in progress is refused), lets the
customer take ``card_delay`` seconds, picks the outcome (script, else amount), writes
the ledger to its flash before answering, and tells the front end whether to reply,
stay silent, drop the link or send half a reply.

Three settings choose between behaviours the protocol document leaves open (spec
§7), each defaulting to what the document shows or real terminals do:

* ``firmware``: ``v201`` replies as the document's samples (no requestId/clientId
  inside a sale's or ``last trans``'s ``transInfo``); ``echo`` repeats the
  original ones there, as a later firmware does.
* ``on_hangup``: ``finish``: an ECR that hangs up while the customer is at the card
  reader changes nothing (a real terminal does not notice): the customer pays, the
  bank answers, the reply is lost and ``last trans`` shows the payment.
  ``cancel``: the terminal is freed at once and nothing is charged. Either way, a
  sale that has gone to the bank completes in the ledger whatever the ECR does.
* ``busy_last_trans``: ``refuse``: any request while one is in progress is busy.
  ``answer``: ``last trans`` during a sale is answered at once with the previous
  successful transaction, which a client's recovery must not mistake for the
  outcome of the sale still in progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from .._exceptions import ConfigError, RemoteProtocolError
from ..protocol import (
    MAX_REQUEST_LINE,
    LastTrans,
    Request,
    Sale,
    Settle,
    Void,
    parse_request_line,
)
from .ledger import INVALID_TRANSACTION, Ledger, RecordStatus, TransactionRecord
from .outcomes import Behaviour, Script, plan_for_amount
from .replies import (
    busy_body,
    canceled_reply,
    encode,
    error_body,
    nothing_to_report,
    settle_reply,
    transaction_reply,
    truncate,
    void_refused,
)
from .state import StateStore, TerminalState, record_to_dict, summary_to_dict

__all__ = [
    "BUSY_LAST_TRANS",
    "FIRMWARES",
    "MAX_DELAY",
    "MAX_REQUEST_BYTES",
    "ON_HANGUP",
    "Answer",
    "AnswerKind",
    "Settings",
    "SimulatedTerminal",
]

log = logging.getLogger("ecrlink.simulator")

MAX_REQUEST_BYTES = MAX_REQUEST_LINE
"""A request line longer than this is refused (the protocol's lines are ~150 bytes)."""

MAX_DELAY = 3600
"""The longest delay or timer a terminal takes, in seconds."""

Clock = Callable[[], datetime]
Hangup = Callable[[], asyncio.Event]
"""Starts watching the ECR's side of the link; the event is set when it hangs up."""


class AnswerKind(enum.StrEnum):
    """What the front end must do with the link."""

    REPLY = "reply"
    """Send ``body`` (HTTP 200)."""
    ERROR = "error"
    """Malformed request: send ``body`` (HTTP 400; the same JSON on serial)."""
    BUSY = "busy"
    """Another request is in progress: HTTP 503 with ``body``; serial: drop it."""
    LOST = "lost"
    """The reply is lost: HTTP closes without a reply; serial stays silent."""
    TRUNCATED = "truncated"
    """Send ``body``, which is half a reply, then close."""
    SILENT = "silent"
    """Never answer; HTTP keeps the connection until the ECR hangs up."""


@dataclass(frozen=True, slots=True)
class Answer:
    """The terminal's answer to one request line."""

    kind: AnswerKind
    body: bytes = b""
    hold: asyncio.Event | None = None
    """For ``SILENT`` over HTTP: keep the link open until this is set (the ECR left)."""


FIRMWARES = ("v201", "echo")
"""``v201``: replies as the protocol document's samples; ``echo``: the original
requestId/clientId repeated at the end of ``transInfo`` (a later firmware)."""
ON_HANGUP = ("finish", "cancel")
"""What an ECR hanging up during the card wait does: nothing (``finish``, as real
terminals, which do not notice), or cancel the sale (``cancel``)."""
BUSY_LAST_TRANS = ("refuse", "answer")
"""``last trans`` during a sale: refused as busy, or answered with the previous
successful transaction."""

_SECONDS = ("card_delay", "bank_delay", "no_answer_timeout")
_CHOICES: dict[str, tuple[str, ...]] = {
    "firmware": FIRMWARES,
    "on_hangup": ON_HANGUP,
    "busy_last_trans": BUSY_LAST_TRANS,
}


@dataclass
class Settings:
    """Timing and behaviour of one terminal; changeable while it runs (``/_sim/config``)."""

    card_delay: float = 0.0
    """Seconds the customer takes at the card reader."""
    bank_delay: float = 0.0
    """Seconds between the bank's answer and the reply (the ECR may vanish here)."""
    no_answer_timeout: float = 3.0
    """The terminal's own timer for a request it never answers (…998)."""
    firmware: str = "v201"
    """Reply shape, one of ``FIRMWARES``."""
    on_hangup: str = "finish"
    """An ECR hanging up during the card wait, one of ``ON_HANGUP``."""
    busy_last_trans: str = "refuse"
    """``last trans`` while a sale is in progress, one of ``BUSY_LAST_TRANS``."""

    def update(self, values: dict[str, Any]) -> None:
        """Set the given settings; raise ``ConfigError`` for an unknown or bad one.

        Nothing changes unless every value is valid.
        """
        checked = {key: _checked(key, value) for key, value in values.items()}
        for key, value in checked.items():
            setattr(self, key, value)


def _checked(key: str, value: object) -> float | str:
    """``value`` as setting ``key`` holds it; ``ConfigError`` names the key and the rule."""
    if key in _SECONDS:
        if isinstance(value, bool) or not isinstance(value, int | float) or not (
            0 <= value <= MAX_DELAY
        ):
            raise ConfigError(f"{key} must be a number of seconds from 0 to {MAX_DELAY}")
        return float(value)
    allowed = _CHOICES.get(key)
    if allowed is None:
        known = ", ".join((*_SECONDS, *_CHOICES))
        raise ConfigError(f"unknown setting {key!r} (known: {known})")
    if value not in allowed:
        raise ConfigError(
            f"{key} must be one of {', '.join(map(repr, allowed))}, not {value!r}"
        )
    assert isinstance(value, str)
    return value


_ERROR_BUSY = Answer(AnswerKind.BUSY, busy_body())


class SimulatedTerminal:
    """A card terminal: its ledger, its script of outcomes, and its one-at-a-time rule."""

    def __init__(
        self,
        index: int,
        slot: TerminalState,
        *,
        settings: Settings,
        clock: Clock,
        store: StateStore | None = None,
        on_settle: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.index = index
        self.name = f"T{index + 1}"
        self.slot = slot
        self.settings = settings
        self.script = Script()
        self._clock = clock
        self._store = store
        self._on_settle = on_settle
        self._busy = False
        self._selling = False
        """A sale is in progress (card wait, bank), not a request held unanswered."""
        self._holds: set[asyncio.Task[None]] = set()

    @property
    def ledger(self) -> Ledger:
        """This terminal's ledger (read it; only the terminal changes it)."""
        return self.slot.ledger

    @property
    def busy(self) -> bool:
        """True while a request is in progress."""
        return self._busy

    # --- the one entry point --------------------------------------------------------

    async def handle(self, line: bytes, hangup: Hangup | None = None) -> Answer:
        """Process one request line; ``hangup`` lets an HTTP ECR's departure be seen."""
        if self._busy:
            return self._while_busy(line)
        try:
            request = parse_request_line(line)
        except RemoteProtocolError as exc:
            log.info("%s malformed request %s: %s", self.name, _Shown(line), exc)
            return Answer(AnswerKind.ERROR, error_body(str(exc)))
        log.info("%s <- %s", self.name, _Shown(line))
        self._busy = True
        stays_busy = False
        try:
            answer = await self._dispatch(request, hangup)
            stays_busy = answer.kind is AnswerKind.SILENT and answer.hold is not None
        finally:
            if not stays_busy:
                self._busy = False
        _log_answer(self.name, answer)
        return answer

    async def _dispatch(self, request: Request, hangup: Hangup | None) -> Answer:
        if isinstance(request, Sale):
            self._selling = True
            try:
                return await self._sale(request, hangup)
            finally:
                self._selling = False
        if isinstance(request, Void):
            return await self._void(request)
        if isinstance(request, Settle):
            return await self._settle(request)
        return self._last_trans(request)

    def _while_busy(self, line: bytes) -> Answer:
        """A request while another is in progress: busy, unless the settings say to
        answer ``last trans`` during a sale (with whatever the ledger holds now)."""
        if self._selling and self.settings.busy_last_trans == "answer":
            try:
                request: Request | None = parse_request_line(line)
            except RemoteProtocolError:
                request = None
            if isinstance(request, LastTrans):
                log.info("%s <- %s (during a sale)", self.name, _Shown(line))
                answer = self._last_trans(request)
                _log_answer(self.name, answer)
                return answer
        log.info("%s busy, refused: %s", self.name, _Shown(line))
        return _ERROR_BUSY

    # --- commands ------------------------------------------------------------------------

    async def _sale(self, request: Sale, hangup: Hangup | None) -> Answer:
        plan = self.script.next() or plan_for_amount(request.amount)
        ledger = self.ledger
        left = await self._card_wait(hangup)
        if left and self.settings.on_hangup == "cancel":
            record = ledger.not_charged(
                request,
                now=self._clock(),
                status=RecordStatus.CANCELED,
                detail="the ECR hung up while the customer was at the card reader",
                delivery="none",
            )
            await self._persist(record)
            return Answer(AnswerKind.SILENT)
        behaviour = plan.behaviour
        if behaviour is Behaviour.CANCEL:
            record = ledger.not_charged(
                request, now=self._clock(), status=RecordStatus.CANCELED,
                detail="the customer pressed Cancel", delivery="lost" if left else "reply",
            )
            await self._persist(record)
            if left:
                return Answer(AnswerKind.LOST)
            return Answer(
                AnswerKind.REPLY,
                encode(canceled_reply(request.request_id, request.client_id)),
            )
        if behaviour is Behaviour.NO_ANSWER:
            record = ledger.not_charged(
                request, now=self._clock(), status=RecordStatus.NEVER_ANSWERED,
                detail="the terminal never answered (no_answer)", delivery="none",
            )
            await self._persist(record)
            event = hangup() if hangup is not None else None
            task = asyncio.ensure_future(self._free_after_no_answer(event))
            self._holds.add(task)
            task.add_done_callback(self._holds.discard)
            return Answer(AnswerKind.SILENT, hold=event or asyncio.Event())
        if left:
            # The ECR hung up during the card wait (on_hangup=finish): nobody reads it.
            behaviour = Behaviour.LOST_REPLY
        delivery = {Behaviour.LOST_REPLY: "lost", Behaviour.TRUNCATED: "truncated"}.get(
            behaviour, "reply"
        )
        record = ledger.sale(
            request, now=self._clock(), return_code=plan.return_code, delivery=delivery
        )
        await self._persist(record)
        if self.settings.bank_delay > 0:
            await asyncio.sleep(self.settings.bank_delay)
        if behaviour is Behaviour.LOST_REPLY:
            return Answer(AnswerKind.LOST)
        body = encode(transaction_reply(record, ledger.identity, inner_ids=self._echo))
        if behaviour is Behaviour.TRUNCATED:
            return Answer(AnswerKind.TRUNCATED, truncate(body))
        return Answer(AnswerKind.REPLY, body)

    async def _card_wait(self, hangup: Hangup | None) -> bool:
        """The customer at the card reader for ``card_delay``; True if the ECR hung up.

        With ``on_hangup=cancel`` the wait ends as soon as the ECR hangs up; with
        ``finish`` it lasts the whole delay, as a real terminal does not notice.
        """
        delay = self.settings.card_delay
        if delay <= 0:
            return False  # no time for the ECR to leave; spare watching the link
        if hangup is None:
            await asyncio.sleep(delay)
            return False
        event = hangup()
        if self.settings.on_hangup == "cancel":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), delay)
        else:
            await asyncio.sleep(delay)
        return event.is_set()

    @property
    def _echo(self) -> bool:
        """Repeat the original requestId/clientId inside a sale's or ``last trans``'s
        ``transInfo`` (``firmware=echo``)."""
        return self.settings.firmware == "echo"

    async def _free_after_no_answer(self, hangup: asyncio.Event | None) -> None:
        try:
            if hangup is None:
                await asyncio.sleep(self.settings.no_answer_timeout)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(hangup.wait(), self.settings.no_answer_timeout)
        finally:
            self._busy = False
            log.info("%s free again after a request it never answered", self.name)

    async def _void(self, request: Void) -> Answer:
        ledger = self.ledger
        record = ledger.void(request, now=self._clock())
        if record.return_code == INVALID_TRANSACTION:
            await self._persist(record)
            return Answer(AnswerKind.REPLY, encode(void_refused(record, ledger.identity)))
        # The sale it canceled changed too (now ``voided``): both go to the log.
        voided = ledger.open_sale(record.void_of or 0)
        await self._persist(*(r for r in (voided, record) if r is not None))
        if self.settings.bank_delay > 0:
            await asyncio.sleep(self.settings.bank_delay)
        # The document's void sample repeats the ids inside transInfo: every firmware.
        return Answer(AnswerKind.REPLY, encode(transaction_reply(record, ledger.identity)))

    async def _settle(self, request: Settle) -> Answer:
        ledger = self.ledger
        closing = ledger.open_batch
        record, summary = ledger.settle(request, now=self._clock())
        log.info(
            "%s batch %06d settled: %d sales %d VND, %d voids %d VND",
            self.name, summary.batch_no, summary.sale_count, summary.sale_total,
            summary.void_count, summary.void_total,
        )
        if self._store is not None:
            try:
                await self._store.append_settled(self.index, self.slot.epoch, (*closing, record))
            except OSError:
                log.exception("%s could not record the settled batch", self.name)
            self._store.snapshot_next()
        await self._persist()
        if self._on_settle is not None:
            try:
                await self._on_settle()
            except OSError:
                log.exception("%s could not write the statement", self.name)
        if self.settings.bank_delay > 0:
            await asyncio.sleep(self.settings.bank_delay)
        return Answer(AnswerKind.REPLY, encode(settle_reply(record)))

    def _last_trans(self, request: Request) -> Answer:
        assert isinstance(request, LastTrans)
        ledger = self.ledger
        last = ledger.last_success
        if last is None:
            doc = nothing_to_report(request.request_id, request.client_id, ledger.identity)
        else:
            doc = transaction_reply(
                last, ledger.identity,
                request_id=request.request_id, client_id=request.client_id,
                command="last_trans", inner_ids=self._echo,
            )
        return Answer(AnswerKind.REPLY, encode(doc))

    # --- housekeeping --------------------------------------------------------------

    async def _persist(self, *records: TransactionRecord) -> None:
        """Put the change that touched ``records`` on disk before answering."""
        if self._store is None:
            return
        if records:
            self._store.note(self.index, self.slot, records)
        try:
            await self._store.commit()
        except OSError:
            # A real terminal with failing flash still answers; say so loudly.
            log.exception("%s could not write the state file", self.name)

    async def reset(self) -> None:
        """Start afresh: batch 1, no records, empty script (``POST /_sim/reset``)."""
        self.slot.ledger = Ledger(self.ledger.identity)
        self.slot.epoch += 1
        self.script.clear()
        if self._store is not None:
            self._store.snapshot_next()
        await self._persist()

    async def close(self) -> None:
        """Stop the timers of requests it never answered."""
        for task in list(self._holds):
            task.cancel()
        for task in list(self._holds):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def state(self) -> dict[str, Any]:
        """Everything about the terminal, JSON-ready (``GET /_sim/state``)."""
        ledger = self.ledger
        identity = ledger.identity
        last = ledger.last_success
        return {
            "terminal": self.index + 1,
            "tid": identity.tid,
            "mid": identity.mid,
            "pos_serial": identity.pos_serial,
            "batch_no": ledger.batch_no,
            "last_receipt": ledger.last_receipt,
            "last_stan": ledger.last_stan,
            "busy": self._busy,
            "script": self.script.pending(),
            "settings": asdict(self.settings),
            "open_batch": summary_to_dict(ledger.summary()),
            "settlements": [summary_to_dict(s) for s in ledger.settlements],
            "last_success": record_to_dict(last) if last else None,
            "transactions": [record_to_dict(r) for r in ledger.transactions],
        }


def _log_answer(name: str, answer: Answer) -> None:
    if log.isEnabledFor(logging.INFO):
        shown = answer.body.decode("utf-8", "replace") if answer.body else ""
        log.info("%s -> %s %s", name, answer.kind.value, shown)


class _Shown:
    """The request line for a log: one printable line, short even if the request was not.

    Formatted only if the log line is written (``-q`` turns these off).
    """

    __slots__ = ("line",)

    def __init__(self, line: bytes) -> None:
        self.line = line

    def __str__(self) -> str:
        text = "".join(chr(b) if 0x20 <= b < 0x7F else f"\\x{b:02x}" for b in self.line[:200])
        return text + ("..." if len(self.line) > 200 else "")
