"""Chains (issue 13) on a real PostgreSQL server, each beside its baseline, in one run.

Starts its own throwaway PostgreSQL (``tests/pgserver.py``: initdb/pg_ctl in a temporary
folder, 127.0.0.1, a free port; ``fsync`` on here, as a store server would run) and
stops it at the end, even on error. Everything lives under one temporary folder with a
private ``ECRLINK_HOME``.

1. A journaled sale, PostgreSQL primary journal vs SQLite vs no journal, on an instant
   simulator over HTTP, in interleaved rounds: median and p95 ms per sale, the ratio
   PG/SQLite, and transactions per sale (PostgreSQL: ``xact_commit`` of the journal's
   own database, from a separate pass; SQLite: its COMMITs, as ``bench_journal.py``).
2. Sync throughput: a day of 20 stores x 5 counters (``--payments``, default 100,000;
   three changes each: pending, sent, final), journals bulk-built in the real schema,
   shipped one store after another with ``ecrlink.journal.sync.sync_once``.
3. Lag under live traffic: one store selling ``--rate`` sales/s for ``--duration``
   seconds while ``ecrlink journal sync --follow`` runs as a subprocess, once with its
   default ``--interval`` and once per ``--intervals`` value; per sale, from the answer
   recorded locally to the central row in the same state (central polled every 10 ms).

    python bench/bench_chains.py [--sales 300] [--rounds 5] [--payments 100000]
                                 [--rate 4] [--duration 20] [--intervals 0.1]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from ecrlink import Terminal
from ecrlink.journal import Journal
from ecrlink.journal.sync import sync_once
from ecrlink.simulator import Simulator

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from pgserver import PgServer, find_bindir

STORES, COUNTERS = 20, 5
STATES = ["approved"] * 92 + ["declined"] * 6 + ["canceled"] * 2
ECRLINK = [sys.executable, "-m", "ecrlink"]


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of ``values``, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


# 1. A journaled sale ------------------------------------------------------------------

def pg_commits(server: PgServer, database: str) -> tuple[int, int]:
    """``xact_commit`` of ``database``, read from another database (so not counted),
    once no backend is left on it (a backend flushes its counts when it exits); and
    the cluster's next transaction id (only a transaction that writes takes one)."""
    with psycopg.connect(server.url(), autocommit=True) as conn:
        for _ in range(200):
            busy = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
                                (database,)).fetchone()
            if busy is not None and busy[0] == 0:
                break
            time.sleep(0.05)
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(
            "SELECT xact_commit, pg_snapshot_xmax(pg_current_snapshot())::text::bigint "
            "FROM pg_stat_database WHERE datname = %s", (database,)).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def pg_commits_per_sale(
    server: PgServer, url: str, sim_url: str, sales: int
) -> tuple[float, float]:
    """Transactions per sale on the PostgreSQL journal, all and those that wrote: a
    terminal opened and closed with ``sales`` sales, minus one with none (its set-up)."""
    database = url.rsplit("/", 1)[1]

    def delta(count: int) -> tuple[int, int]:
        before = pg_commits(server, database)
        pos = Terminal(sim_url, journal=url)
        for i in range(count):
            assert pos.sale(1000 + i * 1000).approved
        pos.close()
        assert pos.journal is not None
        pos.journal.close()  # Terminal.close() leaves the journal open
        after = pg_commits(server, database)
        return after[0] - before[0], after[1] - before[1]

    (all_n, writes_n), (all_0, writes_0) = delta(sales), delta(0)
    return (all_n - all_0) / sales, (writes_n - writes_0) / sales


def bench_sale(server: PgServer, folder: Path, sales: int, rounds: int) -> list[str]:
    per_round = max(1, sales // rounds)
    pg_url = server.create_database()
    out: list[str] = []
    with Simulator(http=("127.0.0.1", 0)) as sim:
        lite = Journal(folder / "sale.sqlite3")
        lite_commits = 0

        def count(statement: str) -> None:
            nonlocal lite_commits
            lite_commits += statement.strip().upper() == "COMMIT"

        lite._db.set_trace_callback(count)  # the only way to see SQLite's commits
        pos = {
            "no journal": Terminal(sim.http_url, journal=False),
            "SQLite journal": Terminal(sim.http_url, journal=lite),
            "PostgreSQL journal": Terminal(sim.http_url, journal=pg_url),
        }
        for name, terminal in pos.items():  # warm up: connections, first statements
            for _ in range(5):
                assert terminal.sale(1000).approved, name
        times: dict[str, list[float]] = {name: [] for name in pos}
        lite_before = lite_commits
        for _ in range(rounds):
            for name, terminal in pos.items():
                for i in range(per_round):
                    start = time.perf_counter()
                    assert terminal.sale(1000 + i * 1000).approved, name
                    times[name].append(time.perf_counter() - start)
        lite_per_sale = (lite_commits - lite_before) / (per_round * rounds)
        for terminal in pos.values():
            terminal.close()
            if terminal.journal is not None:
                terminal.journal.close()
        pg_all, pg_writes = pg_commits_per_sale(server, pg_url, sim.http_url, min(100, sales))
    medians = {name: statistics.median(t) * 1e3 for name, t in times.items()}
    out.append(f"1. journaled sale: {per_round} x {rounds} rounds each, interleaved, "
               "instant simulator over HTTP, fsync on")
    out.append(f"   {'':22} {'median ms':>10} {'p95 ms':>8} {'commits/sale':>13} "
               f"{'all tx/sale':>12}")
    commits = {"no journal": ("-", "-"), "SQLite journal": (f"{lite_per_sale:.2f}", "-"),
               "PostgreSQL journal": (f"{pg_writes:.2f}", f"{pg_all:.2f}")}
    for name, t in times.items():
        out.append(f"   {name:22} {medians[name]:10.3f} {pct(t, 0.95) * 1e3:8.3f} "
                   f"{commits[name][0]:>13} {commits[name][1]:>12}")
    out.append("   (commits: transactions that wrote; all tx: PostgreSQL's xact_commit, "
               "reads and lock calls included)")
    out.append(f"   ratio PostgreSQL / SQLite (median): "
               f"{medians['PostgreSQL journal'] / medians['SQLite journal']:.2f}x")
    return out


# 2. Sync throughput -------------------------------------------------------------------

def stamp(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def store_rows(site: int, count: int, day: datetime) -> Iterator[
        tuple[tuple[Any, ...], list[tuple[Any, ...]]]]:
    """``count`` sales over one day at one store's 5 counters, with their 3 changes."""
    rng = random.Random(site)
    step = 86_400_000_000 // max(1, count)
    change = 0
    for i in range(count):
        at = day + timedelta(microseconds=i * step)
        state = rng.choice(STATES)
        done = state != "canceled"
        counter = i % COUNTERS
        created, sent, final = stamp(at), stamp(at + timedelta(milliseconds=5)), stamp(
            at + timedelta(seconds=12))
        entry_id = i + 1
        entry = (entry_id, f"http://192.168.1.{50 + counter}:80", "sale", state,
                 f"s{site:02d}rq{i:08d}", f"LANE{counter + 1}", 10_000 + 1_000 * (i % 500),
                 f"HD{i:07d}", created, final, f"{i % 1_000_000:06d}" if done else None,
                 "970436******1234" if state == "approved" else None,
                 "00" if state == "approved" else ("51" if state == "declined" else None),
                 f"000000{site:09d}", f"3100{site:02d}{counter:02d}", change + 3)
        history = [(change + 1, entry_id, created, "pending", None),
                   (change + 2, entry_id, sent, "sent", None),
                   (change + 3, entry_id, final, state, "reply")]
        change += 3
        yield entry, history


def build_store(path: Path, site: int, count: int, day: datetime) -> None:
    """A store journal of ``count`` sales in the real schema (made by ``Journal``; rows
    inserted raw in bulk, as ``bench_journal_list.py`` does)."""
    Journal(path).close()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=OFF")
    db.execute("PRAGMA synchronous=OFF")
    indexes = db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND "
                         "tbl_name IN ('entries', 'history') AND sql IS NOT NULL").fetchall()
    for name, _ in indexes:
        db.execute(f"DROP INDEX {name}")
    db.execute("BEGIN")
    entries: list[tuple[Any, ...]] = []
    history: list[tuple[Any, ...]] = []
    for entry, changes in store_rows(site, count, day):
        entries.append(entry)
        history.extend(changes)
    db.executemany(
        "INSERT INTO entries (id, terminal, command, state, request_id, client_id, amount, "
        "f3, created_at, updated_at, receipt_no, card_no, return_code, mid, tid, change) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", entries)
    db.executemany("INSERT INTO history (id, entry_id, at, state, by) VALUES (?, ?, ?, ?, ?)",
                   history)
    for _, sql in indexes:
        db.execute(sql)
    db.execute("COMMIT")
    db.execute("PRAGMA journal_mode=WAL")  # as Journal keeps it
    db.close()


def bench_sync(server: PgServer, folder: Path, payments: int) -> list[str]:
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    per_store = [payments // STORES + (i < payments % STORES) for i in range(STORES)]
    began = time.perf_counter()
    paths = []
    for site, count in enumerate(per_store):
        path = folder / f"store{site:02d}.sqlite3"
        build_store(path, site, count, day)
        paths.append(path)
    built = time.perf_counter() - began
    url = server.create_database()
    changes = entries = batches = 0
    began = time.perf_counter()
    for site, path in enumerate(paths):
        progress = sync_once(path, url, f"STORE{site:02d}")
        changes += progress.changes
        entries += progress.entries
        batches += progress.batches
    took = time.perf_counter() - began
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM ecrlink_chain.entries").fetchone()
    central = int(row[0]) if row else 0
    assert central == payments, (central, payments)
    return [
        f"2. sync: {payments:,} payments ({STORES} stores x {COUNTERS} counters, "
        f"3 changes each), journals built in {built:.1f} s",
        f"   shipped {changes:,} changes / {entries:,} entries in {batches} batches "
        f"(sync_once per store, one after another)",
        f"   total {took:.1f} s   {changes / took:,.0f} changes/s   "
        f"{entries / took:,.0f} entries/s   central rows {central:,}",
    ]


# 3. Lag under live traffic ------------------------------------------------------------

def bench_lag(server: PgServer, folder: Path, rate: float, duration: float,
              interval: float | None) -> list[str]:
    url = server.create_database()
    journal = folder / f"live-{interval}.sqlite3"
    site = "LIVE01"
    recorded: dict[int, tuple[str, float]] = {}  # journal id -> (state, recorded at)
    seen: dict[int, float] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def poll() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            while not stop.is_set():
                with lock:
                    waiting = {k: v[0] for k, v in recorded.items() if k not in seen}
                if waiting:
                    try:
                        rows = conn.execute(
                            "SELECT id, state FROM ecrlink_chain.entries WHERE site = %s "
                            "AND id = ANY(%s)", (site, list(waiting))).fetchall()
                    except psycopg.errors.UndefinedTable:
                        rows = []  # the first sync has not made the schema yet
                    now = time.time()
                    with lock:
                        for id_, state in rows:
                            if waiting.get(id_) == state:
                                seen.setdefault(id_, now)
                stop.wait(0.01)

    with Simulator(http=("127.0.0.1", 0)) as sim:
        pos = Terminal(sim.http_url, journal=str(journal))
        assert pos.sale(1000).approved  # the journal exists before the sync starts
        command = [*ECRLINK, "journal", "sync", "--journal", str(journal), "--to", url,
                   "--site", site, "--follow"]
        if interval is not None:
            command += ["--interval", str(interval)]
        sync = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        try:
            period = 1 / rate
            start = time.perf_counter()
            n = 0
            while time.perf_counter() - start < duration:
                result = pos.sale(10_000 + 1_000 * n)
                at = time.time()  # sale() returns once the answer is committed locally
                assert result.journal_id is not None
                with lock:
                    recorded[result.journal_id] = (result.outcome.value, at)
                n += 1
                time.sleep(max(0.0, start + n * period - time.perf_counter()))
            deadline = time.time() + 30
            while time.time() < deadline:
                with lock:
                    if len(seen) == len(recorded):
                        break
                time.sleep(0.05)
        finally:
            stop.set()
            poller.join(5)
            sync.terminate()
            try:
                _, err = sync.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                sync.kill()
                _, err = sync.communicate()
            pos.close()
    lags = [(seen[k] - at) * 1e3 for k, (_, at) in recorded.items() if k in seen]
    missing = len(recorded) - len(lags)
    if not lags:
        raise SystemExit(f"no sale reached head office; sync said: {err[-500:]!r}")
    shown = "the CLI default" if interval is None else f"{interval} s"
    return [
        f"3. lag: {len(recorded)} sales at {rate:g}/s for {duration:g} s, "
        f"journal sync --follow (--interval {shown})",
        f"   local answer -> central row, same state: p50 {pct(lags, 0.5):.0f} ms   "
        f"p95 {pct(lags, 0.95):.0f} ms   max {max(lags):.0f} ms   missing {missing}",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sales", type=int, default=300, help="per contender (part 1)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--payments", type=int, default=100_000, help="part 2")
    parser.add_argument("--rate", type=float, default=4.0, help="sales/s (part 3)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds (part 3)")
    parser.add_argument("--intervals", default="0.1",
                        help="journal sync --follow --interval values to run beside the "
                        "default, comma-separated ('' for none) (part 3)")
    args = parser.parse_args()
    bindir = find_bindir()
    if bindir is None:
        raise SystemExit("no PostgreSQL binaries (initdb, pg_ctl): apt-get install postgresql")
    root = Path(tempfile.mkdtemp(prefix="ecrlink-bench-chains-"))
    # Terminals keep their lock files in $ECRLINK_HOME, the sync its config: never the
    # user's own. The subprocess inherits it.
    os.environ["ECRLINK_HOME"] = str(root / "home")
    os.environ.pop("ECRLINK_JOURNAL", None)
    server = PgServer(bindir, fsync=True)
    try:
        server.start()
        print(f"PostgreSQL {bindir.parent.name} on 127.0.0.1:{server.port}, "
              f"fsync on, synchronous_commit on; {os.cpu_count()} cores")
        for section in (
            lambda: bench_sale(server, root, args.sales, args.rounds),
            lambda: bench_sync(server, root, args.payments),
            *(
                lambda interval=interval: bench_lag(server, root, args.rate, args.duration,
                                                    interval)
                for interval in [None, *(float(v) for v in args.intervals.split(",") if v)]
            ),
        ):
            began = time.perf_counter()
            lines = section()
            print("\n".join(lines) + f"\n   ({time.perf_counter() - began:.0f} s)", flush=True)
    finally:
        server.destroy()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
