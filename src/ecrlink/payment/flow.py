"""The whole life of a command, written once, with no I/O of its own.

Each flow is a generator that yields the effects it needs and gets their results
back (or their exception thrown in):

- :class:`Exchange`: send a request line, give back the reply's bytes; the driver
  lets the transport tick ``progress.sent`` just before the first byte leaves;
- :class:`Pause`: wait;
- :class:`Store`: call the journal (the asyncio driver does it in a worker thread,
  so SQLite's fsync never blocks the event loop);
- :class:`Recovered`: tell the caller what became of earlier payments that this
  command settled before starting (a crash or Ctrl-C had left them open).

The clock is passed in. ``Terminal`` and ``AsyncTerminal`` (``ecrlink.client``) only
carry the effects out. What a command goes through (the journal checks each step
against ``states.TRANSITIONS``):

1. under the terminal's lock, recover what a crashed process left, and refuse a new
   sale while a payment is still in doubt (unless forced);
2. for a sale or void, know the terminal's high-water mark: from the journal when
   the last command ended with an answer, else by asking ``last trans`` first;
3. write it down as pending (fsync), send it;
4. a reply: record it. Nothing sent (refused connection, ``progress.sent`` never
   ticked): failed. Refused by the terminal (busy) or by something that is not a
   terminal: failed. Otherwise it may have been charged: in doubt, and for a sale or
   void ask ``last trans`` until ``proof.judge`` can tell, or the bound runs out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from .._exceptions import (
    ConnectError,
    ConnectTimeout,
    DuplicateInvoice,
    EcrError,
    InDoubtPending,
    JournalError,
    NotTerminalReply,
    RemoteProtocolError,
    TerminalBusy,
    TransportError,
)
from ..journal.records import Entry, ResolvedBy, TerminalProfile
from ..journal.store import Journal
from ..protocol import (
    VIETNAM_TIME,
    LastTrans,
    Outcome,
    Request,
    Result,
    Sale,
    Settle,
    Void,
    check_answers,
    mask_card_numbers,
    parse_reply,
)
from .proof import Attempt, Judgement, Mark, Verdict, judge
from .states import Event, State

__all__ = [
    "MARK_MAX_AGE",
    "Exchange",
    "Flow",
    "Flows",
    "Pause",
    "Progress",
    "Recovered",
    "Settings",
    "Store",
]

wire_log = logging.getLogger("ecrlink.wire")
log = logging.getLogger("ecrlink")

T = TypeVar("T")

MARK_MAX_AGE = timedelta(minutes=10)
"""A high-water mark older than this is read again before a sale (someone may have
used the terminal's keypad meanwhile)."""

# The refusals after which nothing can have been charged: the terminal said busy, or
# never got the request. (A transport raises ConnectError/ConnectTimeout only before
# the first byte leaves.)
_NOT_SENT = (ConnectError, ConnectTimeout)

# What a crashed process leaves: written down, maybe sent, no answer recorded.
_LEFTOVERS = (State.PENDING, State.SENT)

_REPLY_EVENT = {
    Outcome.APPROVED: Event.REPLY_APPROVED,
    Outcome.DECLINED: Event.REPLY_DECLINED,
    Outcome.CANCELED: Event.REPLY_CANCELED,
    Outcome.AMOUNT_MISMATCH: Event.REPLY_MISMATCH,
}
_PROOF_EVENT = {
    Verdict.APPROVED: Event.PROVEN_APPROVED,
    Verdict.MISMATCH: Event.PROVEN_MISMATCH,
    Verdict.NOT_APPROVED: Event.PROVEN_NOT_APPROVED,
}


class Progress:
    """How far one exchange got: the transport ticks ``sent`` before the first byte.

    Every transport must (``ecrlink.transports.base``): an exchange that failed
    before it is a request that provably never reached the terminal.
    """

    __slots__ = ("_clock", "sent_at")

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock
        self.sent_at: datetime | None = None

    @property
    def sent(self) -> bool:
        """True once the request's first byte was about to leave."""
        return self.sent_at is not None

    def mark_sent(self) -> None:
        """Called by the transport just before the request's first byte leaves."""
        self.sent_at = self._clock()


@dataclass(frozen=True, slots=True)
class Exchange:
    """Effect: send ``line``, give back the raw reply (or throw the transport's error)."""

    line: str
    timeout: float
    progress: Progress


@dataclass(frozen=True, slots=True)
class Pause:
    """Effect: wait ``seconds``."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Store(Generic[T]):
    """Effect: ``call(journal)``, give back what it returns."""

    call: Callable[[Journal], T]


@dataclass(frozen=True, slots=True)
class Recovered:
    """Effect: hand the caller the results of earlier open payments settled first."""

    results: list[Result]


Effect = Exchange | Pause | Store[Any] | Recovered
Flow = Generator[Effect, Any, T]


@dataclass(frozen=True, slots=True)
class Settings:
    """What the flows need to know about the client (validated by the client)."""

    terminal: str
    """The journal's and the lock's name for the terminal."""
    timeout: float
    status_timeout: float
    recovery_timeout: float
    journaled: bool
    connect_timeout: float = 0.0
    duplicate_window: float | None = None
    """Seconds a paid invoice blocks a new sale for it; None: the business day."""


class Flows:
    """The flows of one terminal client. ``new_last`` builds a fresh ``last trans``."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], datetime],
        new_last: Callable[[], LastTrans],
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._new_last = new_last

    # --- entry points ----------------------------------------------------------------

    def send(
        self, request: Request, force: bool = False, allow_duplicate: bool = False
    ) -> Flow[Result]:
        """Under the lock: recover crash leftovers, apply the guards, exchange."""
        open_ = yield from self._orphans()
        if open_:
            # The cashier learns what became of them before a new payment starts.
            recovered = yield from self._resolve_all(patient=False)
            if recovered:
                yield Recovered(recovered)
            open_ = yield from self._orphans()
        if isinstance(request, Sale) and open_ and not force:
            ids = tuple(e.id for e in open_)
            raise InDoubtPending(
                f"{self.settings.terminal}: payment(s) {', '.join(map(str, ids))} still in "
                "doubt; look at the terminal's receipts and resolve them (ecrlink journal "
                "resolve) before a new sale, or pass force=True",
                ids,
            )
        if isinstance(request, Sale) and request.invoice and not allow_duplicate:
            yield from self._refuse_paid_invoice(request.invoice)
        mark: tuple[Mark | None, datetime | None] = (None, None)
        if isinstance(request, Sale | Void) and self.settings.journaled:
            mark = yield from self._mark_before()
        return (yield from self._exchange(request, *mark))

    def recover(self) -> Flow[list[Result]]:
        """Under the lock: crash leftovers become in doubt, then all are resolved."""
        yield from self._orphans()
        return (yield from self._resolve_all(patient=True))

    def _refuse_paid_invoice(self, invoice: str) -> Flow[None]:
        """``DuplicateInvoice`` if the journal shows ``invoice`` approved in the window."""
        now = self._clock()
        window = self.settings.duplicate_window
        if window is None:  # since midnight, Vietnam time: the shop's business day
            since = now.astimezone(VIETNAM_TIME).replace(hour=0, minute=0, second=0,
                                                         microsecond=0)
        else:
            since = now - timedelta(seconds=window)
        paid = yield from self._store(lambda j: j.paid_invoice(invoice, since), None)
        if paid is not None:
            raise DuplicateInvoice(
                f"invoice {invoice} was already paid: journal entry {paid.id}, "
                f"{paid.charged_amount or paid.amount} VND on {paid.terminal}, receipt "
                f"{paid.receipt_no or '?'}, {paid.created_at.astimezone(VIETNAM_TIME):%H:%M}; "
                "pass allow_duplicate=True (--allow-duplicate) to charge it again",
                paid.id,
            )

    # --- journal access ----------------------------------------------------------------

    def _store(self, call: Callable[[Journal], T], default: T) -> Flow[T]:
        if not self.settings.journaled:
            return default
        done: T = yield Store(call)
        return done

    def _orphans(self) -> Flow[list[Entry]]:
        """Crash leftovers become in doubt; return the sales and voids still open.

        Open entries of a twin (the same device under another name) count for the
        guard, but only this name's lock holder may call them leftovers. One indexed
        query in the common case (nothing open): this runs before every command.
        """
        terminal = self.settings.terminal
        none: list[Entry] = []
        open_ = yield from self._store(lambda j: j.open_entries(terminal), none)
        if any(e.terminal == terminal and e.state in _LEFTOVERS for e in open_):
            yield from self._store(lambda j: j.orphans_to_in_doubt(terminal), 0)
            open_ = yield from self._store(lambda j: j.open_entries(terminal), none)
        return [e for e in open_ if e.command in ("sale", "void")]

    # --- the high-water mark -------------------------------------------------------------

    def _mark_before(self) -> Flow[tuple[Mark | None, datetime | None]]:
        """The terminal's latest successful transaction, from the journal or asked."""
        terminal = self.settings.terminal
        profile: TerminalProfile = yield from self._store(
            lambda j: j.profile(terminal), TerminalProfile(terminal)
        )
        now = self._clock()
        if profile.mark_valid and profile.mark_at and now - profile.mark_at <= MARK_MAX_AGE:
            return Mark.from_json(profile.mark), profile.mark_at
        last = yield from self._ask_last()
        if last is None:
            log.info("%s: last trans before sending got no answer; sending without a "
                     "high-water mark", terminal)
            return None, None
        return Mark.from_last_trans(last), self._clock()

    # --- one exchange ---------------------------------------------------------------

    def _exchange(
        self, request: Request, mark: Mark | None = None, mark_at: datetime | None = None
    ) -> Flow[Result]:
        settings = self.settings
        timeout = self._timeout_for(request)
        sent_at = self._clock()
        # Written down before sending: the latest the terminal can still be in this
        # transaction, as a process that recovers after a crash must assume it (the
        # reply's own deadline starts once the connection is up).
        deadline = sent_at + timedelta(seconds=settings.connect_timeout + timeout)
        if wire_log.isEnabledFor(logging.DEBUG):
            wire_log.debug(">>> %s", request.line())
        entry_id: int | None = yield from self._store(
            lambda j: j.begin(
                settings.terminal, request, mark=mark.to_json() if mark else None,
                mark_at=mark_at, deadline=deadline,
            ),
            None,
        )
        progress = Progress(self._clock)
        try:
            raw = yield Exchange(request.line(), timeout, progress)
            result = self._interpret(request, raw)
        except BaseException as exc:
            event, note = self._failure(request, exc, progress)
            events = (Event.SENT, event) if progress.sent else (event,)
            yield from self._record(entry_id, *events, note=note)
            if event is not Event.LOST or not isinstance(request, Sale | Void):
                raise
            if not isinstance(exc, EcrError):
                raise  # Ctrl-C or cancelled: stays in doubt for the next recovery
            attempt = Attempt(
                request_id=request.request_id, command=request.command.value,
                amount=request.amount if isinstance(request, Sale) else None,
                sent_at=sent_at, mark=mark, mark_at=mark_at,
                # In this process the moment the request left is known exactly.
                deadline=(progress.sent_at or sent_at) + timedelta(seconds=timeout),
                **(yield from self._learned()),
            )
            bound = self._clock() + timedelta(seconds=settings.recovery_timeout)
            return (yield from self._settle(attempt, entry_id, note, bound))
        learned = self._learn_from_reply(request, result, mark, mark_at)
        yield from self._record_answer(
            entry_id, result, Event.SENT, _REPLY_EVENT[result.outcome], result=result,
            by=ResolvedBy.REPLY, charged_amount=_charged(result), learned=learned,
            # The answer to a sale or void can be asked for again (last trans): its
            # commit need not wait for the disk. See ecrlink.journal.store.
            fsync=not isinstance(request, Sale | Void),
        )
        return result

    def _timeout_for(self, request: Request) -> float:
        # last trans is answered from the terminal's memory; no customer in the loop.
        s = self.settings
        return s.status_timeout if isinstance(request, LastTrans) else s.timeout

    def _interpret(self, request: Request, raw: bytes) -> Result:
        if wire_log.isEnabledFor(logging.DEBUG):
            wire_log.debug("<<< %s", mask_card_numbers(raw)[0].decode("utf-8", "replace"))
        result = check_answers(parse_reply(raw), request)
        t = result.transaction
        if t is not None and t.card_no_was_unmasked:
            log.warning("terminal %s sent a full card number; it was masked before being "
                        "kept, logged or stored", self.settings.terminal)
        if result.outcome is Outcome.AMOUNT_MISMATCH:
            log.error("%s: %s", self.settings.terminal, result.detail)
        return result

    @staticmethod
    def _failure(request: Request, exc: BaseException, progress: Progress) -> tuple[Event, str]:
        """What a failed exchange means for the command, and the note to keep."""
        if isinstance(exc, _NOT_SENT) or not progress.sent:
            return Event.NOT_SENT, f"not sent: {_said(exc)}"
        if isinstance(exc, TerminalBusy | NotTerminalReply):
            return Event.REFUSED, f"refused: {_said(exc)}"
        if isinstance(request, LastTrans):
            return Event.QUERY_FAILED, _said(exc)
        return Event.LOST, _said(exc)

    def _learn_from_reply(
        self, request: Request, result: Result, mark: Mark | None, mark_at: datetime | None
    ) -> dict[str, Any]:
        """What a reply teaches about the terminal (stored in the same commit)."""
        t = result.transaction
        now = self._clock()
        learned: dict[str, Any] = {}
        if t is not None:
            learned.update({k: v for k, v in (("tid", t.tid), ("pos_serial", t.pos_serial))
                            if v is not None})
        if isinstance(request, LastTrans):
            seen = Mark.from_last_trans(result)
            if seen is not None:
                learned.update(mark=seen.to_json(), mark_at=now, mark_valid=1)
        elif isinstance(request, Settle):
            pass  # what last trans shows after a settlement is not documented
        elif t is not None and result.outcome in (Outcome.APPROVED, Outcome.AMOUNT_MISMATCH):
            learned.update(mark=Mark.of(t).to_json(), mark_at=now, mark_valid=1,
                           echoes=int(t.request_id is not None))
            if t.time is not None:
                learned["clock_offset"] = (t.time - now).total_seconds()
        elif mark is not None:
            # Declined or canceled: the latest *successful* transaction did not change.
            learned.update(mark=mark.to_json(), mark_at=mark_at or now, mark_valid=1)
        return learned

    def _learned(self) -> Flow[dict[str, Any]]:
        terminal = self.settings.terminal
        profile: TerminalProfile = yield from self._store(
            lambda j: j.profile(terminal), TerminalProfile(terminal)
        )
        return {"clock_offset": profile.clock_offset, "echoes": profile.echoes}

    def _record(self, entry_id: int | None, *events: Event, **details: Any) -> Flow[None]:
        if entry_id is not None:
            yield from self._store(lambda j: j.record(entry_id, *events, **details), None)

    def _record_answer(
        self, entry_id: int | None, answer: Result, *events: Event, **details: Any
    ) -> Flow[None]:
        """Record what the terminal answered; if the journal cannot, still give it back.

        The terminal's answer is never hidden behind a journal error (the cashier
        would charge again): ``answer.unrecorded`` says why, the pending entry stays,
        and the next recovery settles it with ``last trans``.
        """
        answer.journal_id = entry_id
        try:
            yield from self._record(entry_id, *events, **details)
        except JournalError as exc:
            answer.unrecorded = str(exc)
            log.error("%s: the terminal answered %s (request %s) but the journal could not "
                      "record it: %s", self.settings.terminal, answer.outcome.value,
                      answer.request_id, exc)

    # --- recovery ----------------------------------------------------------------------

    def _ask_last(self) -> Flow[Result | None]:
        """``last trans`` before sending a sale or void.

        A busy terminal raises ``TerminalBusy`` (the sale would be refused too, and
        nothing was written or sent); any other failure gives up at once: the sale then
        goes without a high-water mark (its recovery can prove less) rather than keep
        the customer waiting.
        """
        request = self._new_last()
        try:
            raw = yield Exchange(
                request.line(), self.settings.status_timeout, Progress(self._clock)
            )
            return self._interpret(request, raw)
        except (TransportError, RemoteProtocolError) as exc:
            log.info("%s: last trans before sending not answered (%s)",
                     self.settings.terminal, exc)
            return None

    def _settle(
        self, attempt: Attempt, entry_id: int | None, why: str, until: datetime,
        *, patient: bool = True,
    ) -> Flow[Result]:
        """Ask ``last trans`` until it proves what became of ``attempt``, or ``until``.

        The terminal is known to be out of our transaction once it answered busy and
        then answered, or once the attempt's deadline has passed; before that an
        unchanged high-water mark proves nothing, and a ``patient`` caller asks again.
        """
        busy_seen = finished = False
        judgement = Judgement(Verdict.UNKNOWN, "last trans got no answer")
        delay = 0.1
        while True:
            request = self._new_last()
            remaining = (until - self._clock()).total_seconds()
            try:
                raw = yield Exchange(
                    request.line(), max(0.05, min(self.settings.status_timeout, remaining)),
                    Progress(self._clock),
                )
                last = self._interpret(request, raw)
            except TerminalBusy as exc:
                busy_seen = True
                log.info("%s: terminal still busy (%s)", self.settings.terminal, exc)
            except (TransportError, RemoteProtocolError) as exc:
                log.info("%s: last trans not answered (%s)", self.settings.terminal, exc)
            else:
                finished = finished or busy_seen
                idle = finished or self._clock() >= attempt.deadline
                judgement = judge(attempt, last, idle=idle)
                if judgement.verdict is not Verdict.UNKNOWN:
                    return (yield from self._proven(attempt, entry_id, why, last, judgement))
                if not (judgement.retry and patient):
                    break
            if (until - self._clock()).total_seconds() <= delay:
                break
            yield Pause(delay)
            delay = min(delay * 2, 2.0)
        detail = f"{why}; {judgement.reason}"
        log.warning("%s: payment %s is in doubt: %s", self.settings.terminal,
                    attempt.request_id, detail)
        return Result(
            command=attempt.command, status=None, outcome=Outcome.UNKNOWN,
            request_id=attempt.request_id, detail=detail, journal_id=entry_id,
        )

    def _proven(
        self, attempt: Attempt, entry_id: int | None, why: str, last: Result,
        judgement: Judgement,
    ) -> Flow[Result]:
        """Record what ``last trans`` proved and build the caller's result."""
        detail = f"{why}; {judgement.reason}"
        seen = Mark.from_last_trans(last)
        learned = {"mark": seen.to_json(), "mark_at": self._clock(), "mark_valid": 1} \
            if seen is not None else None
        verdict = judgement.verdict
        t = last.transaction
        charged = t.amount if t is not None and verdict is not Verdict.NOT_APPROVED else None
        if verdict is Verdict.NOT_APPROVED:
            # No reply of its own: status None says the terminal never answered this request.
            result = Result(
                command=attempt.command, status=None, outcome=Outcome.DECLINED,
                request_id=attempt.request_id, detail=detail,
            )
        else:
            result = replace(
                last, command=attempt.command, request_id=attempt.request_id, detail=detail,
                outcome=Outcome.APPROVED if verdict is Verdict.APPROVED
                else Outcome.AMOUNT_MISMATCH,
            )
        yield from self._record_answer(
            entry_id, result, _PROOF_EVENT[verdict],
            result=last if charged is not None else None, by=ResolvedBy.LAST_TRANS,
            note=detail, charged_amount=charged, learned=learned,
        )
        return result

    def _resolve_all(self, *, patient: bool) -> Flow[list[Result]]:
        """Ask ``last trans`` about every unresolved payment on this terminal."""
        terminal = self.settings.terminal
        none: list[Entry] = []
        entries = yield from self._store(lambda j: j.unresolved(terminal), none)
        learned = yield from self._learned()
        wait = self.settings.recovery_timeout if patient else self.settings.status_timeout
        results: list[Result] = []
        for entry in entries:
            attempt = Attempt(
                request_id=entry.request_id, command=entry.command, amount=entry.amount,
                sent_at=entry.created_at,
                deadline=entry.deadline or entry.created_at + timedelta(
                    seconds=self.settings.connect_timeout + self.settings.timeout),
                mark=Mark.from_json(entry.mark_before), mark_at=entry.mark_at, **learned,
            )
            until = self._clock() + timedelta(seconds=wait)
            result = yield from self._settle(
                attempt, entry.id, entry.note or "in doubt", until, patient=patient
            )
            results.append(replace(result, client_id=result.client_id or entry.client_id))
        return results


def _charged(result: Result) -> int | None:
    t = result.transaction
    if t is None or result.outcome not in (Outcome.APPROVED, Outcome.AMOUNT_MISMATCH):
        return None
    return t.amount


def _said(exc: BaseException) -> str:
    text = str(exc)
    return text if isinstance(exc, EcrError) and text else f"interrupted ({type(exc).__name__})"
