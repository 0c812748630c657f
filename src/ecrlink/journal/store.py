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

import contextlib
import logging
import os
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from .._exceptions import IllegalTransition, JournalError
from ..payment.states import OPEN_STATES, Event, State, next_state
from ..protocol import Request, Result, Sale, Void, mask_card_numbers
from .records import Entry, ResolvedBy, TerminalProfile

__all__ = ["SCHEMA_VERSION", "Journal", "default_data_dir", "default_journal_path"]

T = TypeVar("T")

log = logging.getLogger("ecrlink.journal")

SCHEMA_VERSION = 2

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
    # 2: what the terminal really charged, and what the client knew when it sent
    # (the terminal's high-water mark, the deadline); what it learned per terminal.
    """
    ALTER TABLE entries ADD COLUMN charged_amount INTEGER;
    ALTER TABLE entries ADD COLUMN mark_before TEXT;
    ALTER TABLE entries ADD COLUMN mark_at TEXT;
    ALTER TABLE entries ADD COLUMN deadline TEXT;
    CREATE INDEX entries_invoice ON entries (f3, created_at);
    CREATE TABLE terminals (
        terminal      TEXT PRIMARY KEY,
        mark          TEXT,
        mark_at       TEXT,
        mark_valid    INTEGER NOT NULL DEFAULT 0,
        echoes        INTEGER,
        clock_offset  REAL,
        tid           TEXT,
        pos_serial    TEXT,
        updated_at    TEXT NOT NULL
    );
    """,
]
assert len(_MIGRATIONS) == SCHEMA_VERSION

_COLUMNS = (
    "id, terminal, command, state, request_id, client_id, amount, f1, f2, f3, f4, f5, "
    "created_at, updated_at, receipt_no, void_of, approval_code, ref_no, card_no, tid, mid, "
    "batch_no, stan, trans_time, return_code, resolved_by, resolved_who, note, raw_reply, "
    "charged_amount, mark_before, mark_at, deadline"
)
_OPEN = ",".join(f"'{s.value}'" for s in sorted(OPEN_STATES))
# Other names of the same device: they answered with the same TID and serial number.
_TWINS = (
    "(SELECT b.terminal FROM terminals a JOIN terminals b ON a.tid = b.tid "
    "AND COALESCE(a.pos_serial, '') = COALESCE(b.pos_serial, '') "
    "WHERE a.terminal = ? AND a.tid IS NOT NULL AND b.terminal != a.terminal)"
)
_PROFILE_COLUMNS = ("mark", "mark_at", "mark_valid", "echoes", "clock_offset", "tid",
                    "pos_serial")


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


def _iso(at: datetime | None) -> str | None:
    return at.astimezone(UTC).isoformat(timespec="microseconds") if at is not None else None


def _upsert_profile(
    db: sqlite3.Connection, terminal: str, at: str, values: Mapping[str, Any]
) -> None:
    """Create or update ``terminal``'s row in ``terminals`` with ``values``."""
    unknown = set(values) - set(_PROFILE_COLUMNS)
    if unknown:
        raise JournalError(f"unknown terminal profile field(s): {', '.join(sorted(unknown))}")
    columns = list(values)
    params = [_iso(v) if isinstance(v, datetime) else v for v in values.values()]
    db.execute(
        f"INSERT INTO terminals (terminal, updated_at{''.join(', ' + c for c in columns)}) "
        f"VALUES (?, ?{', ?' * len(columns)}) ON CONFLICT (terminal) DO UPDATE SET "
        f"updated_at = excluded.updated_at{''.join(f', {c} = excluded.{c}' for c in columns)}",
        (terminal, at, *params),
    )


class Journal:
    """A durable record of every command sent to every terminal.

    Safe to share between threads (one connection, serialised) and between processes
    (SQLite locking; WAL lets readers go on while one writer commits).
    """

    def __init__(
        self, path: str | os.PathLike[str] | None = None, *, create: bool = True
    ) -> None:
        """Open (``create``: or create) the journal at ``path`` (default: the user's)."""
        self.path = Path(path) if path is not None else default_journal_path()
        self._lock = threading.RLock()
        if not create and not self.path.is_file():
            # A mistyped path must not quietly become an empty journal that "has
            # nothing in doubt".
            raise JournalError(
                f"journal {self.path}: no such file (a journal is created by the first "
                "payment; check the path)"
            )
        try:
            # Owner-only on POSIX: it holds payment records. The file is created before
            # SQLite does, which gives the -wal and -shm files the same permissions.
            # Windows ignores these modes: there the default folder is in the user's
            # profile (%LOCALAPPDATA%), whose ACL lets in only the user, SYSTEM and
            # Administrators; elsewhere (--journal, $ECRLINK_HOME) the folder's own ACL.
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
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

    def _write(self, body: Callable[[sqlite3.Connection], T], *, fsync: bool = True) -> T:
        """Run ``body`` in one write transaction and commit; return what it returned.

        With ``fsync`` the commit waits for the disk; without, it is in the WAL (safe
        from a process crash) and reaches the disk with the next fsynced commit. If
        ``body`` raises, nothing is written.
        """
        with self._lock:
            try:
                if not fsync:
                    self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    done = body(self._db)
                    self._db.execute("COMMIT")
                except BaseException:
                    # A failed COMMIT (disk full) may have ended the transaction already;
                    # the error to report is the first one, not "no transaction is active".
                    with contextlib.suppress(sqlite3.Error):
                        self._db.execute("ROLLBACK")
                    raise
                finally:
                    if not fsync:
                        self._db.execute("PRAGMA synchronous=FULL")
            except sqlite3.Error as exc:
                raise JournalError(f"journal {self.path}: write failed ({exc})") from exc
            return done

    @staticmethod
    def _history(
        db: sqlite3.Connection, entry_id: int, state: State, at: str, by: str | None = None,
        who: str | None = None, note: str | None = None,
    ) -> None:
        db.execute(
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

    def begin(
        self,
        terminal: str,
        request: Request,
        *,
        mark: str | None = None,
        mark_at: datetime | None = None,
        deadline: datetime | None = None,
    ) -> int:
        """Record ``request`` as pending, durably. Call before sending its first byte.

        ``mark`` is the terminal's high-water mark known before sending (JSON, see
        ``ecrlink.payment.proof.Mark``) and ``deadline`` when the terminal can no
        longer be in this transaction: recovery needs both, even after a crash.
        """
        at = _now()
        amount = request.amount if isinstance(request, Sale) else None
        fields = request.fields if isinstance(request, Sale) else ("", "", "", "", "")
        void_of = request.receipt_no if isinstance(request, Void) else None

        def insert(db: sqlite3.Connection) -> int:
            cursor = db.execute(
                "INSERT INTO entries (terminal, command, state, request_id, client_id, amount, "
                "f1, f2, f3, f4, f5, created_at, updated_at, void_of, mark_before, mark_at, "
                "deadline) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (terminal, request.command.value, State.PENDING.value, request.request_id,
                 request.client_id, amount, *fields, at, at, void_of, mark,
                 _iso(mark_at), _iso(deadline)),
            )
            entry_id = cursor.lastrowid
            assert entry_id is not None
            self._history(db, entry_id, State.PENDING, at)
            if request.command.value != "last trans":
                # Until this command's outcome is known, the terminal's mark is not.
                _upsert_profile(db, terminal, at, {"mark_valid": 0})
            return entry_id

        return self._write(insert)

    def record(
        self,
        entry_id: int,
        *events: Event,
        result: Result | None = None,
        by: ResolvedBy | None = None,
        who: str | None = None,
        note: str | None = None,
        receipt_no: str | None = None,
        charged_amount: int | None = None,
        learned: Mapping[str, Any] | None = None,
        fsync: bool = True,
    ) -> State:
        """Move entry ``entry_id`` through ``events`` in one commit; return its new state.

        Each step must be a transition of ``ecrlink.payment.states``, from the state
        the entry has *now* (read inside the same write transaction): otherwise
        ``IllegalTransition`` and nothing is written. ``result`` fills in the
        terminal's data (raw reply masked again); ``learned`` updates what the
        journal knows of the terminal (see :class:`TerminalProfile`) in the same
        commit. ``fsync=False``: see the module docstring.
        """
        if not events:
            raise IllegalTransition("record: no event given")
        raw = self._masked_raw(entry_id, result)
        t = result.transaction if result is not None else None

        def update(db: sqlite3.Connection) -> State:
            row = db.execute(
                "SELECT state, terminal FROM entries WHERE id = ?", (entry_id,)
            ).fetchone()
            if row is None:
                raise JournalError(f"journal {self.path}: no entry {entry_id}")
            state, terminal = State(row[0]), row[1]
            try:
                path = [next_state(state, events[0])]
                for event in events[1:]:
                    path.append(next_state(path[-1], event))
            except IllegalTransition as exc:
                raise IllegalTransition(f"journal entry {entry_id} is {state.value}: {exc}") \
                    from None
            at = _now()
            final = path[-1]
            resolved_by = by.value if by is not None and final not in OPEN_STATES else None
            detail = note or (result.detail if result is not None else None)
            db.execute(
                "UPDATE entries SET state = ?, updated_at = ?, resolved_by = COALESCE(?, "
                "resolved_by), resolved_who = COALESCE(?, resolved_who), note = COALESCE(?, "
                "note), receipt_no = COALESCE(?, receipt_no), approval_code = COALESCE(?, "
                "approval_code), ref_no = COALESCE(?, ref_no), card_no = COALESCE(?, card_no), "
                "tid = COALESCE(?, tid), mid = COALESCE(?, mid), batch_no = COALESCE(?, "
                "batch_no), stan = COALESCE(?, stan), trans_time = COALESCE(?, trans_time), "
                "return_code = COALESCE(?, return_code), raw_reply = COALESCE(?, raw_reply), "
                "charged_amount = COALESCE(?, charged_amount) WHERE id = ?",
                (
                    final.value, at, resolved_by, who, detail,
                    receipt_no or (t.receipt_no if t else None),
                    t.approval_code if t else None, t.ref_no if t else None,
                    t.card_no if t else None, t.tid if t else None, t.mid if t else None,
                    t.batch_no if t else None, t.stan if t else None,
                    t.time.isoformat() if t and t.time else None,
                    result.return_code if result is not None else None, raw,
                    charged_amount, entry_id,
                ),
            )
            for step in path:
                last = step is path[-1]
                self._history(db, entry_id, step, at, resolved_by if last else None,
                              who if last else None, detail if last else None)
            if learned:
                _upsert_profile(db, terminal, at, learned)
            return final

        return self._write(update, fsync=fsync)

    def _masked_raw(self, entry_id: int, result: Result | None) -> bytes | None:
        if result is None or not result.raw:
            return None
        raw, hidden = mask_card_numbers(result.raw)
        if hidden:
            log.warning("journal entry %d: the reply held an unmasked card number; "
                        "it was masked before storage", entry_id)
        return raw

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
        """Settle an open entry by hand or from other evidence; returns the new entry.

        ``state`` is ``approved`` or ``declined`` (not approved); the state table
        allows it only from ``pending`` or ``in_doubt``. ``who`` and the time are
        kept in the history.
        """
        events = {State.APPROVED: Event.PROVEN_APPROVED, State.DECLINED: Event.PROVEN_NOT_APPROVED}
        if state not in events:
            raise JournalError(f"resolve: state must be approved or declined, not {state}")
        try:
            self.record(entry_id, events[state], by=by, who=who, note=note,
                        receipt_no=receipt_no)
        except IllegalTransition:
            entry = self.get(entry_id)
            raise JournalError(
                f"journal entry {entry_id} is {entry.state}, not in doubt: nothing to resolve"
            ) from None
        return self.get(entry_id)

    def orphans_to_in_doubt(self, terminal: str) -> int:
        """Turn ``terminal``'s pending or sent entries into in_doubt; returns how many.

        Only safe while holding that terminal's lock: then no live process is in the
        middle of one of them, so such an entry is what a crash left behind.
        """
        with self._lock:
            ids = [row[0] for row in self._db.execute(
                "SELECT id FROM entries WHERE terminal = ? AND state IN ('pending', 'sent')",
                (terminal,),
            )]
        for entry_id in ids:
            self.record(entry_id, Event.LOST, note="left unanswered by an interrupted process")
        return len(ids)

    def learn(self, terminal: str, values: Mapping[str, Any]) -> None:
        """Record what was learned about ``terminal`` (no fsync: it can be learned again)."""
        self._write(lambda db: _upsert_profile(db, terminal, _now(), values), fsync=False)

    def profile(self, terminal: str) -> TerminalProfile:
        """What the journal knows about ``terminal`` (an empty profile if nothing)."""
        with self._lock:
            try:
                row = self._db.execute(
                    f"SELECT {', '.join(_PROFILE_COLUMNS)} FROM terminals WHERE terminal = ?",
                    (terminal,),
                ).fetchone()
            except sqlite3.Error as exc:
                raise JournalError(f"journal {self.path}: read failed ({exc})") from exc
        if row is None:
            return TerminalProfile(terminal)
        mark, mark_at, valid, echoes, offset, tid, serial = row
        return TerminalProfile(
            terminal, mark=mark, mark_at=_parse_time(mark_at), mark_valid=bool(valid),
            echoes=None if echoes is None else bool(echoes), clock_offset=offset,
            tid=tid, pos_serial=serial,
        )

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
        """Sales and voids whose outcome is not known yet (on one terminal, or all).

        For one terminal, the in-doubt ones of its twins (other names that answered
        with the same TID and serial number) are included: asking the device through
        this name settles them too.
        """
        where = f"state IN ({_OPEN}) AND command IN ('sale', 'void')"
        if terminal is None:
            return self._select(where, (), "ORDER BY id")
        return self._select(
            f"{where} AND (terminal = ? OR (state = 'in_doubt' AND terminal IN {_TWINS}))",
            (terminal, terminal), "ORDER BY id",
        )

    def open_entries(self, terminal: str) -> list[Entry]:
        """Every command on ``terminal`` or a twin whose outcome is not known yet."""
        return self._select(
            f"state IN ({_OPEN}) AND (terminal = ? OR terminal IN {_TWINS})",
            (terminal, terminal), "ORDER BY id",
        )

    def paid_invoice(self, invoice: str, since: datetime) -> Entry | None:
        """The latest sale for ``invoice`` (F3) approved since ``since``, on any terminal."""
        found = self._select(
            "f3 = ? AND created_at >= ? AND command = 'sale' AND state IN "
            "('approved', 'amount_mismatch')",
            (invoice, since.astimezone(UTC).isoformat(timespec="microseconds")),
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
     batch_no, stan, trans_time, return_code, resolved_by, resolved_who, note, raw,
     charged_amount, mark_before, mark_at, deadline) = row
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
        charged_amount=charged_amount, mark_before=mark_before,
        mark_at=_parse_time(mark_at), deadline=_parse_time(deadline),
    )
