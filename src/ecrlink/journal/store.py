"""The SQLite journal: written by the client, read by recovery, reconciliation and the CLI.

A command is inserted as ``pending`` and committed with an fsync (WAL,
``synchronous=FULL``) before its first byte is sent: that record is what makes a lost
payment impossible to miss. Its answer is the second commit, written without waiting
for the disk (``synchronous=NORMAL``): it survives any crash of the process at once,
and an fsync moments later (the next command's) makes it survive a power cut too. If
power fails in between, the entry reads ``pending`` again and recovery asks the
terminal, exactly as after a crash before the answer arrived. Every other change
(failures, resolutions by ``last trans``, the cashier or reconciliation) is
fsynced: those cannot always be asked again. Each state
change also appends a row to ``history`` in the same transaction, so who changed what
and when survives. Card numbers arrive masked from the protocol core; raw replies are
masked again here before they touch the disk.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import sys
import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from .._exceptions import JournalError
from ..protocol import Outcome, Request, Result, Sale, Void, mask_card_numbers
from .records import Entry, ResolvedBy, State

__all__ = ["SCHEMA_VERSION", "Journal", "default_data_dir", "default_journal_path"]

log = logging.getLogger("ecrlink.journal")

SCHEMA_VERSION = 1

# Each migration takes the schema from version i to i + 1. Never edit one that shipped.
_MIGRATIONS: list[str] = [
    """
    CREATE TABLE entries (
        id            INTEGER PRIMARY KEY,
        terminal      TEXT NOT NULL,
        command       TEXT NOT NULL,
        state         TEXT NOT NULL,
        request_id    TEXT NOT NULL,
        client_id     TEXT NOT NULL,
        amount        INTEGER,
        f1 TEXT NOT NULL DEFAULT '', f2 TEXT NOT NULL DEFAULT '', f3 TEXT NOT NULL DEFAULT '',
        f4 TEXT NOT NULL DEFAULT '', f5 TEXT NOT NULL DEFAULT '',
        created_at    TEXT NOT NULL,
        updated_at    TEXT NOT NULL,
        receipt_no    TEXT,
        void_of       TEXT,
        approval_code TEXT,
        ref_no        TEXT,
        card_no       TEXT,
        tid           TEXT,
        mid           TEXT,
        batch_no      TEXT,
        stan          TEXT,
        trans_time    TEXT,
        return_code   TEXT,
        resolved_by   TEXT,
        resolved_who  TEXT,
        note          TEXT,
        raw_reply     BLOB
    );
    CREATE INDEX entries_terminal_state ON entries (terminal, state);
    CREATE INDEX entries_created ON entries (created_at);
    CREATE INDEX entries_request ON entries (request_id);
    CREATE TABLE history (
        id         INTEGER PRIMARY KEY,
        entry_id   INTEGER NOT NULL REFERENCES entries (id),
        at         TEXT NOT NULL,
        state      TEXT NOT NULL,
        by         TEXT,
        who        TEXT,
        note       TEXT
    );
    CREATE INDEX history_entry ON history (entry_id);
    """,
]
assert len(_MIGRATIONS) == SCHEMA_VERSION

_COLUMNS = (
    "id, terminal, command, state, request_id, client_id, amount, f1, f2, f3, f4, f5, "
    "created_at, updated_at, receipt_no, void_of, approval_code, ref_no, card_no, tid, mid, "
    "batch_no, stan, trans_time, return_code, resolved_by, resolved_who, note, raw_reply"
)

_STATE_OF_OUTCOME = {
    Outcome.APPROVED: State.APPROVED,
    Outcome.DECLINED: State.DECLINED,
    Outcome.CANCELED: State.CANCELED,
    Outcome.UNKNOWN: State.IN_DOUBT,
}


# Commands whose lost answer recovery can ask the terminal for again (``last trans``).
_ASKABLE = frozenset({"sale", "void"})


def default_data_dir() -> Path:
    """Where ecrlink keeps its data: ``$ECRLINK_HOME``, else the platform's user data dir."""
    override = os.environ.get("ECRLINK_HOME")
    if override:
        return Path(override)
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "ecrlink"


def default_journal_path() -> Path:
    """The journal file used when none is given."""
    return default_data_dir() / "journal.sqlite3"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _parse_time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


class Journal:
    """A durable record of every command sent to every terminal.

    Safe to share between threads (one connection, serialised) and between processes
    (SQLite locking; WAL lets readers go on while one writer commits).
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else default_journal_path()
        self._lock = threading.RLock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # Create the file owner-only before SQLite does: it holds payment records.
            # SQLite gives the -wal and -shm files the same permissions.
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            os.close(fd)
            self._db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except (OSError, sqlite3.Error) as exc:
            raise JournalError(f"journal {self.path}: cannot open ({exc})") from exc

    # --- plumbing -----------------------------------------------------------------

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise JournalError(
                f"journal {self.path}: schema version {version} is newer than this ecrlink "
                f"({SCHEMA_VERSION}); upgrade ecrlink"
            )
        for step in range(version, SCHEMA_VERSION):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                # Another process may have migrated while we waited for the lock.
                if self._db.execute("PRAGMA user_version").fetchone()[0] != step:
                    self._db.execute("ROLLBACK")
                    continue
                for statement in _MIGRATIONS[step].split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {step + 1}")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _write(
        self, statements: Iterable[tuple[str, tuple[Any, ...]]], *, fsync: bool = True
    ) -> int | None:
        """Run ``statements`` in one transaction; return the first lastrowid.

        With ``fsync`` the commit waits for the disk; without, it is in the WAL (safe
        from a process crash) and reaches the disk with the next fsynced commit.
        """
        with self._lock:
            try:
                if not fsync:
                    self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.execute("BEGIN IMMEDIATE")
                first: int | None = None
                try:
                    for sql, params in statements:
                        cursor = self._db.execute(sql, params)
                        if first is None:
                            first = cursor.lastrowid
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                finally:
                    if not fsync:
                        self._db.execute("PRAGMA synchronous=FULL")
            except sqlite3.Error as exc:
                raise JournalError(f"journal {self.path}: write failed ({exc})") from exc
            return first

    def _history(
        self, entry_id: int | None, state: State, at: str, by: str | None = None,
        who: str | None = None, note: str | None = None,
    ) -> tuple[str, tuple[Any, ...]]:
        if entry_id is None:
            return (
                "INSERT INTO history (entry_id, at, state, by, who, note) "
                "VALUES (last_insert_rowid(), ?, ?, ?, ?, ?)",
                (at, state.value, by, who, note),
            )
        return (
            "INSERT INTO history (entry_id, at, state, by, who, note) VALUES (?, ?, ?, ?, ?, ?)",
            (entry_id, at, state.value, by, who, note),
        )

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- writer: the client's hooks -------------------------------------------------

    def begin(self, terminal: str, request: Request) -> int:
        """Record ``request`` as pending, durably. Call before sending its first byte."""
        at = _now()
        amount = request.amount if isinstance(request, Sale) else None
        fields = request.fields if isinstance(request, Sale) else ("", "", "", "", "")
        void_of = request.receipt_no if isinstance(request, Void) else None
        entry_id = self._write([
            (
                "INSERT INTO entries (terminal, command, state, request_id, client_id, amount, "
                "f1, f2, f3, f4, f5, created_at, updated_at, void_of) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (terminal, request.command.value, State.PENDING.value, request.request_id,
                 request.client_id, amount, *fields, at, at, void_of),
            ),
            self._history(None, State.PENDING, at),
        ])
        assert entry_id is not None
        return entry_id

    def record_result(
        self,
        entry_id: int,
        result: Result,
        *,
        by: ResolvedBy = ResolvedBy.REPLY,
        who: str | None = None,
        note: str | None = None,
    ) -> State:
        """Record what the terminal answered (or what resolution proved); return the state."""
        state = _STATE_OF_OUTCOME[result.outcome]
        t = result.transaction
        raw: bytes | None = None
        if result.raw:
            raw, hidden = mask_card_numbers(result.raw)
            if hidden:
                log.warning("journal entry %d: the reply held an unmasked card number; "
                            "it was masked before storage", entry_id)
        at = _now()
        resolved_by = None if state is State.IN_DOUBT else by.value
        self._write([
            (
                "UPDATE entries SET state = ?, updated_at = ?, receipt_no = ?, approval_code = ?, "
                "ref_no = ?, card_no = ?, tid = ?, mid = ?, batch_no = ?, stan = ?, "
                "trans_time = ?, return_code = ?, resolved_by = ?, resolved_who = ?, "
                "note = ?, raw_reply = COALESCE(?, raw_reply) WHERE id = ?",
                (
                    state.value, at,
                    t.receipt_no if t else None, t.approval_code if t else None,
                    t.ref_no if t else None, t.card_no if t else None,
                    t.tid if t else None, t.mid if t else None,
                    t.batch_no if t else None, t.stan if t else None,
                    t.time.isoformat() if t and t.time else None,
                    result.return_code, resolved_by, who,
                    note or result.detail, raw, entry_id,
                ),
            ),
            self._history(entry_id, state, at, resolved_by, who, note or result.detail),
        ], fsync=not (by is ResolvedBy.REPLY and result.command in _ASKABLE))
        return state

    def record_failure(self, entry_id: int, state: State, note: str) -> None:
        """Record that a command failed: ``FAILED`` (never sent) or ``IN_DOUBT``."""
        at = _now()
        self._write([
            ("UPDATE entries SET state = ?, updated_at = ?, note = ? WHERE id = ?",
             (state.value, at, note, entry_id)),
            self._history(entry_id, state, at, note=note),
        ])

    def resolve(
        self,
        entry_id: int,
        state: State,
        *,
        by: ResolvedBy,
        who: str | None = None,
        note: str | None = None,
        receipt_no: str | None = None,
    ) -> Entry:
        """Settle an in-doubt entry by hand or from other evidence; returns the new entry.

        Only ``pending`` or ``in_doubt`` entries can be resolved, to ``approved`` or
        ``declined``; ``who`` and the time are kept in the history.
        """
        if state not in (State.APPROVED, State.DECLINED):
            raise JournalError(f"resolve: state must be approved or declined, not {state}")
        entry = self.get(entry_id)
        if entry.state not in (State.IN_DOUBT, State.PENDING):
            raise JournalError(
                f"journal entry {entry_id} is {entry.state}, not in doubt: nothing to resolve"
            )
        at = _now()
        self._write([
            (
                "UPDATE entries SET state = ?, updated_at = ?, resolved_by = ?, resolved_who = ?, "
                "note = ?, receipt_no = COALESCE(?, receipt_no) WHERE id = ? "
                "AND state IN ('pending', 'in_doubt')",
                (state.value, at, by.value, who, note, receipt_no, entry_id),
            ),
            self._history(entry_id, state, at, by.value, who, note),
        ])
        return self.get(entry_id)

    def orphans_to_in_doubt(self, terminal: str) -> int:
        """Turn ``terminal``'s pending entries into in_doubt; returns how many.

        Only safe while holding that terminal's lock: then no live process is in the
        middle of one of them, so a pending entry is what a crash left behind.
        """
        at = _now()
        with self._lock:
            ids = [row[0] for row in self._db.execute(
                "SELECT id FROM entries WHERE terminal = ? AND state = 'pending'", (terminal,)
            )]
        if ids:
            note = "left pending by an interrupted process"
            self._write(
                [(
                    f"UPDATE entries SET state = 'in_doubt', updated_at = ?, note = ? "
                    f"WHERE id IN ({','.join('?' * len(ids))})",
                    (at, note, *ids),
                )]
                + [self._history(i, State.IN_DOUBT, at, note=note) for i in ids]
            )
        return len(ids)

    # --- reader ---------------------------------------------------------------------

    def _select(self, where: str = "", params: tuple[Any, ...] = (), tail: str = "") -> list[Entry]:
        sql = f"SELECT {_COLUMNS} FROM entries {('WHERE ' + where) if where else ''} {tail}"
        with self._lock:
            try:
                rows = self._db.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise JournalError(f"journal {self.path}: read failed ({exc})") from exc
        return [_entry(row) for row in rows]

    def get(self, entry_id: int) -> Entry:
        """One entry by id; ``JournalError`` if there is none."""
        found = self._select("id = ?", (entry_id,))
        if not found:
            raise JournalError(f"journal {self.path}: no entry {entry_id}")
        return found[0]

    def entries(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        terminal: str | None = None,
        states: Iterable[State] | None = None,
        commands: Iterable[str] | None = None,
    ) -> Iterator[Entry]:
        """Entries in creation order, filtered by time (UTC-aware), terminal, state, command."""
        clauses: list[str] = []
        params: list[Any] = []
        if since is not None:
            clauses.append("created_at >= ?")
            params.append(since.astimezone(UTC).isoformat(timespec="microseconds"))
        if until is not None:
            clauses.append("created_at < ?")
            params.append(until.astimezone(UTC).isoformat(timespec="microseconds"))
        if terminal is not None:
            clauses.append("terminal = ?")
            params.append(terminal)
        for column, values in (("state", states), ("command", commands)):
            if values is not None:
                listed = [str(v) for v in values]
                clauses.append(f"{column} IN ({','.join('?' * len(listed))})")
                params += listed
        yield from self._select(" AND ".join(clauses), tuple(params), "ORDER BY id")

    def unresolved(self, terminal: str | None = None) -> list[Entry]:
        """Sales and voids still pending or in doubt (on one terminal, or all)."""
        where = "state IN ('pending', 'in_doubt') AND command IN ('sale', 'void')"
        params: tuple[Any, ...] = ()
        if terminal is not None:
            where += " AND terminal = ?"
            params = (terminal,)
        return self._select(where, params, "ORDER BY id")

    def open_entries(self, terminal: str) -> list[Entry]:
        """Every command on ``terminal`` still pending or in doubt, oldest first."""
        return self._select(
            "terminal = ? AND state IN ('pending', 'in_doubt')", (terminal,), "ORDER BY id"
        )

    def last_approved_before(self, terminal: str, entry_id: int) -> Entry | None:
        """The latest approved sale or void on ``terminal`` recorded before ``entry_id``."""
        found = self._select(
            "terminal = ? AND id < ? AND state = 'approved' AND command IN ('sale', 'void')",
            (terminal, entry_id),
            "ORDER BY id DESC LIMIT 1",
        )
        return found[0] if found else None

    def terminals(self) -> list[str]:
        """Every terminal the journal has seen."""
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT DISTINCT terminal FROM entries")]

    def history(self, entry_id: int) -> list[dict[str, Any]]:
        """The state changes of one entry, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT at, state, by, who, note FROM history WHERE entry_id = ? ORDER BY id",
                (entry_id,),
            ).fetchall()
        return [dict(zip(("at", "state", "by", "who", "note"), row, strict=True)) for row in rows]


def _entry(row: tuple[Any, ...]) -> Entry:
    (id_, terminal, command, state, request_id, client_id, amount, f1, f2, f3, f4, f5,
     created_at, updated_at, receipt_no, void_of, approval_code, ref_no, card_no, tid, mid,
     batch_no, stan, trans_time, return_code, resolved_by, resolved_who, note, raw) = row
    return Entry(
        id=id_, terminal=terminal, command=command, state=State(state),
        request_id=request_id, client_id=client_id, amount=amount,
        fields=(f1, f2, f3, f4, f5),
        created_at=datetime.fromisoformat(created_at),
        updated_at=datetime.fromisoformat(updated_at),
        receipt_no=receipt_no, void_of=void_of, approval_code=approval_code, ref_no=ref_no,
        card_no=card_no, tid=tid, mid=mid, batch_no=batch_no, stan=stan,
        trans_time=_parse_time(trans_time), return_code=return_code,
        resolved_by=ResolvedBy(resolved_by) if resolved_by else None,
        resolved_who=resolved_who, note=note, raw_reply=raw,
    )
