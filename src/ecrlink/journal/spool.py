"""Answers a PostgreSQL journal could not take, kept on this PC until it can.

When the database goes away after the terminal answered, the caller still gets the
answer (``Result.unrecorded`` says why it is not in the journal); its state change is
kept here, a row per answer in a small SQLite file in the data directory, committed
with an fsync (it may be the only copy: the terminal remembers only its last
transaction). ``PgJournal`` writes them back through the journal's own ``apply`` the
next time it is opened or used. Rows are keyed on the journal's id, so one PC may use
several PostgreSQL journals.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

from .._exceptions import JournalError
from .store import Recorded

__all__ = ["Spool"]


class Spool:
    """The spool file at ``path`` (created on first use, owner-only). Thread-safe."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                       timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS spool (id INTEGER PRIMARY KEY, journal TEXT NOT "
                "NULL, entry_id INTEGER NOT NULL, change TEXT NOT NULL, at TEXT NOT NULL, "
                "failed TEXT)")
            self._db.execute("CREATE INDEX IF NOT EXISTS spool_journal ON spool (journal, id)")
        except (OSError, sqlite3.Error) as exc:
            raise JournalError(f"spool {path}: cannot open ({exc})") from exc

    def keep(self, journal: str, change: Recorded) -> None:
        """Keep ``change`` for ``journal`` (durably: the commit waits for the disk)."""
        with self._lock:
            try:
                self._db.execute(
                    "INSERT INTO spool (journal, entry_id, change, at) VALUES (?, ?, ?, ?)",
                    (journal, change.entry_id, change.to_json(),
                     datetime.now(UTC).isoformat(timespec="microseconds")))
            except sqlite3.Error as exc:
                raise JournalError(f"spool {self.path}: write failed ({exc})") from exc

    def holds(self, journal: str) -> bool:
        """Whether anything waits for ``journal`` (one indexed lookup: every command asks)."""
        with self._lock:
            try:
                return self._db.execute(
                    "SELECT 1 FROM spool WHERE journal = ? AND failed IS NULL LIMIT 1",
                    (journal,)).fetchone() is not None
            except sqlite3.Error as exc:
                raise JournalError(f"spool {self.path}: read failed ({exc})") from exc

    def pending(self, journal: str) -> list[tuple[int, Recorded]]:
        """What waits for ``journal``, oldest first: (key, change)."""
        with self._lock:
            try:
                rows = self._db.execute(
                    "SELECT id, change FROM spool WHERE journal = ? AND failed IS NULL "
                    "ORDER BY id", (journal,)
                ).fetchall()
            except sqlite3.Error as exc:
                raise JournalError(f"spool {self.path}: read failed ({exc})") from exc
        return [(int(key), Recorded.from_json(text)) for key, text in rows]

    def done(self, key: int) -> None:
        """Forget the change ``key``: it is in the journal (or was overtaken)."""
        with self._lock:
            try:
                self._db.execute("DELETE FROM spool WHERE id = ?", (key,))
            except sqlite3.Error as exc:
                raise JournalError(f"spool {self.path}: write failed ({exc})") from exc

    def failed(self, key: int, why: str) -> None:
        """Keep the change ``key`` but stop trying it: the journal refused it for good
        (``why``); it stays in the file for whoever investigates."""
        with self._lock:
            try:
                self._db.execute("UPDATE spool SET failed = ? WHERE id = ?", (why, key))
            except sqlite3.Error as exc:
                raise JournalError(f"spool {self.path}: write failed ({exc})") from exc

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._db.close()
