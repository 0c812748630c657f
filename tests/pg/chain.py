"""Helpers for the chain tests: stores that sell on the real simulator, and the
comparison of a store's journal with what head office holds."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from ecrlink import Terminal
from ecrlink.journal import Entry, Journal
from ecrlink.journal.central import Central, Change
from ecrlink.simulator import Simulator

# Approved, declined 51, canceled, approved but the reply lost (in doubt, then proven
# by last trans: three commits), and the rest approved.
OUTCOMES = (10_000, 20_051, 30_999, 40_997, 50_000, 60_000)


def sell(pos: Terminal, n: int, start: int = 0) -> None:
    """``n`` sales of varied outcomes, each its own invoice."""
    for i in range(start, start + n):
        pos.sale(OUTCOMES[i % len(OUTCOMES)] + 1000 * (i % 7), invoice=f"HD{i:06d}")


def open_pos(url: str, journal: Path, client_id: str) -> Terminal:
    """A register on terminal ``url`` journaling to ``journal``."""
    return Terminal(url, client_id=client_id, journal=journal, timeout=2.0,
                    status_timeout=1.0, recovery_timeout=6.0)


def sell_interleaved(first: str, second: str, journals: tuple[Path, Path]) -> None:
    """Two stores' registers (``QUAY1`` at each) on terminals ``first`` and ``second``:
    6 sales at the first, 7 at the second, then 3 more at the first, so the stores'
    entries interleave in time."""
    with open_pos(first, journals[0], "QUAY1") as pos:
        sell(pos, 6)
    with open_pos(second, journals[1], "QUAY1") as pos:
        sell(pos, 7)
    with open_pos(first, journals[0], "QUAY1") as pos:
        sell(pos, 3, start=6)


def local_state(path: Path) -> tuple[list[Entry], list[Change]]:
    """A store's journal: its entries and every state change, in order."""
    with Journal(path, create=False) as journal:
        entries = list(journal.entries())
        changes, _ = journal.changes_since(0, 10**9)
    return entries, changes


def central_state(url: str, site: str) -> tuple[list[Entry], list[Change], list[int]]:
    """What head office holds for ``site``: entries in id order, changes, change numbers."""
    with Central.open(url, create=False) as central:
        rows = sorted(central.entries(sites=[site]), key=lambda r: r.entry.id)
        changes = list(central.changes(site))
    return [r.entry for r in rows], changes, [r.change for r in rows]


def assert_same(journal: Path, url: str, site: str) -> int:
    """Head office holds exactly the store's journal: every entry once, in the same
    state with the same data, and every change. Returns the number of entries."""
    entries, changes = local_state(journal)
    there, their_changes, numbers = central_state(url, site)
    assert [e.id for e in there] == [e.id for e in entries], "missing or extra entries"
    for mine, theirs in zip(entries, there, strict=True):
        assert theirs == mine, f"entry {mine.id} differs"
    assert their_changes == changes
    latest: dict[int, int] = {}
    for c in changes:
        latest[c.entry_id] = c.id
    assert numbers == [latest[e.id] for e in entries]
    return len(entries)


@dataclass
class Store:
    """One shop: its own simulated terminal, its own journal, a thread selling."""

    name: str
    root: Path
    sim: Simulator = field(init=False)
    journal: Path = field(init=False)
    sold: int = 0
    errors: list[BaseException] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        self.sim = Simulator(http=("127.0.0.1", 0)).start()
        self.journal = self.root / f"{self.name}.sqlite3"

    def start_selling(self, pause: float = 0.0) -> None:
        def run() -> None:
            try:
                with open_pos(self.sim.http_url, self.journal, self.name[:20]) as pos:
                    while not self._stop.is_set():
                        sell(pos, 1, self.sold)
                        self.sold += 1
                        self._stop.wait(pause)
            except BaseException as exc:  # surfaced by stop_selling
                self.errors.append(exc)

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def stop_selling(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        assert not self.errors, self.errors

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.sim.stop()
