"""The bridge's own tables, in a SQLite file, on a connection of their own.

The journal (``ecrlink.journal``) stays the record of what was sent to a terminal;
these tables hold what only the bridge knows:

- ``bridge_payments``: one row per API payment, written *before* its command starts:
  the payment id, the ``Idempotency-Key`` with a hash of route and body, the
  ``request_id`` that the journal entry will carry, and the state the API shows. After
  a crash, a row whose ``request_id`` has no journal entry provably never left
  (``Journal.find_request``).
- ``bridge_events``: every ``payment.updated`` / ``terminal.updated`` with an
  increasing id (``AUTOINCREMENT``: never reused, even after old events are pruned),
  for Server-Sent Events resume and webhooks.
- ``bridge_outbox``: events not yet delivered to the webhook, in the same commit as
  the event (a crash cannot lose one).

Where they live: with a SQLite journal, in the journal's own file (sharing its lock);
with a PostgreSQL journal, in a local file of their own (``bridge.sqlite3`` in the
data directory, or ``[serve] bridge_file``). The tables are created if missing; the
journal's schema version is not touched. Methods are blocking (SQLite); the app
calls the writers from worker threads.

Durability. In the journal's file (``synchronous=NORMAL``) these commits do not wait
for the disk: they survive a crash of the process at once, and the next fsynced
commit of the same file makes them survive a power cut. For a new payment that
commit comes before anything is sent: the journal writes its command down with an
fsync of the same write-ahead log, which carries the payment row written just before
it. So "nothing is sent before it is written down" holds for the bridge's row too,
at one fsync per payment instead of three. In a file of their own no later fsync
carries them (the journal's is on the database server), so there every commit is
fsynced (``synchronous=FULL``): a payment row reaches the disk before its command
is written down, and a row found after a power cut without a journal entry still
provably never left.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from .._exceptions import JournalError

__all__ = ["BridgeStore", "EventRow", "IdempotencyClash", "PaymentRow"]

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS bridge_payments (
    seq         INTEGER PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    terminal    TEXT NOT NULL,
    command     TEXT NOT NULL,
    amount      INTEGER,
    invoice     TEXT,
    reference   TEXT,
    receipt_no  TEXT,
    state       TEXT NOT NULL,
    result      TEXT,
    detail      TEXT,
    request_id  TEXT NOT NULL UNIQUE,
    journal_id  INTEGER,
    idem_key    TEXT NOT NULL UNIQUE,
    idem_hash   TEXT NOT NULL,
    key_name    TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS bridge_payments_state ON bridge_payments (state);
CREATE INDEX IF NOT EXISTS bridge_payments_terminal ON bridge_payments (terminal, seq);
CREATE INDEX IF NOT EXISTS bridge_payments_invoice ON bridge_payments (invoice);
CREATE INDEX IF NOT EXISTS bridge_payments_created ON bridge_payments (created_at);
CREATE TABLE IF NOT EXISTS bridge_events (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    type     TEXT NOT NULL,
    created  REAL NOT NULL,
    data     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS bridge_events_created ON bridge_events (created);
CREATE TABLE IF NOT EXISTS bridge_outbox (
    event_id  INTEGER PRIMARY KEY,
    attempts  INTEGER NOT NULL DEFAULT 0,
    next_at   REAL NOT NULL,
    last_error TEXT
);
"""

_PAYMENT_COLUMNS = (
    "seq, id, terminal, command, amount, invoice, reference, receipt_no, state, result, "
    "detail, request_id, journal_id, idem_key, idem_hash, key_name, created_at, updated_at"
)


@dataclass(frozen=True, slots=True)
class PaymentRow:
    """One API payment as stored. ``result`` holds ``Result.to_dict`` per language."""

    seq: int
    id: str
    terminal: str
    command: str
    amount: int | None
    invoice: str | None
    reference: str | None
    receipt_no: str | None
    state: str
    result: dict[str, Any] | None
    detail: str | None
    request_id: str
    journal_id: int | None
    idem_key: str
    idem_hash: str
    key_name: str | None
    created_at: str
    updated_at: str


@dataclass(frozen=True, slots=True)
class EventRow:
    """One stored event."""

    id: int
    type: str
    created: float
    data: dict[str, Any]


class IdempotencyClash(Exception):
    """Another payment already holds this ``Idempotency-Key``; ``row`` is that payment."""

    def __init__(self, row: PaymentRow) -> None:
        super().__init__(row.id)
        self.row = row


def _payment(row: tuple[Any, ...]) -> PaymentRow:
    values = list(row)
    values[9] = json.loads(values[9]) if values[9] else None
    return PaymentRow(*values)


class BridgeStore:
    """The bridge's tables in ``path``. Thread-safe.

    ``lock``: the journal's (``Journal.lock``) when ``path`` is the journal's own file,
    whose fsyncs then carry these commits; None: a file of the bridge's own, every
    commit fsynced (see the module docstring).
    """

    def __init__(
        self, path: Path, *, outbox: bool, lock: threading.RLock | None = None
    ) -> None:
        self.path = path
        self.outbox = outbox
        """Whether events also go to the webhook outbox."""
        # Sharing the journal's lock (``lock``) keeps this connection and the journal's
        # from writing at the same moment: SQLite would make one of them sleep.
        self._lock = lock or threading.RLock()
        try:
            if lock is None:
                # Owner-only on POSIX, like the journal: it holds payment records.
                path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
            self._db = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=30
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            # See the module docstring: NORMAL only where the journal's fsync carries it.
            self._db.execute(f"PRAGMA synchronous={'NORMAL' if lock is not None else 'FULL'}")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise JournalError(f"bridge {path}: cannot open the bridge's tables ({exc})") \
                from exc

    @property
    def synchronous(self) -> str:
        """SQLite's ``synchronous`` setting of this connection (``NORMAL`` or ``FULL``)."""
        with self._lock:
            level = int(self._db.execute("PRAGMA synchronous").fetchone()[0])
        return {1: "NORMAL", 2: "FULL"}.get(level, str(level))

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()

    # --- plumbing ---------------------------------------------------------------------

    def _write(self, body: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    done = body(self._db)
                    self._db.execute("COMMIT")
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise JournalError(f"bridge {self.path}: write failed ({exc})") \
                    from exc
            return done

    def _read(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._db.execute(sql, tuple(params)).fetchall()
            except sqlite3.Error as exc:
                raise JournalError(f"bridge {self.path}: read failed ({exc})") \
                    from exc

    @staticmethod
    def _event(
        db: sqlite3.Connection, type_: str, data: dict[str, Any], outbox: bool
    ) -> EventRow:
        now = time.time()
        cursor = db.execute(
            "INSERT INTO bridge_events (type, created, data) VALUES (?, ?, ?)",
            (type_, now, json.dumps(data, ensure_ascii=False, separators=(",", ":"))),
        )
        event_id = cursor.lastrowid
        assert event_id is not None
        if outbox:
            db.execute("INSERT INTO bridge_outbox (event_id, next_at) VALUES (?, ?)",
                       (event_id, now))
        return EventRow(event_id, type_, now, data)

    # --- payments ---------------------------------------------------------------------

    def insert_payment(self, row: PaymentRow) -> None:
        """Write a new payment durably; ``IdempotencyClash`` if its key is taken."""
        def insert(db: sqlite3.Connection) -> None:
            found = db.execute(
                f"SELECT {_PAYMENT_COLUMNS} FROM bridge_payments WHERE idem_key = ?",
                (row.idem_key,),
            ).fetchone()
            if found is not None:
                raise IdempotencyClash(_payment(found))
            db.execute(
                f"INSERT INTO bridge_payments ({_PAYMENT_COLUMNS.replace('seq, ', '')}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (row.id, row.terminal, row.command, row.amount, row.invoice, row.reference,
                 row.receipt_no, row.state, None, row.detail, row.request_id, row.journal_id,
                 row.idem_key, row.idem_hash, row.key_name, row.created_at, row.updated_at),
            )

        self._write(insert)

    def delete_payment(self, payment_id: str) -> None:
        """Forget a payment that was refused before anything was written to the journal."""
        self._write(lambda db: db.execute("DELETE FROM bridge_payments WHERE id = ?",
                                          (payment_id,)))

    def update_payment(
        self, payment_id: str, *, event: Callable[[PaymentRow], dict[str, Any]] | None,
        **changes: Any,
    ) -> tuple[PaymentRow, EventRow | None]:
        """Change a payment; if anything changed and ``event`` is given, store the event
        ``payment.updated`` with ``event(new row)`` as data, in the same commit.

        Returns the new row and the event (None when nothing changed).
        """
        if "result" in changes and changes["result"] is not None:
            changes["result"] = json.dumps(changes["result"], ensure_ascii=False)

        def update(db: sqlite3.Connection) -> tuple[PaymentRow, EventRow | None]:
            before = db.execute(
                f"SELECT {_PAYMENT_COLUMNS} FROM bridge_payments WHERE id = ?", (payment_id,)
            ).fetchone()
            if before is None:
                raise JournalError(f"bridge: no payment {payment_id}")
            old = _payment(before)
            differs = {
                k: v for k, v in changes.items()
                if (json.dumps(old.result, ensure_ascii=False) if k == "result" and old.result
                    else getattr(old, k)) != v
            }
            if not differs:
                return old, None
            differs["updated_at"] = changes.get("updated_at") or _now_text()
            sets = ", ".join(f"{k} = ?" for k in differs)
            db.execute(f"UPDATE bridge_payments SET {sets} WHERE id = ?",
                       (*differs.values(), payment_id))
            new = _payment(db.execute(
                f"SELECT {_PAYMENT_COLUMNS} FROM bridge_payments WHERE id = ?", (payment_id,)
            ).fetchone())
            stored = self._event(db, "payment.updated", event(new), self.outbox) \
                if event is not None else None
            return new, stored

        return self._write(update)

    def payment(self, payment_id: str) -> PaymentRow | None:
        """One payment by id."""
        rows = self._read(f"SELECT {_PAYMENT_COLUMNS} FROM bridge_payments WHERE id = ?",
                          (payment_id,))
        return _payment(rows[0]) if rows else None

    def payment_by_key(self, key: str) -> PaymentRow | None:
        """The payment made with this ``Idempotency-Key``."""
        rows = self._read(
            f"SELECT {_PAYMENT_COLUMNS} FROM bridge_payments WHERE idem_key = ?", (key,)
        )
        return _payment(rows[0]) if rows else None

    def payment_by_request(self, request_id: str) -> PaymentRow | None:
        """The payment whose command carries ``request_id``."""
        rows = self._read(
            f"SELECT {_PAYMENT_COLUMNS} FROM bridge_payments WHERE request_id = ?", (request_id,)
        )
        return _payment(rows[0]) if rows else None

    def payments_by_journal(self, journal_ids: Iterable[int]) -> list[PaymentRow]:
        """The payments linked to these journal entries (those made through the bridge)."""
        ids = list(journal_ids)
        if not ids:
            return []
        return [_payment(r) for r in self._read(
            f"SELECT {_PAYMENT_COLUMNS} FROM bridge_payments WHERE journal_id IN "
            f"({','.join('?' * len(ids))}) ORDER BY seq", ids)]

    def payments_in(self, states: Iterable[str]) -> list[PaymentRow]:
        """Payments in any of ``states``, oldest first."""
        listed = list(states)
        return [_payment(r) for r in self._read(
            f"SELECT {_PAYMENT_COLUMNS} FROM bridge_payments WHERE state IN "
            f"({','.join('?' * len(listed))}) ORDER BY seq", listed)]

    def list_payments(
        self, *, terminal: str | None = None, state: str | None = None,
        since: str | None = None, until: str | None = None, invoice: str | None = None,
        before_seq: int | None = None, limit: int = 100,
    ) -> list[PaymentRow]:
        """Newest first; ``since``/``until`` are UTC ISO texts (``until`` excluded)."""
        clauses: list[str] = []
        params: list[Any] = []
        for sql, value in (("terminal = ?", terminal), ("state = ?", state),
                           ("created_at >= ?", since), ("created_at < ?", until),
                           ("invoice = ?", invoice), ("seq < ?", before_seq)):
            if value is not None:
                clauses.append(sql)
                params.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        return [_payment(r) for r in self._read(
            f"SELECT {_PAYMENT_COLUMNS} FROM bridge_payments {where} ORDER BY seq DESC LIMIT ?",
            [*params, limit])]

    # --- events -----------------------------------------------------------------------

    def add_event(self, type_: str, data: dict[str, Any]) -> EventRow:
        """Store one event (and its outbox row); returns it."""
        return self._write(lambda db: self._event(db, type_, data, self.outbox))

    def add_events(self, type_: str, datas: list[dict[str, Any]]) -> list[EventRow]:
        """Store several events of one type in one commit; returns them in id order."""
        return self._write(lambda db: [self._event(db, type_, d, self.outbox) for d in datas])

    def last_event_id(self) -> int:
        """The newest event id (0 if none)."""
        rows = self._read("SELECT COALESCE(MAX(id), 0) FROM bridge_events")
        return int(rows[0][0])

    def events_after(self, after: int, limit: int = 200) -> list[EventRow]:
        """Events with ids above ``after``, oldest first."""
        return [
            EventRow(r[0], r[1], r[2], json.loads(r[3]))
            for r in self._read(
                "SELECT id, type, created, data FROM bridge_events WHERE id > ? "
                "ORDER BY id LIMIT ?", (after, limit))
        ]

    def prune_events(self, older_than: float) -> int:
        """Delete events created before ``older_than`` (unix time) and already delivered."""
        def prune(db: sqlite3.Connection) -> int:
            cursor = db.execute(
                "DELETE FROM bridge_events WHERE created < ? AND id NOT IN "
                "(SELECT event_id FROM bridge_outbox)", (older_than,))
            return cursor.rowcount

        return self._write(prune)

    # --- webhook outbox ---------------------------------------------------------------

    def next_outbox(self) -> tuple[EventRow, int, float] | None:
        """The oldest undelivered event, its attempts so far and when it is due."""
        rows = self._read(
            "SELECT e.id, e.type, e.created, e.data, o.attempts, o.next_at FROM bridge_outbox o "
            "JOIN bridge_events e ON e.id = o.event_id ORDER BY o.event_id LIMIT 1")
        if not rows:
            return None
        r = rows[0]
        return EventRow(r[0], r[1], r[2], json.loads(r[3])), int(r[4]), float(r[5])

    def delivered(self, event_id: int) -> None:
        """The webhook took this event (a 2xx)."""
        self._write(lambda db: db.execute("DELETE FROM bridge_outbox WHERE event_id = ?",
                                          (event_id,)))

    def retry_later(self, event_id: int, next_at: float, error: str) -> None:
        """The webhook did not take this event; try again at ``next_at``."""
        self._write(lambda db: db.execute(
            "UPDATE bridge_outbox SET attempts = attempts + 1, next_at = ?, last_error = ? "
            "WHERE event_id = ?", (next_at, error[:200], event_id)))

    def outbox_size(self) -> int:
        """How many events wait for the webhook."""
        return int(self._read("SELECT COUNT(*) FROM bridge_outbox")[0][0])


def _now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")
