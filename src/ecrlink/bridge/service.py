"""The bridge's behaviour, without HTTP: payments, idempotency, states, events.

``Bridge`` owns the journal, the bridge's tables and one :class:`TerminalWorker` per
configured terminal. The routes in ``app`` only read requests and write answers.

Nothing is sent before it is written down: a POST checks its input, then writes the
payment row (fsync) with the ``request_id`` its command will carry, then starts the
command, whose flow writes the journal entry before the first byte leaves. A
command refused before its journal entry (``in_doubt``, ``terminal_busy``,
``duplicate_invoice``) removes its row again: nothing happened, and the key may be
used again. After a crash, :meth:`Bridge.start` settles every row still
``processing``: no journal entry means it never left (``failed``); an entry means
it may have, so it shows ``in_doubt`` while ``Terminal.recover()`` asks the terminal.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .._exceptions import (
    DuplicateInvoice,
    EcrError,
    InDoubtPending,
    JournalError,
    TerminalBusy,
)
from ..journal import Entry, Journal, ResolvedBy, State, default_data_dir, is_database_url
from ..protocol import VIETNAM_TIME, Outcome, Request, Result, Sale, Settle, Void, parse_reply
from .config import ServeConfig
from .errors import ApiError
from .events import Hub
from .model import FINAL, journal_state, new_payment_id, payment_json
from .runner import Admissions, TerminalWorker
from .shipping import HeadOffice, disabled_status
from .store import BridgeStore, EventRow, IdempotencyClash, PaymentRow

__all__ = ["Bridge", "TerminalSpec", "body_hash"]

log = logging.getLogger("ecrlink.bridge")

_REFUSALS = (InDoubtPending, DuplicateInvoice, TerminalBusy)


def body_hash(route: str, body: Any) -> str:
    """The canonical hash an ``Idempotency-Key`` is bound to: route and JSON body."""
    canonical = json.dumps([route, body], sort_keys=True, separators=(",", ":"),
                           ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


class TerminalSpec:
    """A configured terminal: its name and how to build its client."""

    def __init__(self, name: str, url: str, make: Callable[[Journal], Any]) -> None:
        self.name = name
        self.url = url
        self.make = make


class Bridge:
    """Payments through the configured terminals, with their state, events and keys."""

    def __init__(
        self, config: ServeConfig, journal: str | Path, terminals: list[TerminalSpec],
        *, request_ids: Callable[[], str], head_office: HeadOffice | None = None,
        data_dir: Path | None = None,
    ) -> None:
        """Serve ``terminals`` on the journal named ``journal`` (a SQLite file or a
        ``postgresql://`` URL); ``head_office``: ship the journal file there meanwhile."""
        self.config = config
        outbox = config.webhook_url is not None
        self.journal: Journal
        self.on_database = is_database_url(str(journal))
        """Whether the journal is a PostgreSQL database (not a file)."""
        if self.on_database:
            from ..journal.pg import PgJournal

            # The terminals' locks are the database's (advisory locks): registers and
            # other bridges on any PC of the shop exclude this one. The bridge's own
            # tables stay on this PC, in a file of their own.
            self.journal = PgJournal(str(journal), data_dir=data_dir)
            store_file = config.bridge_file or (data_dir or default_data_dir()) / "bridge.sqlite3"
            store_lock = None
        else:
            self.journal = Journal(Path(journal))
            store_file, store_lock = Path(journal), self.journal.lock
        try:
            self.store = BridgeStore(store_file, outbox=outbox, lock=store_lock)
        except BaseException:
            self.journal.close()
            raise
        self.head_office = head_office
        self.hub = Hub(self.store)
        self.request_ids = request_ids
        self.urls = {spec.name: spec.url for spec in terminals}
        admissions = Admissions(self.journal)
        self.workers = {
            spec.name: TerminalWorker(spec.name, spec.make(self.journal), admissions)
            for spec in terminals
        }
        self._terminal_states: dict[str, dict[str, Any]] = {}
        self.states: dict[str, str] = {}
        """The payments still processing (id -> state), for the long-poll's check at each
        event without a store read."""
        self.latest: dict[str, PaymentRow] = {}
        """The latest rows written (at most 256), so the long-poll answers from memory."""
        self.linked: set[str] = set()
        """Payments whose journal entry is known (admitted)."""
        self._background: set[asyncio.Task[Any]] = set()
        self._dirty: set[str] = set()
        self._checker: asyncio.Task[None] | None = None
        self._stopping = False

    # --- life -------------------------------------------------------------------------

    async def start(self) -> None:
        """Settle what a crash left, then recover each terminal in the background."""
        self.hub.start_at(await asyncio.to_thread(self.store.last_event_id))
        for row in await asyncio.to_thread(self.store.payments_in, ["processing"]):
            link = await asyncio.to_thread(self.journal.find_request, row.request_id)
            if link is None:
                await self._update(row, state="failed", detail="the bridge stopped before "
                                   "sending it; nothing was charged")
            else:  # pending or sent in the journal: in doubt until recovered
                await self._sync(row, None)
        for name, worker in self.workers.items():
            leftovers = await asyncio.to_thread(self.journal.open_entries,
                                                worker.terminal.terminal)
            if leftovers:
                worker.claim_for_recovery()  # now: no payment may start before it
                self._spawn(self._recover(name, worker))
        self._spawn(self._sync_loop())
        await self._terminals_changed()
        if self.head_office is not None:
            self.head_office.start()

    async def stop(self) -> None:
        """Let payments finish for the grace time, then stop everything."""
        for task in self._background:
            task.cancel()
        await asyncio.gather(*(w.stop(self.config.tuning.shutdown_grace)
                               for w in self.workers.values()), return_exceptions=True)
        # What the stopped commands wrote is recorded; then no more terminal checks,
        # and the last one finishes before the database closes (its SQLite call runs
        # in a thread that a cancellation would not stop).
        self._stopping = True
        pending = [t for t in (*self._background, self._checker) if t is not None]
        if pending:
            await asyncio.wait(pending, timeout=5)
        if self.head_office is not None:
            await asyncio.to_thread(self.head_office.stop)
        self.store.close()
        self.journal.close()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _recover(self, name: str, worker: TerminalWorker) -> None:
        await self._terminals_changed(name)
        try:
            results = await worker.recover()
        except EcrError as exc:
            log.warning("bridge: recovery on %s: %s", name, exc)
            results = []
        except Exception:
            log.exception("bridge: recovery on %s failed", name)
            results = []
        for result in results:
            row = await asyncio.to_thread(self.store.payment_by_request, result.request_id or "")
            if row is not None:
                await self._sync(row, result)
        await self._sync_open(name)
        await self._terminals_changed(name)

    async def _sync_loop(self) -> None:
        """What others settle in the journal (``ecrlink journal resolve``, reconciliation)
        shows up here within ``sync_interval``."""
        while True:
            await asyncio.sleep(self.config.tuning.sync_interval)
            try:
                await self._sync_open(None)
                await self._terminals_changed()
                cutoff = time.time() - self.config.tuning.event_retention_hours * 3600
                await asyncio.to_thread(self.store.prune_events, cutoff)
            except Exception:
                log.exception("bridge: journal sync failed")

    async def _sync_open(self, terminal: str | None) -> None:
        rows = await asyncio.to_thread(self.store.payments_in, ["in_doubt", "processing"])
        for row in rows:
            if terminal is not None and row.terminal != terminal:
                continue
            worker = self.workers.get(row.terminal)
            if row.state == "processing" and worker is not None and worker.current == row.id:
                continue  # its own command will say how it ended
            await self._sync(row, None)

    # --- state ------------------------------------------------------------------------

    def event_data(self, row: PaymentRow) -> dict[str, Any]:
        """What a stored ``payment.updated`` holds: the payment in both languages (each
        listener gets its key's)."""
        return {"vi": payment_json(row, "vi"), "en": payment_json(row, "en")}

    def webhook_data(self, event: EventRow) -> dict[str, Any]:
        """An event's ``data`` for the webhook: texts in the bridge's language."""
        if event.type == "payment.updated":
            picked: dict[str, Any] = event.data.get(self.config.lang) or event.data
            return picked
        return event.data

    async def refresh(self, row: PaymentRow) -> PaymentRow:
        """``row`` as the journal has it now (an in-doubt one may have been resolved)."""
        return await self._sync(row, None)

    async def refresh_open(self) -> None:
        """Bring every open payment in line with the journal now."""
        await self._sync_open(None)
        await self._terminals_changed()

    async def admitted(self, row: PaymentRow) -> PaymentRow:
        """A payment found by its key, once its command has been written down or has
        ended (a repeat that arrives during the guards waits for them)."""
        if row.journal_id is None and row.state == "processing":
            worker = self.workers.get(row.terminal)
            if worker is not None and worker.current == row.id:
                await self.hub.wait_for(
                    lambda: worker.current != row.id or row.id in self.linked, 35.0)
        return await asyncio.to_thread(self.store.payment, row.id) or row

    async def _update(self, row: PaymentRow, **changes: Any) -> PaymentRow:
        new, event = await asyncio.to_thread(
            lambda: self.store.update_payment(row.id, event=self.event_data, **changes)
        )
        return self._changed(new, event)

    def _changed(self, new: PaymentRow, event: EventRow | None) -> PaymentRow:
        """Remember ``new`` (for the long-poll) and wake the listeners (event loop)."""
        # Only what is still processing, and the latest rows, stay in memory.
        self.latest.pop(new.id, None)  # re-inserted: the newest last
        self.latest[new.id] = new
        if len(self.latest) > 256:
            self.latest.pop(next(iter(self.latest)))
        if new.state == "processing":
            self.states[new.id] = new.state
            if new.journal_id is not None:
                self.linked.add(new.id)
        else:
            self.states.pop(new.id, None)
            self.linked.discard(new.id)
        if event is not None:
            self.hub.notify(event)
        return new

    def _running(self, row: PaymentRow) -> bool:
        worker = self.workers.get(row.terminal)
        return worker is not None and worker.current == row.id

    def _sync_blocking(
        self, payment_id: str, result: Result | None, running: bool,
        failure: BaseException | None = None, refused: bool = False,
    ) -> tuple[PaymentRow, EventRow | None] | None:
        """In a worker thread: the payment brought in line with its journal entry (and
        ``result``), in one visit to SQLite. None if there is nothing to change."""
        row = self.store.payment(payment_id)
        if row is None:
            return None
        link = self.journal.find_request(row.request_id)
        changes: dict[str, Any] = {}
        if failure is not None and result is None:
            changes["detail"] = _said(failure)
        if link is None:
            if running or refused:
                return None  # still before its journal entry, or the POST forgets it
            if row.state == "processing" and failure is not None:
                changes["state"] = "failed"
            if not changes:
                return None
            return self.store.update_payment(row.id, event=self.event_data, **changes)
        entry_id, jstate = link
        state = journal_state(jstate.value)
        if state == "processing" and not running:
            state = "in_doubt"
        entry = None
        if state in FINAL and result is None and row.result is None \
                and row.state in ("processing", "in_doubt"):
            if running:
                # Its worker stores the terminal's result with the final state, in one
                # write: the journal's state alone would show a result-less final.
                state = row.state
            else:  # nobody owns it (a restart, a recovery): the journal says it all
                entry = self.journal.get(entry_id)
                result = entry_result(entry)
        changes.update(journal_id=entry_id, state=state)
        if result is not None:
            changes["result"] = _results(result)
            if result.detail:
                changes["detail"] = result.detail
        if row.command == "sale" and state in FINAL:
            entry = entry or self.journal.get(entry_id)
            if entry.receipt_no:
                changes["receipt_no"] = entry.receipt_no
        return self.store.update_payment(row.id, event=self.event_data, **changes)

    async def _sync(self, row: PaymentRow, result: Result | None) -> PaymentRow:
        """Bring ``row`` in line with its journal entry (and ``result``, if known)."""
        done = await asyncio.to_thread(self._sync_blocking, row.id, result, self._running(row))
        return self._changed(*done) if done is not None else row

    async def _finish(
        self, payment_id: str, terminal: str, request: Request, result: Result | None,
        error: BaseException | None,
    ) -> None:
        done = await asyncio.to_thread(
            self._sync_blocking, payment_id, result, False, error,
            isinstance(error, _REFUSALS),
        )
        if done is not None:
            self._changed(*done)
        await self._terminals_changed(terminal)

    # --- terminals --------------------------------------------------------------------

    def worker(self, name: str) -> TerminalWorker:
        """The worker of a configured terminal; 404 if there is none."""
        try:
            return self.workers[name]
        except KeyError:
            raise ApiError(404, "not_found", f"no terminal named {name!r} (configured: "
                           f"{', '.join(sorted(self.workers)) or 'none'})",
                           field="name") from None

    def terminal_json(self, name: str) -> dict[str, Any]:
        """One terminal as ``GET /v1/terminals`` shows it."""
        worker = self.workers[name]
        if worker.busy:
            state = "busy"
        elif self.journal.unresolved(worker.terminal.terminal):
            state = "in_doubt"
        elif worker.unreachable:
            state = "unreachable"
        else:
            state = "idle"
        profile = self.journal.profile(worker.terminal.terminal)
        return {
            "name": name,
            "url": self.urls[name],
            "state": state,
            "tid": profile.tid,
            "last_seen": worker.last_seen.astimezone(VIETNAM_TIME).isoformat(timespec="seconds")
            if worker.last_seen else None,
        }

    async def _terminals_changed(self, *names: str) -> None:
        """Have the terminals of ``names`` (or all) checked for a change of state; a
        ``terminal.updated`` is stored for each that changed.

        Requests are coalesced into one background checker, so a busy shop never
        builds a queue of checks (one check of a terminal covers every request that
        came while it ran), and nobody waits for it.
        """
        if self._stopping:
            return
        self._dirty.update(names or self.workers)
        if self._checker is None or self._checker.done():
            self._checker = asyncio.create_task(self._check_terminals())

    def _terminal_jsons(self, names: list[str]) -> list[tuple[str, dict[str, Any]]]:
        return [(name, self.terminal_json(name)) for name in names]

    async def _check_terminals(self) -> None:
        while self._dirty:
            names = sorted(self._dirty)
            self._dirty.clear()
            try:
                current = await asyncio.to_thread(self._terminal_jsons, names)
                changed = [(n, data) for n, data in current
                           if self._terminal_states.get(n) != data]
                for name, data in changed:
                    self._terminal_states[name] = data
                if changed:
                    events = await asyncio.to_thread(
                        self.store.add_events, "terminal.updated", [d for _, d in changed])
                    self.hub.notify(*events)
            except Exception:
                log.exception("bridge: checking the terminals failed")

    # --- commands ---------------------------------------------------------------------

    async def existing(self, key: str, digest: str) -> PaymentRow | None:
        """The payment already made with ``key``: None if there is none; 409 if it was
        made with another body or route."""
        row = await asyncio.to_thread(self.store.payment_by_key, key)
        if row is None:
            return None
        if row.idem_hash != digest:
            raise ApiError(409, "idempotency_conflict", f"Idempotency-Key {key!r} was used "
                           f"for another request (payment {row.id}); use a new key for a new "
                           "payment", field="Idempotency-Key", extra={"payment": row.id})
        return row

    def check_free(self, name: str) -> TerminalWorker:
        """The terminal's worker; 409 ``terminal_busy`` if a command runs on it."""
        worker = self.worker(name)
        if worker.busy:
            extra: dict[str, Any] = {"payments": [worker.current] if worker.current else []}
            what = f"payment {worker.current} is" if worker.current else (
                "the start-up recovery is" if worker.recovering else "a command is")
            raise ApiError(409, "terminal_busy", f"terminal {name}: {what} processing; try "
                           "again when it has ended", extra=extra)
        return worker

    async def submit(
        self, name: str, request: Request, *, key: str, digest: str, key_name: str | None,
        allow_duplicate: bool = False,
    ) -> tuple[PaymentRow, bool]:
        """Write the payment down, start its command, return it once admitted.

        Returns (payment, created): ``created`` False when ``key`` already named this
        very request (nothing is sent again).
        """
        worker = self.worker(name)
        if worker.busy:  # most likely a repeat of the payment in progress
            existing = await self.existing(key, digest)
            if existing is not None:
                return existing, False
        worker = self.check_free(name)
        now = _now()
        row = PaymentRow(
            seq=0, id=new_payment_id(), terminal=name, command=request.command.value,
            amount=request.amount if isinstance(request, Sale) else None,
            invoice=(request.invoice or None) if isinstance(request, Sale) else None,
            reference=(request.reference or None) if isinstance(request, Sale) else None,
            receipt_no=request.receipt_no if isinstance(request, Void) else None,
            state="processing", result=None, detail=None, request_id=request.request_id,
            journal_id=None, idem_key=key, idem_hash=digest, key_name=key_name,
            created_at=now, updated_at=now,
        )
        worker.claim(row.id)  # no await since check_free: nobody else has it
        try:
            await asyncio.to_thread(self.store.insert_payment, row)
        except BaseException as exc:
            worker.release()
            if isinstance(exc, IdempotencyClash):
                if exc.row.idem_hash != digest:
                    raise await self._conflict(key, exc.row) from None
                return exc.row, False
            raise
        self.states[row.id] = "processing"
        admission = await worker.start(
            row.id, request, lambda r, res, err: self._finish(row.id, name, r, res, err),
            allow_duplicate=allow_duplicate,
        )
        if admission.entry_id is None and isinstance(admission.error, _REFUSALS):
            await asyncio.to_thread(self.store.delete_payment, row.id)
            self.states.pop(row.id, None)
            raise await self._refusal(name, admission.error)
        if admission.entry_id is not None:
            # Written down in the journal (found by request_id from now on): answer at
            # once; the link, the "processing" event and the terminal's "busy" are stored
            # off the answer's path.
            stored = replace(row, journal_id=admission.entry_id)
            self.linked.add(row.id)
            self._spawn(self._admitted(stored))
        else:
            found = await asyncio.to_thread(self.store.payment, row.id)
            stored = found or row
        if admission.error is not None and isinstance(admission.error, JournalError) \
                and admission.entry_id is None:
            raise ApiError(503, "journal_error", f"the journal could not record the payment, "
                           f"nothing was sent: {admission.error}")
        return stored, True

    async def _admitted(self, row: PaymentRow) -> None:
        await self._update(row, journal_id=row.journal_id)
        await self._terminals_changed(row.terminal)

    async def _conflict(self, key: str, row: PaymentRow) -> ApiError:
        return ApiError(409, "idempotency_conflict", f"Idempotency-Key {key!r} was used for "
                        f"another request (payment {row.id}); use a new key for a new payment",
                        field="Idempotency-Key", extra={"payment": row.id})

    async def _refusal(self, name: str, error: BaseException) -> ApiError:
        if isinstance(error, InDoubtPending):
            rows = await asyncio.to_thread(self.store.payments_by_journal, error.journal_ids)
            ids = [r.id for r in rows]
            named = ", ".join(ids) if ids else "journal entr" + (
                "y " if len(error.journal_ids) == 1 else "ies ") + ", ".join(
                    map(str, error.journal_ids))
            return ApiError(409, "in_doubt", f"terminal {name}: {named} still in doubt; "
                            "a manager must resolve it before a new sale (do not charge "
                            "again)", extra={"payments": ids,
                                             "journal_ids": list(error.journal_ids)})
        if isinstance(error, DuplicateInvoice):
            rows = await asyncio.to_thread(self.store.payments_by_journal, [error.journal_id])
            return ApiError(409, "duplicate_invoice", str(error).replace(
                "pass allow_duplicate=True (--allow-duplicate)", "send \"allow_duplicate\": "
                "true"), field="invoice", extra={"payments": [r.id for r in rows],
                                                 "journal_ids": [error.journal_id]})
        return ApiError(409, "terminal_busy", f"terminal {name}: {error}",
                        extra={"payments": []})

    async def last_transaction(self, name: str) -> Result:
        """``last trans`` on a free terminal."""
        worker = self.check_free(name)
        result: Result = await worker.exclusive(worker.terminal.last_transaction)
        await self._terminals_changed(name)
        return result

    async def resolve(
        self, row: PaymentRow, state: str, receipt: str | None, who: str, note: str | None
    ) -> PaymentRow:
        """A manager's word on an in-doubt payment, recorded in the journal."""
        row = await self._sync(row, None)
        if row.state != "in_doubt" or row.journal_id is None:
            raise ApiError(409, "not_in_doubt", f"payment {row.id} is {row.state}, not in "
                           "doubt: nothing to resolve")
        journal_id = row.journal_id
        try:
            await asyncio.to_thread(
                lambda: self.journal.resolve(
                    journal_id, State(state), by=ResolvedBy.CASHIER, who=who,
                    note=note or "resolved through the bridge", receipt_no=receipt)
            )
        except JournalError as exc:
            raise ApiError(409, "not_in_doubt", str(exc)) from None
        row = await self._sync(row, None)
        await self._terminals_changed(row.terminal)
        return row

    async def wait(self, payment_id: str, seconds: float) -> PaymentRow | None:
        """The payment once it is no longer processing, or after ``seconds``."""
        if payment_id not in self.states:
            row = self.latest.get(payment_id) or await asyncio.to_thread(
                self.store.payment, payment_id)
            if row is None or row.state != "processing":
                return row
            self.states[payment_id] = row.state
        await self.hub.wait_for(lambda: payment_id not in self.states, seconds)
        cached = self.latest.get(payment_id)
        if cached is not None and (cached.state != "processing") == (
                payment_id not in self.states):
            return cached
        return await asyncio.to_thread(self.store.payment, payment_id)

    def sync_status(self) -> dict[str, Any]:
        """What ``GET /v1/sync`` shows: the shipping to head office (blocking: reads
        the journal's latest change number)."""
        if self.head_office is None:
            reason = ("the journal is a database server: head office reads it there"
                      if self.on_database else "no site and [central] url in the config file")
            return disabled_status(reason)
        try:
            latest: int | None = self.journal.last_change()
        except JournalError:
            latest = None
        return self.head_office.status(latest)

    def settings(self) -> Mapping[str, Any]:
        """What ``/v1/health`` may say about the bridge."""
        return {"terminals": sorted(self.workers)}


def entry_result(entry: Entry) -> Result | None:
    """The result of a settled journal entry as the journal has it (its stored reply,
    masked, and its state), for a payment whose command's own result was lost (the
    bridge restarted); None for a state without a terminal outcome (``failed``)."""
    try:
        outcome = Outcome(entry.state.value)
    except ValueError:
        return None
    base = Result(command=entry.command, status=None, outcome=outcome,
                  return_code=entry.return_code, request_id=entry.request_id,
                  client_id=entry.client_id, detail=entry.note, journal_id=entry.id)
    if entry.raw_reply:
        try:
            reply = parse_reply(entry.raw_reply)
        except (EcrError, ValueError):  # a stored reply that no longer parses
            return base
        return replace(reply, command=entry.command, outcome=outcome,
                       request_id=entry.request_id, detail=entry.note, journal_id=entry.id)
    return base


def _results(result: Result) -> dict[str, Any]:
    return {"vi": result.to_dict("vi"), "en": result.to_dict("en")}


def _said(error: BaseException | None) -> str | None:
    if error is None:
        return None
    text = str(error)
    return text if isinstance(error, EcrError) and text else type(error).__name__


def settle_request(request_id: str, client_id: str) -> Settle:
    """The settlement the bridge sends (``settle|YES``)."""
    return Settle(request_id=request_id, client_id=client_id, confirm=True)
