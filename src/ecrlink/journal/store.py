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

The same class keeps a PostgreSQL journal (``ecrlink.journal.pg``): the transitions,
masking, history, schema version and migrations are written here once, against a
connection whose ``execute`` takes ``?`` parameters; a backend supplies only the
plumbing (connecting, the write and read transactions, the migration runner's
version record, the DDL types). Every state change also writes the entry's ``change``
(its latest history id) in the same transaction, and ``meta`` holds the journal's id:
what a sync to head office reads (``changes_since``).
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from .._exceptions import IllegalTransition, JournalError
from ..payment.states import OPEN_STATES, Event, State, next_state
from ..protocol import Request, Result, Sale, Void, mask_card_numbers
from ..protocol.field_texts import field_error
from .lock import Lock, TerminalLock
from .records import Change, Entry, ResolvedBy, TerminalProfile

__all__ = [
    "COUNT_CAP", "SCHEMA_VERSION", "Journal", "Page", "Recorded", "Selection", "default_data_dir",
    "default_journal_path",
]

T = TypeVar("T")

log = logging.getLogger("ecrlink.journal")

SCHEMA_VERSION = 4

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
    # 3: journal list pages in SQL. Each filter it offers (a state; a terminal and a
    # state) leads to an index already in time order (SQLite ends every index with the
    # rowid, so ties come in id order), so a page or a chunk reads only the rows it
    # shows and a count reads one index. The new terminal index begins like the old one.
    """
    DROP INDEX entries_terminal_state;
    CREATE INDEX entries_terminal_state_created ON entries (terminal, state, created_at);
    CREATE INDEX entries_state_created ON entries (state, created_at);
    """,
    # 4: what a sync reads. Each entry's change number (its latest history id), written
    # by every state change in the same UPDATE; the journal's id and schema version in
    # ``meta`` (the id is written by _set_journal_id: the old fingerprint, first entry's
    # time and requestId, for a journal that head office may already know by it).
    """
    ALTER TABLE entries ADD COLUMN change INTEGER;
    UPDATE entries SET change = (SELECT max(h.id) FROM history h WHERE h.entry_id = entries.id);
    CREATE INDEX entries_change ON entries (change);
    CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
]
assert len(_MIGRATIONS) == SCHEMA_VERSION

_COLUMNS = (
    "id, terminal, command, state, request_id, client_id, amount, f1, f2, f3, f4, f5, "
    "created_at, updated_at, receipt_no, void_of, approval_code, ref_no, card_no, tid, mid, "
    "batch_no, stan, trans_time, return_code, resolved_by, resolved_who, note, raw_reply, "
    "charged_amount, mark_before, mark_at, deadline"
)
_CREATED_AT = _COLUMNS.split(", ").index("created_at")
_OPEN = ",".join(f"'{s.value}'" for s in sorted(OPEN_STATES))
# Other names of the same device: they answered with the same TID and serial number.
_TWINS = (
    "(SELECT b.terminal FROM terminals a JOIN terminals b ON a.tid = b.tid "
    "AND COALESCE(a.pos_serial, '') = COALESCE(b.pos_serial, '') "
    "WHERE a.terminal = ? AND a.tid IS NOT NULL AND b.terminal != a.terminal)"
)
_NEXT = "(SELECT COALESCE(max(id), 0) + 1 FROM history)"
"""The next change number (history id), read inside the write transaction."""
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
    return _stamp(at) if at is not None else None


def _stamp(at: datetime) -> str:
    """``at`` as the journal stores times: UTC, ISO, microseconds (text order = time order)."""
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def _upsert_profile(
    db: sqlite3.Connection, terminal: str, at: str, values: Mapping[str, Any]
) -> None:
    """Create or update ``terminal``'s row in ``terminals`` with ``values``."""
    unknown = set(values) - set(_PROFILE_COLUMNS)
    if unknown:
        raise JournalError(f"unknown terminal profile field(s): {', '.join(sorted(unknown))}")
    columns = list(values)
    # bool as 0/1, as SQLite keeps it anyway: PostgreSQL's integer columns refuse a bool.
    params = [_iso(v) if isinstance(v, datetime) else int(v) if isinstance(v, bool) else v
              for v in values.values()]
    db.execute(
        f"INSERT INTO terminals (terminal, updated_at{''.join(', ' + c for c in columns)}) "
        f"VALUES (?, ?{', ?' * len(columns)}) ON CONFLICT (terminal) DO UPDATE SET "
        f"updated_at = excluded.updated_at{''.join(f', {c} = excluded.{c}' for c in columns)}",
        (terminal, at, *params),
    )


@dataclass(frozen=True, slots=True)
class Selection:
    """Which entries a reader wants; each ``None`` is no condition.

    ``since`` (inclusive) and ``until`` (exclusive) are aware datetimes, compared with
    the entry's creation time; an empty ``states`` selects nothing.
    """

    since: datetime | None = None
    until: datetime | None = None
    terminal: str | None = None
    states: frozenset[State] | None = None

    def only(self, states: Iterable[State]) -> Selection:
        """This selection narrowed to ``states``."""
        wanted = frozenset(states)
        return replace(self, states=wanted if self.states is None else self.states & wanted)


COUNT_CAP = 100_000
"""A page counts its selection exactly up to this many entries, and beyond says only
"more than": counting reads one index entry per entry, about 0.1 s per million."""


@dataclass(frozen=True, slots=True)
class Page:
    """The newest entries of a selection, oldest first, and how many it holds in all."""

    entries: list[Entry]
    total: int
    exact: bool = True
    """False: the selection holds more than ``total`` entries (counting stopped there)."""

    @property
    def more(self) -> int:
        """How many entries of the selection are older than this page (not in it); at
        least that many when the total is not ``exact``."""
        return self.total - len(self.entries)


_Key = tuple[str, int]
"""Where a reader stopped: (``created_at`` as stored, ``id``), the order of every list."""


def _arms(
    selection: Selection, after: _Key | None = None, newest_first: bool = False
) -> list[tuple[list[str], list[Any]]]:
    """The conditions of ``selection`` past ``after``, as arms whose union it is.

    With no terminal or state condition, one arm reads the ``created_at`` index.
    Otherwise one arm per state, each reading ``(state, created_at)`` or ``(terminal,
    state, created_at)``: every arm comes out of its index in time order, so SQLite
    merges them without sorting and a page stops after the rows it shows.
    """
    # One bound on each side: given two, SQLite would start its range at either.
    # Stored times are all UTC in one ISO format, so text order is time order.
    lower = (">=", _stamp(selection.since)) if selection.since is not None else None
    upper = ("<", _stamp(selection.until)) if selection.until is not None else None
    if after is not None and not newest_first and (lower is None or after[0] >= lower[1]):
        lower = (">=", after[0])
    if after is not None and newest_first and (upper is None or after[0] < upper[1]):
        upper = ("<=", after[0])
    common = [f"created_at {op} ?" for op, _ in filter(None, (lower, upper))]
    values: list[Any] = [value for _, value in filter(None, (lower, upper))]
    if after is not None:
        # Keyset: only rows past the last one read; ties on created_at go by id.
        past = "<" if newest_first else ">"
        common.append(f"(created_at {past} ? OR id {past} ?)")
        values += [after[0], after[1]]
    if selection.terminal is None and selection.states is None:
        return [(common, values)]
    head = ["terminal = ?"] if selection.terminal is not None else []
    head_values = [selection.terminal] if selection.terminal is not None else []
    states = State if selection.states is None else selection.states
    return [
        ([*head, "state = ?", *common], [*head_values, state.value, *values])
        for state in sorted(states)
    ]


def _list_sql(
    selection: Selection, *, after: _Key | None, newest_first: bool, limit: int
) -> tuple[str, list[Any]] | None:
    """The query for at most ``limit`` entries of ``selection`` past ``after``, in time
    order (``newest_first``: backwards); None if the selection is empty by definition."""
    selects: list[str] = []
    params: list[Any] = []
    for conditions, values in _arms(selection, after, newest_first):
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        selects.append(f"SELECT {_COLUMNS} FROM entries{where}")
        params += values
    if not selects:
        return None
    way = "DESC" if newest_first else "ASC"
    sql = " UNION ALL ".join(selects) + f" ORDER BY created_at {way}, id {way} LIMIT ?"
    return sql, [*params, limit]


def _count_sql(
    selection: Selection, at_most: int | None = None
) -> tuple[str, list[Any]] | None:
    """How many entries ``selection`` holds: read from one index, never the table; with
    ``at_most``, counting stops after ``at_most + 1`` (more than ``at_most``)."""
    conditions: list[str] = []
    params: list[Any] = []
    if selection.terminal is not None:
        conditions.append("terminal = ?")
        params.append(selection.terminal)
    if selection.states is not None or selection.terminal is not None:
        # Every state when none is asked: (terminal, state, created_at) then still serves.
        states = sorted(State if selection.states is None else selection.states)
        if not states:
            return None
        conditions.append(f"state IN ({','.join('?' * len(states))})")
        params += [s.value for s in states]
    if selection.since is not None:
        conditions.append("created_at >= ?")
        params.append(_stamp(selection.since))
    if selection.until is not None:
        conditions.append("created_at < ?")
        params.append(_stamp(selection.until))
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    if at_most is not None:
        return f"SELECT count(*) FROM (SELECT 1 FROM entries{where} LIMIT ?) AS capped", [
            *params, at_most + 1]
    return f"SELECT count(*) FROM entries{where}", params


_FILL = ("receipt_no", "approval_code", "ref_no", "card_no", "tid", "mid", "batch_no", "stan",
         "trans_time", "return_code", "raw_reply", "charged_amount")
"""The columns a state change fills in (each kept if the change brings nothing)."""


@dataclass(frozen=True, slots=True)
class Recorded:
    """What one :meth:`Journal.record` writes, worked out before its transaction.

    Plain values only (``to_json``): an answer the database could not take waits in a
    spool as one of these and is applied later through the same transition.
    """

    entry_id: int
    events: tuple[Event, ...]
    by: str | None = None
    who: str | None = None
    note: str | None = None
    fill: Mapping[str, Any] | None = None
    """Column -> value (``_FILL``); None values keep what the entry has."""
    learned: Mapping[str, Any] | None = None

    def to_json(self) -> str:
        """This change as one line of JSON (the raw reply in base64)."""
        fill = None if self.fill is None else dict(self.fill)
        if fill is not None and isinstance(fill.get("raw_reply"), bytes):
            fill["raw_reply"] = base64.b64encode(fill["raw_reply"]).decode("ascii")
        learned = None if self.learned is None else {
            k: _iso(v) if isinstance(v, datetime) else v for k, v in self.learned.items()}
        return json.dumps({"entry_id": self.entry_id, "events": [e.value for e in self.events],
                           "by": self.by, "who": self.who, "note": self.note, "fill": fill,
                           "learned": learned}, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Recorded:
        """The inverse of :meth:`to_json`."""
        data = json.loads(text)
        fill = None if data["fill"] is None else dict(data["fill"])
        if fill is not None and isinstance(fill.get("raw_reply"), str):
            fill["raw_reply"] = base64.b64decode(fill["raw_reply"])
        return cls(int(data["entry_id"]), tuple(Event(e) for e in data["events"]),
                   data["by"], data["who"], data["note"], fill, data["learned"])


class Journal:
    """A durable record of every command sent to every terminal.

    Safe to share between threads (one connection, serialised) and between processes
    (SQLite locking; WAL lets readers go on while one writer commits).
    """

    _FOR_UPDATE = ""
    """What locks the entry a state change reads (SQLite's writer already holds the file)."""

    _on_begin: Callable[[str, int], None] | None = None

    def __init__(
        self, path: str | os.PathLike[str] | None = None, *, create: bool = True,
        readonly: bool = False,
    ) -> None:
        """Open (``create``: or create) the journal at ``path`` (default: the user's).

        ``readonly``: an existing journal, read through a read-only connection (a sync
        that must never write the store's journal); an older schema is upgraded first.
        """
        self.path = Path(path) if path is not None else default_journal_path()
        self._lock = threading.RLock()
        if (readonly or not create) and not self.path.is_file():
            # A mistyped path must not quietly become an empty journal that "has
            # nothing in doubt".
            raise JournalError(
                f"journal {self.where}: no such file (a journal is created by the first "
                "payment; check the path)"
            )
        if readonly:
            self._open_readonly()
            return
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
            raise JournalError(f"journal {self.where}: cannot open ({exc})") from exc

    def _open_readonly(self) -> None:
        """Connect read-only; a journal of an older schema is upgraded first (by a
        writable journal, closed at once)."""
        uri = self.path.resolve().as_uri() + "?mode=ro"
        try:
            self._db = sqlite3.connect(uri, uri=True, isolation_level=None,
                                       check_same_thread=False, timeout=30)
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version < SCHEMA_VERSION:
                self._db.close()
                Journal(self.path, create=False).close()
                self._db = sqlite3.connect(uri, uri=True, isolation_level=None,
                                           check_same_thread=False, timeout=30)
            elif version > SCHEMA_VERSION:
                raise JournalError(
                    f"journal {self.where}: schema version {version} is newer than this "
                    f"ecrlink ({SCHEMA_VERSION}); upgrade ecrlink")
        except sqlite3.Error as exc:
            raise JournalError(f"journal {self.where}: cannot open ({exc})") from exc

    # --- plumbing -----------------------------------------------------------------

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise JournalError(
                f"journal {self.where}: schema version {version} is newer than this ecrlink "
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
                _after_migration(self._db, step + 1)
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
                raise JournalError(f"journal {self.where}: write failed ({exc})") from exc
            return done

    def _read(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        """The rows of one query (autocommit: one statement is its own snapshot)."""
        with self._lock:
            try:
                return self._db.execute(sql, tuple(params)).fetchall()
            except sqlite3.Error as exc:
                raise JournalError(f"journal {self.where}: read failed ({exc})") from exc

    @property
    def where(self) -> str:
        """The journal's name in messages: its file (or its URL, password hidden)."""
        return str(self.path)

    @property
    def lock(self) -> threading.RLock:
        """The lock held while this journal uses its connection. Another connection to
        the same SQLite file (the bridge's tables) takes it too, so the two never make
        each other wait inside SQLite."""
        return self._lock

    def on_begin(self, observer: Callable[[str, int], None] | None) -> None:
        """Have ``observer(request_id, entry_id)`` called each time :meth:`begin` has
        committed a command, in the thread that wrote it, before ``begin`` returns
        (None: no observer). One observer per journal; what it raises is logged, never
        passed on: the command is written down either way."""
        self._on_begin = observer

    @staticmethod
    def _history(
        db: Any, entry_id: int, state: State, at: str, by: str | None = None,
        who: str | None = None, note: str | None = None,
    ) -> int:
        """Append one history row; returns its id (the change number).

        The id is the highest one plus one, drawn inside the write transaction: what
        SQLite's rowid would be anyway, and in PostgreSQL (writes one at a time) a
        number without gaps, in commit order, known before the row is written.
        """
        row = db.execute(
            f"INSERT INTO history (id, entry_id, at, state, by, who, note) VALUES ({_NEXT}, "
            "?, ?, ?, ?, ?, ?) RETURNING id",
            (entry_id, at, state.value, by, who, note),
        ).fetchone()
        return int(row[0])

    def terminal_lock(self, terminal: str, *, wait: float, directory: Path) -> Lock:
        """The lock that gives one command at a time ``terminal`` (a file lock in
        ``directory``; a PostgreSQL journal's own is an advisory lock)."""
        return TerminalLock(directory, terminal, wait=wait)

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()

    def release(self) -> None:
        """Give back what this journal holds on a server; it stays usable (a database
        journal connects again when next used). A file's connection holds nothing
        worth giving back, so here this does nothing: reading the journal after the
        terminal that opened it has closed keeps working."""

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

        def insert(db: Any) -> int:
            # Its change number is its pending history row's, written next (_NEXT).
            entry_id, change = db.execute(
                "INSERT INTO entries (terminal, command, state, request_id, client_id, amount, "
                "f1, f2, f3, f4, f5, created_at, updated_at, void_of, mark_before, mark_at, "
                f"deadline, change) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                f"{_NEXT}) RETURNING id, change",
                (terminal, request.command.value, State.PENDING.value, request.request_id,
                 request.client_id, amount, *fields, at, at, void_of, mark,
                 _iso(mark_at), _iso(deadline)),
            ).fetchone()
            if self._history(db, entry_id, State.PENDING, at) != change:
                raise JournalError(f"journal {self.where}: change numbers out of step")
            if request.command.value != "last trans":
                # Until this command's outcome is known, the terminal's mark is not.
                _upsert_profile(db, terminal, at, {"mark_valid": 0})
            return int(entry_id)

        entry_id = self._write(insert)
        observer = self._on_begin
        if observer is not None:
            try:
                observer(request.request_id, entry_id)
            except Exception:
                log.exception("journal %s: the observer of entry %d failed", self.where,
                              entry_id)
        return entry_id

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
        return self.apply(
            self.recorded(entry_id, *events, result=result, by=by, who=who, note=note,
                          receipt_no=receipt_no, charged_amount=charged_amount,
                          learned=learned),
            fsync=fsync,
        )

    def recorded(
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
    ) -> Recorded:
        """What :meth:`record` with these arguments writes (nothing is written yet)."""
        if not events:
            raise IllegalTransition("record: no event given")
        t = result.transaction if result is not None else None
        fill = dict(zip(_FILL, (
            receipt_no or (t.receipt_no if t else None),
            t.approval_code if t else None, t.ref_no if t else None,
            t.card_no if t else None, t.tid if t else None, t.mid if t else None,
            t.batch_no if t else None, t.stan if t else None,
            t.time.isoformat() if t and t.time else None,
            result.return_code if result is not None else None,
            self._masked_raw(entry_id, result), charged_amount,
        ), strict=True))
        return Recorded(
            entry_id, events, by.value if by is not None else None, who,
            note or (result.detail if result is not None else None),
            {k: v for k, v in fill.items() if v is not None}, learned,
        )

    def apply(self, change: Recorded, *, fsync: bool = True) -> State:
        """Write ``change`` (see :meth:`record`, which is this with its arguments)."""
        entry_id, events = change.entry_id, change.events
        fill = change.fill or {}

        def update(db: Any) -> State:
            row = db.execute(
                "SELECT state, terminal FROM entries WHERE id = ?" + self._FOR_UPDATE,
                (entry_id,),
            ).fetchone()
            if row is None:
                raise JournalError(f"journal {self.where}: no entry {entry_id}")
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
            resolved_by = change.by if final not in OPEN_STATES else None
            detail = change.note
            last = 0
            for step in path:
                final_step = step is path[-1]
                last = self._history(db, entry_id, step, at, resolved_by if final_step else None,
                                     change.who if final_step else None,
                                     detail if final_step else None)
            db.execute(
                "UPDATE entries SET state = ?, updated_at = ?, change = ?, resolved_by = "
                "COALESCE(?, resolved_by), resolved_who = COALESCE(?, resolved_who), note = "
                "COALESCE(?, note), receipt_no = COALESCE(?, receipt_no), approval_code = "
                "COALESCE(?, approval_code), ref_no = COALESCE(?, ref_no), card_no = COALESCE(?, "
                "card_no), tid = COALESCE(?, tid), mid = COALESCE(?, mid), batch_no = COALESCE(?, "
                "batch_no), stan = COALESCE(?, stan), trans_time = COALESCE(?, trans_time), "
                "return_code = COALESCE(?, return_code), raw_reply = COALESCE(?, raw_reply), "
                "charged_amount = COALESCE(?, charged_amount) WHERE id = ?",
                (final.value, at, last, resolved_by, change.who, detail,
                 *(fill.get(column) for column in _FILL), entry_id),
            )
            if change.learned:
                _upsert_profile(db, terminal, at, change.learned)
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
        ids = [row[0] for row in self._read(
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
        rows = self._read(
            f"SELECT {', '.join(_PROFILE_COLUMNS)} FROM terminals WHERE terminal = ?",
            (terminal,),
        )
        if not rows:
            return TerminalProfile(terminal)
        mark, mark_at, valid, echoes, offset, tid, serial = rows[0]
        return TerminalProfile(
            terminal, mark=mark, mark_at=_parse_time(mark_at), mark_valid=bool(valid),
            echoes=None if echoes is None else bool(echoes), clock_offset=offset,
            tid=tid, pos_serial=serial,
        )

    # --- reader ---------------------------------------------------------------------

    def _select(self, where: str = "", params: tuple[Any, ...] = (), tail: str = "") -> list[Entry]:
        sql = f"SELECT {_COLUMNS} FROM entries {('WHERE ' + where) if where else ''} {tail}"
        return [_entry(row) for row in self._read(sql, params)]

    @contextlib.contextmanager
    def _snapshot(self) -> Iterator[Any]:
        """One consistent view for several reads (WAL: writers go on meanwhile)."""
        with self._lock:
            try:
                self._db.execute("BEGIN")
                try:
                    yield self._db
                finally:
                    self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise JournalError(f"journal {self.where}: read failed ({exc})") from exc

    def count(self, selection: Selection | None = None, *, at_most: int | None = None) -> int:
        """How many entries ``selection`` (default: all) holds.

        With ``at_most``, counting stops after ``at_most + 1``: a result above
        ``at_most`` means "more than ``at_most``".
        """
        query = _count_sql(selection or Selection(), at_most)
        if query is None:
            return 0
        with self._snapshot() as db:
            return int(db.execute(*query).fetchone()[0])

    def page(
        self, selection: Selection | None = None, limit: int = 50, *,
        count_up_to: int | None = None,
    ) -> Page:
        """The newest ``limit`` entries of ``selection``, oldest first, and its total.

        Reads only the rows it returns, plus one index for the total (not even that
        when the page holds the whole selection). The total is exact up to
        ``count_up_to`` entries (default ``COUNT_CAP``), so a page costs the same on
        any journal; beyond, ``Page.exact`` is False.
        """
        if limit < 1:
            raise field_error("limit", "at_least", limit, min=1)
        selection = selection or Selection()
        cap = max(limit + 1, COUNT_CAP if count_up_to is None else count_up_to)
        query = _list_sql(selection, after=None, newest_first=True, limit=limit)
        if query is None:
            return Page([], 0)
        with self._snapshot() as db:
            rows = db.execute(*query).fetchall()
            total = len(rows)
            if total == limit:
                counted = _count_sql(selection, cap)
                assert counted is not None  # a selection with rows is not empty
                total = int(db.execute(*counted).fetchone()[0])
        entries = [_entry(row) for row in reversed(rows)]
        return Page(entries, min(total, cap), exact=total <= cap)

    def select(self, selection: Selection | None = None, *, chunk: int = 500) -> Iterator[Entry]:
        """Every entry of ``selection``, oldest first, read ``chunk`` rows at a time.

        Memory stays flat however large the journal: each chunk is one short query
        resuming where the last one stopped, so no read stays open between chunks
        (writers are never held up by a slow reader) and entries added meanwhile come
        at the end.
        """
        if chunk < 1:
            raise field_error("chunk", "at_least", chunk, min=1)
        selection = selection or Selection()
        after: _Key | None = None
        while True:
            query = _list_sql(selection, after=after, newest_first=False, limit=chunk)
            if query is None:
                return
            with self._snapshot() as db:
                rows = db.execute(*query).fetchall()
            yield from (_entry(row) for row in rows)
            if len(rows) < chunk:
                return
            after = (rows[-1][_CREATED_AT], rows[-1][0])

    def last_id(self) -> int:
        """The highest entry id (0 if none): no list shows a wider id."""
        with self._snapshot() as db:
            return int(db.execute("SELECT max(id) FROM entries").fetchone()[0] or 0)

    def find_request(self, request_id: str) -> tuple[int, State] | None:
        """The entry (id, state) of the command that carries ``request_id`` (the first,
        if several do); None if no such command was ever written down. One index read."""
        rows = self._read(
            "SELECT id, state FROM entries WHERE request_id = ? ORDER BY id LIMIT 1",
            (request_id,),
        )
        return (int(rows[0][0]), State(rows[0][1])) if rows else None

    def get(self, entry_id: int) -> Entry:
        """One entry by id; ``JournalError`` if there is none."""
        found = self._select("id = ?", (entry_id,))
        if not found:
            raise JournalError(f"journal {self.where}: no entry {entry_id}")
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
                # An empty list selects nothing (PostgreSQL has no empty IN list).
                clauses.append(f"{column} IN ({','.join('?' * len(listed))})" if listed
                               else "1 = 0")
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
        """Every terminal the journal has seen, sorted."""
        # Hop from one name to the next along the terminal index: a few lookups per
        # terminal, instead of reading every entry of a large journal.
        with self._snapshot() as db:
            return [r[0] for r in db.execute(
                "WITH RECURSIVE t(name) AS (SELECT min(terminal) FROM entries UNION ALL "
                "SELECT (SELECT min(terminal) FROM entries WHERE terminal > t.name) FROM t "
                "WHERE t.name IS NOT NULL) SELECT name FROM t WHERE name IS NOT NULL"
            )]

    # --- reader for a sync: changes in commit order ---------------------------------

    def journal_id(self) -> str:
        """This journal's id (``meta``): made once at creation, kept by copies and backups."""
        rows = self._read("SELECT value FROM meta WHERE key = 'journal_id'")
        if not rows:
            raise JournalError(f"journal {self.where}: it has no id (meta table)")
        return str(rows[0][0])

    def last_change(self) -> int:
        """The latest change number (0: none yet). Cheap: the max of an integer key."""
        value = self._read("SELECT max(id) FROM history")[0][0]
        return int(value) if value is not None else 0

    def change(self, change_id: int) -> Change | None:
        """The change numbered ``change_id``, if there is one."""
        rows = self._read(
            "SELECT id, entry_id, at, state, by, who, note FROM history WHERE id = ?",
            (change_id,),
        )
        return _change(rows[0]) if rows else None

    def changes_since(
        self, after: int, limit: int
    ) -> tuple[list[Change], list[tuple[Entry, int]]]:
        """The next ``limit`` changes after change number ``after``, and the entries they
        touch with each entry's own change number, from one snapshot (an entry may be
        newer than the batch: a reader then gets its newer state at once).

        Change numbers follow commit order (SQLite has one writer at a time; a
        PostgreSQL journal serialises its writes), so a reader resuming after the last
        number it saw misses nothing.
        """
        if limit < 1:
            raise field_error("limit", "at_least", limit, min=1)
        with self._snapshot() as db:
            changes = [_change(row) for row in db.execute(
                "SELECT id, entry_id, at, state, by, who, note FROM history "
                "WHERE id > ? ORDER BY id LIMIT ?", (after, limit),
            ).fetchall()]
            ids = sorted({c.entry_id for c in changes})
            rows = db.execute(
                f"SELECT {_COLUMNS}, change FROM entries "
                f"WHERE id IN ({','.join('?' * len(ids))}) ORDER BY id", ids,
            ).fetchall() if ids else []
        return changes, [(_entry(row[:-1]), int(row[-1])) for row in rows]

    def history(self, entry_id: int) -> list[dict[str, Any]]:
        """The state changes of one entry, oldest first."""
        rows = self._read(
            "SELECT at, state, by, who, note FROM history WHERE entry_id = ? ORDER BY id",
            (entry_id,),
        )
        return [dict(zip(("at", "state", "by", "who", "note"), row, strict=True)) for row in rows]


def _change(row: Any) -> Change:
    id_, entry_id, at, state, by, who, note = row
    return Change(int(id_), int(entry_id), datetime.fromisoformat(at), State(state), by, who,
                  note)


def _after_migration(db: Any, version: int) -> None:
    """What a migration to ``version`` writes besides its DDL (both backends)."""
    if version < 4:  # no meta table yet
        return
    db.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?) ON CONFLICT (key) "
               "DO UPDATE SET value = excluded.value", (str(version),))
    if version == 4:
        # A journal that existed before its id: head office knew it by its first entry.
        first = db.execute(
            "SELECT created_at, request_id FROM entries ORDER BY id LIMIT 1").fetchone()
        import uuid  # only here: a journal is created once

        made = f"{first[0]} {first[1]}" if first else str(uuid.uuid4())
        db.execute("INSERT INTO meta (key, value) VALUES ('journal_id', ?) "
                   "ON CONFLICT (key) DO NOTHING", (made,))


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
