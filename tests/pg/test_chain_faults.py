"""Faults that prove the chain sync: head office's server down while two stores sell,
and the sync process killed with SIGKILL at random moments. Afterwards head office
holds exactly the stores' journals: 0 missing, 0 duplicated, the same states.

Real parts throughout: a real PostgreSQL server, two simulated stores selling through
``ecrlink.Terminal`` into their own SQLite journals, and ``ecrlink journal sync`` as a
real process. The outage lasts 12 s here (a real one lasts minutes or hours: nothing
in the sync depends on how long; the backoff is capped at 1 s here, 30 s by default).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from ecrlink.journal.central import Central
from ecrlink.journal.sync import LocalJournal

from ..pgserver import PgServer
from .chain import Store, assert_same

OUTAGE = 12.0
KILLS = 56


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[list[Store]]:
    shops = [Store("STORE1", tmp_path), Store("STORE2", tmp_path)]
    try:
        yield shops
    finally:
        for shop in shops:
            shop.close()


def _sync(store: Store, url: str, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "ecrlink", "journal", "sync", "--to", url, "--site",
             store.name, "--journal", str(store.journal), "--lang", "en", *extra],
            stdout=out, stderr=out, stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONIOENCODING": "utf-8"},
        )


def _wait(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s: {what}")
        time.sleep(0.1)


def _journals_started(stores: list[Store]) -> None:
    def ready() -> bool:
        if not all(s.journal.exists() for s in stores):
            return False
        return all(LocalJournal(s.journal).last_change() > 0 for s in stores)

    _wait(ready, 30, "first sales journaled")


def _caught_up(stores: list[Store], url: str) -> bool:
    try:
        for store in stores:
            assert_same(store.journal, url, store.name)
    except (AssertionError, psycopg.Error):
        return False
    return True


def _no_duplicates(url: str) -> None:
    with psycopg.connect(url) as conn:
        rows, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT (site, request_id)) FROM ecrlink_chain.entries"
        ).fetchone() or (0, 0)
    assert rows == distinct


@pytest.mark.slow
def test_head_office_down_while_two_stores_sell(
    pg_server: PgServer, central_url: str, stores: list[Store], tmp_path: Path
) -> None:
    for store in stores:
        store.start_selling(pause=0.02)
    _journals_started(stores)
    logs = [tmp_path / f"{s.name}.log" for s in stores]
    syncs = [
        _sync(s, central_url, log, "--follow", "--interval", "0.2", "--retry-max", "1",
              "--batch", "50")
        for s, log in zip(stores, logs, strict=True)
    ]
    try:
        time.sleep(2)
        pg_server.stop("immediate")  # the link drops: clients cut off mid-transaction
        sold_before = sum(s.sold for s in stores)
        try:
            time.sleep(OUTAGE)
            sold_during = sum(s.sold for s in stores) - sold_before
        finally:
            pg_server.start()
        restarted = time.monotonic()
        time.sleep(2)
        for store in stores:
            store.stop_selling()
        assert sold_during >= 20, "sales must go on while head office is down"
        _wait(lambda: _caught_up(stores, central_url), 60, "sync caught up after restart")
        print(f"{sold_during} sales during a {OUTAGE:.0f} s outage; head office equal to "
              f"both journals {time.monotonic() - restarted:.1f} s after the restart "
              "(2 s of it still selling)")
        assert all(p.poll() is None for p in syncs), "the syncs kept running"
    finally:
        for proc in syncs:
            proc.send_signal(signal.SIGTERM)
        for proc in syncs:
            proc.wait(timeout=15)
    for store in stores:
        assert_same(store.journal, central_url, store.name)
    _no_duplicates(central_url)
    for log in logs:
        text = log.read_text(encoding="utf-8")
        assert "head office unreachable" in text and "retrying in" in text, text
        assert "head office reachable again; catching up." in text, text
        assert "Traceback" not in text, text


@pytest.mark.slow
def test_sync_killed_at_random_moments(
    central_url: str, stores: list[Store], tmp_path: Path
) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    for store in stores:
        store.start_selling(pause=0.03)
    _journals_started(stores)
    log = tmp_path / "sync.log"
    behind_at_kill = 0
    Central.open(central_url).close()  # the schema, so the cursor can be watched
    with psycopg.connect(central_url, autocommit=True) as conn:

        def shipped(site: str) -> int:
            row = conn.execute(
                "SELECT shipped FROM ecrlink_chain.sites WHERE site = %s", (site,)
            ).fetchone()
            return int(row[0]) if row else 0

        def rollbacks() -> int:
            row = conn.execute(
                "SELECT xact_rollback FROM pg_stat_database WHERE datname = current_database()"
            ).fetchone()
            return int(row[0]) if row else 0

        rollbacks_before = rollbacks()
        kills = 0
        while kills < KILLS:
            # Both stores' syncs run at once; each is killed at its own random moment:
            # once it is shipping (or after a random while if it has not begun).
            running = []
            for store in stores:
                proc = _sync(store, central_url, log, "--follow", "--interval", "0.05",
                             "--batch", str(rng.choice([1, 2, 3, 7])))
                running.append((store, proc, shipped(store.name),
                                 time.monotonic() + rng.uniform(0.3, 4.0), rng.uniform(0, 0.08)))
            for store, proc, start, deadline, extra in running:
                while shipped(store.name) == start and time.monotonic() < deadline:
                    time.sleep(0.005)
                time.sleep(extra)
                assert proc.poll() is None, f"seed {seed}: a sync ended before its kill"
                proc.kill()
                proc.wait(timeout=10)
                assert proc.returncode == -signal.SIGKILL
                kills += 1
                with LocalJournal(store.journal) as local:
                    behind_at_kill += local.last_change() > shipped(store.name)
        for store in stores:
            store.stop_selling()
        # Aborted transactions reach the statistics when each backend exits.
        time.sleep(1.0)
        aborted = rollbacks() - rollbacks_before
    for store in stores:
        done = _sync(store, central_url, log)
        assert done.wait(timeout=60) == 0, log.read_text(encoding="utf-8")
        assert_same(store.journal, central_url, store.name)
    _no_duplicates(central_url)
    print(f"seed {seed}: {KILLS} kills, {behind_at_kill} with changes still to ship, "
          f"{aborted} transactions cut off mid-way; sold {[s.sold for s in stores]}")
    assert behind_at_kill >= KILLS // 4, f"seed {seed}: kills must land mid-catch-up"
    assert "Traceback" not in log.read_text(encoding="utf-8")
