"""Ship a store's SQLite journal to head office's PostgreSQL, once or following it.

The local journal stays the authority: the register's write-before-send never waits
on the WAN, and this module only ever reads it (read-only connection). Every state
change appends a ``history`` row whose id increases with each commit (SQLite
serialises writers), so that id is the store's change number and the cursor.

One batch = one PostgreSQL transaction: lock the site's row, read the cursor
(``sites.shipped``), read the next changes and the entries they touch from one
SQLite snapshot, upsert them, move the cursor. The cursor lives in the central
database, committed with the data it covers, so a sync killed at any moment either
shipped a batch with its cursor or neither; head office needs no access to the
store's disk, and the store's journal is never written by the sync. Upserts are
idempotent and never put an older change over a newer one, so shipping a batch twice
(a cursor restored from a backup) changes nothing.
"""

from __future__ import annotations

import random
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Self

from .._exceptions import JournalError
from ..payment.states import State
from .central import Central, CentralUnreachable, Change
from .records import Entry
from .store import _COLUMNS, SCHEMA_VERSION, Journal, _entry

__all__ = ["Backoff", "LocalJournal", "Progress", "Shipper", "follow_journal", "sync_once"]

DEFAULT_BATCH = 500


class LocalJournal:
    """A read-only view of a store's SQLite journal, in change order."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise JournalError(
                f"journal {self.path}: no such file (a journal is created by the first "
                "payment; check the path)"
            )
        try:
            self._db = self._connect()
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version < SCHEMA_VERSION:
                # The journal's own code upgrades it; after that we only read.
                self._db.close()
                Journal(self.path, create=False).close()
                self._db = self._connect()
            elif version > SCHEMA_VERSION:
                raise JournalError(
                    f"journal {self.path}: schema version {version} is newer than this "
                    f"ecrlink ({SCHEMA_VERSION}); upgrade ecrlink"
                )
        except sqlite3.Error as exc:
            raise JournalError(f"journal {self.path}: cannot open ({exc})") from exc

    def _connect(self) -> sqlite3.Connection:
        uri = self.path.resolve().as_uri() + "?mode=ro"
        return sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30)

    def close(self) -> None:
        """Close the database connection."""
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _read(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        try:
            return self._db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise JournalError(f"journal {self.path}: read failed ({exc})") from exc

    def fingerprint(self) -> str | None:
        """Which journal this is: its first entry's time and requestId (None: empty).

        Head office refuses a second journal under a site name that one already feeds.
        """
        rows = self._read("SELECT created_at, request_id FROM entries ORDER BY id LIMIT 1")
        return f"{rows[0][0]} {rows[0][1]}" if rows else None

    def last_change(self) -> int:
        """The latest change number (0: none yet). Cheap: the max of an integer key."""
        value = self._read("SELECT max(id) FROM history")[0][0]
        return int(value) if isinstance(value, int) else 0

    def change(self, change_id: int) -> Change | None:
        """The change numbered ``change_id``."""
        rows = self._read(
            "SELECT id, entry_id, at, state, by, who, note FROM history WHERE id = ?",
            (change_id,),
        )
        return _change(rows[0]) if rows else None

    def read(self, after: int, limit: int) -> tuple[list[Change], list[tuple[Entry, int]]]:
        """The next ``limit`` changes after ``after``, and the entries they touch with each
        entry's change number, from one snapshot (an entry may be newer than the batch:
        head office then gets its newer state at once)."""
        try:
            self._db.execute("BEGIN")
            try:
                changes = [_change(row) for row in self._db.execute(
                    "SELECT id, entry_id, at, state, by, who, note FROM history "
                    "WHERE id > ? ORDER BY id LIMIT ?", (after, limit),
                )]
                ids = sorted({c.entry_id for c in changes})
                rows = self._db.execute(
                    f"SELECT {_COLUMNS}, (SELECT max(h.id) FROM history h "
                    f"WHERE h.entry_id = entries.id) FROM entries "
                    f"WHERE id IN ({','.join('?' * len(ids))}) ORDER BY id", ids,
                ).fetchall() if ids else []
            finally:
                self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise JournalError(f"journal {self.path}: read failed ({exc})") from exc
        return changes, [(_entry(row[:-1]), int(row[-1])) for row in rows]


def _change(row: tuple[object, ...]) -> Change:
    id_, entry_id, at, state, by, who, note = row
    assert isinstance(id_, int) and isinstance(entry_id, int) and isinstance(at, str)
    return Change(
        id_, entry_id, datetime.fromisoformat(at), State(str(state)),
        by if isinstance(by, str) else None, who if isinstance(who, str) else None,
        note if isinstance(note, str) else None,
    )


@dataclass(slots=True)
class Progress:
    """What a sync shipped."""

    batches: int = 0
    changes: int = 0
    shipped: int = 0
    """The site's cursor at head office after the last batch."""
    entry_ids: set[int] = field(default_factory=set)
    """The entries written (one may take several batches)."""

    @property
    def entries(self) -> int:
        """How many entries were written."""
        return len(self.entry_ids)


class Shipper:
    """Ships one store's journal (``local``) to head office under ``site``."""

    def __init__(self, local: LocalJournal, site: str, *, batch: int = DEFAULT_BATCH) -> None:
        if batch < 1:
            raise ValueError("batch must be at least 1")
        self.local = local
        self.site = site
        self.batch = batch
        self.shipped: int | None = None
        """The cursor as last committed (None: not known yet)."""

    def ship_batch(self, central: Central, progress: Progress) -> bool:
        """Ship the next batch in one transaction; False when there was nothing left."""
        journal = self.local.fingerprint()
        if journal is None:
            self.shipped = 0
            return False
        with central.transaction():
            cursor = central.claim(self.site, journal)
            self._check_cursor(central, cursor)
            changes, entries = self.local.read(cursor, self.batch)
            if changes:
                central.write(self.site, entries, changes, changes[-1].id)
        self.shipped = changes[-1].id if changes else cursor
        if changes:
            progress.batches += 1
            progress.changes += len(changes)
            progress.entry_ids.update(e.id for e, _ in entries)
        progress.shipped = self.shipped
        return bool(changes)

    def _check_cursor(self, central: Central, cursor: int) -> None:
        # The same change on both sides, or the journal is not the one head office
        # followed (restored from an older backup): shipping on would skip payments.
        if cursor == 0:
            return
        here, there = self.local.change(cursor), central.change_at(self.site, cursor)
        if here is None or there is None or (here.entry_id, here.at, here.state) != (
            there.entry_id, there.at, there.state
        ):
            raise JournalError(
                f"site {self.site}: head office holds changes up to {cursor}, but this "
                f"journal's change {cursor} is {'missing' if here is None else 'different'} "
                "(a journal restored from an older copy?); nothing shipped: ask head office"
            )

    def catch_up(self, central: Central) -> Progress:
        """Ship batches until nothing is left."""
        progress = Progress()
        while self.ship_batch(central, progress):
            pass
        return progress

    def behind(self) -> bool:
        """Whether the journal has changes past the last known cursor (local query only)."""
        return self.shipped is None or self.local.last_change() > self.shipped


def sync_once(
    journal: str | Path, url: str, site: str, *, batch: int = DEFAULT_BATCH,
    connect_timeout: float = 10,
) -> Progress:
    """Ship everything not yet at head office, then return. ``JournalError`` (exit 8
    in the CLI) if the server cannot be reached or the link drops on the way."""
    with LocalJournal(journal) as local, Central.open(
        url, connect_timeout=connect_timeout
    ) as central:
        return Shipper(local, site, batch=batch).catch_up(central)


class Backoff:
    """Capped exponential delays with jitter: 0.5, 1, 2, 4 … ``cap`` seconds, each
    drawn from its upper half, so stores cut off together do not return together."""

    def __init__(self, base: float = 0.5, cap: float = 30.0, rng: random.Random | None = None):
        self.base, self.cap = base, cap
        self.failures = 0
        self._rng = rng or random.Random()

    def next(self) -> float:
        """The delay before the next attempt."""
        delay = min(self.cap, self.base * 2 ** min(self.failures, 32))
        self.failures += 1
        return self._rng.uniform(delay / 2, delay)

    def reset(self) -> None:
        """The server answered: start again from ``base``."""
        self.failures = 0


def follow_journal(
    journal: str | Path,
    url: str,
    site: str,
    *,
    batch: int = DEFAULT_BATCH,
    interval: float = 1.0,
    backoff: Backoff | None = None,
    say: Callable[[str, dict[str, object]], None] = lambda key, values: None,
    stop: threading.Event | None = None,
    connect_timeout: float = 10,
) -> None:
    """Ship, then poll the journal every ``interval`` seconds and ship what is new,
    until ``stop`` is set. While head office is unreachable, retry with ``backoff``;
    ``say(key, values)`` reports ``waiting`` (no journal yet: a new store's service may
    start before its first payment), ``unreachable`` (``error``, ``delay``),
    ``reconnected`` and ``shipped`` (``changes``, ``shipped``). Other errors end it
    (``JournalError``)."""
    stop = stop or threading.Event()
    backoff = backoff or Backoff()
    central: Central | None = None
    if not Path(journal).is_file():
        say("waiting", {})
        while not Path(journal).is_file():
            if stop.wait(interval):
                return
    with LocalJournal(journal) as local:
        shipper = Shipper(local, site, batch=batch)
        try:
            while not stop.is_set():
                try:
                    if shipper.behind():
                        if central is None:
                            central = Central.open(url, connect_timeout=connect_timeout)
                            if backoff.failures:
                                say("reconnected", {})
                            backoff.reset()
                        progress = shipper.catch_up(central)
                        if progress.changes:
                            say("shipped", {"changes": progress.changes,
                                            "shipped": progress.shipped})
                    stop.wait(interval)
                except CentralUnreachable as exc:
                    if central is not None:
                        central.close()
                        central = None
                    delay = backoff.next()
                    say("unreachable", {"error": str(exc), "delay": delay})
                    stop.wait(delay)
        finally:
            if central is not None:
                central.close()
