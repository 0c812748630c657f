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
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

from .._exceptions import JournalError
from .central import Central, CentralUnreachable, Change
from .records import Entry
from .store import Journal

__all__ = ["Backoff", "LocalJournal", "Progress", "Shipper", "follow_journal", "sync_once"]

DEFAULT_BATCH = 500


class LocalJournal:
    """A read-only view of a store's journal, in change order (its public reader)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._journal = Journal(self.path, readonly=True)

    def close(self) -> None:
        """Close the database connection."""
        self._journal.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def fingerprint(self) -> str | None:
        """Which journal this is: its id (None while it has no change to ship).

        Head office refuses a second journal under a site name that one already feeds.
        """
        return self._journal.journal_id() if self.last_change() else None

    def last_change(self) -> int:
        """The latest change number (0: none yet). Cheap: the max of an integer key."""
        return self._journal.last_change()

    def change(self, change_id: int) -> Change | None:
        """The change numbered ``change_id``."""
        return self._journal.change(change_id)

    def read(self, after: int, limit: int) -> tuple[list[Change], list[tuple[Entry, int]]]:
        """The next ``limit`` changes after ``after``, and the entries they touch with each
        entry's change number, from one snapshot (``Journal.changes_since``)."""
        return self._journal.changes_since(after, limit)


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
    caught_up: Callable[[int], None] | None = None,
) -> None:
    """Ship, then poll the journal every ``interval`` seconds and ship what is new,
    until ``stop`` is set. While head office is unreachable, retry with ``backoff``;
    ``say(key, values)`` reports ``waiting`` (no journal yet: a new store's service may
    start before its first payment), ``unreachable`` (``error``, ``delay``),
    ``reconnected`` and ``shipped`` (``changes``, ``shipped``). ``caught_up(shipped)``
    is called after each catch-up, even of nothing (head office holds every change up
    to ``shipped``): ``ecrlink serve`` shows it. Other errors end it (``JournalError``)."""
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
                        if caught_up is not None:
                            caught_up(progress.shipped)
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
