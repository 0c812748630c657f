"""journal sync against a real PostgreSQL server: what head office gets is exactly the
store's journal, shipped idempotently, never older over newer, one journal per site."""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecrlink import JournalError
from ecrlink.journal import Entry, Journal, ResolvedBy, State
from ecrlink.journal.central import Central
from ecrlink.journal.sync import LocalJournal, Progress, Shipper, sync_once
from ecrlink.payment.states import Event
from ecrlink.protocol import Sale
from ecrlink.simulator import Simulator

from .chain import assert_same, local_state, open_pos, sell


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(http=("127.0.0.1", 0), no_answer_timeout=0.4) as simulator:
        yield simulator


@pytest.fixture
def journal(sim: Simulator, tmp_path: Path) -> Path:
    """A store's journal with 12 sales of every outcome (some proven by last trans)."""
    path = tmp_path / "store.sqlite3"
    with open_pos(sim.http_url, path, "QUAY1") as pos:
        sell(pos, 12)
    return path


def test_head_office_gets_every_entry_and_change(journal: Path, central_url: str) -> None:
    progress = sync_once(journal, central_url, "STORE42", batch=7)
    entries, changes = local_state(journal)
    states = {e.state for e in entries}
    assert {State.APPROVED, State.DECLINED, State.CANCELED} <= states
    assert any(e.resolved_by is ResolvedBy.LAST_TRANS for e in entries)
    assert progress.changes == len(changes) and progress.shipped == changes[-1].id
    assert progress.batches == -(-len(changes) // 7)
    assert assert_same(journal, central_url, "STORE42") == 12


def test_shipping_again_changes_nothing(journal: Path, central_url: str) -> None:
    sync_once(journal, central_url, "STORE42")
    again = sync_once(journal, central_url, "STORE42")
    assert (again.changes, again.batches) == (0, 0)
    # Head office's cursor restored from an old backup: everything comes again, and
    # the upserts leave one row per entry, the same rows.
    with psycopg.connect(central_url, autocommit=True) as conn:
        conn.execute("UPDATE ecrlink_chain.sites SET shipped = 0")
    replay = sync_once(journal, central_url, "STORE42", batch=5)
    assert replay.changes == len(local_state(journal)[1])
    assert_same(journal, central_url, "STORE42")
    with psycopg.connect(central_url) as conn:
        assert conn.execute(
            "SELECT count(*), count(DISTINCT request_id) FROM ecrlink_chain.entries"
        ).fetchone() == (12, 12)


def test_a_later_state_change_updates_the_central_row(
    journal: Path, central_url: str
) -> None:
    with Journal(journal) as j:
        sale = Sale.build(5_000, request_id="r-doubt", client_id="QUAY1")
        entry_id = j.begin("http://127.0.0.1:1", sale)
        j.record(entry_id, Event.SENT, Event.LOST, note="reply lost")
    sync_once(journal, central_url, "STORE42")
    with Central.open(central_url, create=False) as central:
        (row,) = [r for r in central.entries(sites=["STORE42"]) if r.entry.id == entry_id]
    assert row.entry.state is State.IN_DOUBT
    with Journal(journal) as j:
        j.resolve(entry_id, State.APPROVED, by=ResolvedBy.CASHIER, who="lan",
                  receipt_no="000123")
    sync_once(journal, central_url, "STORE42")
    with Central.open(central_url, create=False) as central:
        (after,) = [r for r in central.entries(sites=["STORE42"]) if r.entry.id == entry_id]
        history = central.history("STORE42", entry_id)
    assert after.entry.state is State.APPROVED and after.change > row.change
    assert (after.entry.resolved_by, after.entry.resolved_who) == (ResolvedBy.CASHIER, "lan")
    assert [c.state for c in history] == [
        State.PENDING, State.SENT, State.IN_DOUBT, State.APPROVED
    ]
    assert_same(journal, central_url, "STORE42")


# Each version of one entry: (its change number, its state). Written to head office in
# any order, any number of times, the row ends as the newest version.
_SITES = itertools.count()
_VERSIONS = [(1, State.PENDING), (3, State.IN_DOUBT), (4, State.APPROVED)]


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order=st.lists(st.sampled_from(_VERSIONS), min_size=1, max_size=8))
def test_an_older_change_never_overwrites_a_newer_one(
    central_url: str, order: list[tuple[int, State]]
) -> None:
    now = datetime.now(UTC)
    site = f"S{next(_SITES)}"
    with Central.open(central_url) as central:
        for change, state in order:
            entry = _entry(state, now + timedelta(seconds=change))
            with central.transaction():
                central.claim(site, "test journal")
                central.write(site, [(entry, change)], [], change)
        (row,) = list(central.entries(sites=[site]))
    newest = max(order, key=lambda v: v[0])
    assert (row.change, row.entry.state) == newest
    assert row.entry.updated_at == now + timedelta(seconds=newest[0])


def _entry(state: State, at: datetime) -> Entry:
    return Entry(id=1, terminal="http://127.0.0.1:8080", command="sale", state=state,
                 request_id="r1", client_id="QUAY1", amount=10_000,
                 fields=("", "", "HD1", "", ""), created_at=at - timedelta(hours=1),
                 updated_at=at)


def test_the_same_terminal_name_in_two_stores_is_two_terminals(
    sim: Simulator, tmp_path: Path, central_url: str
) -> None:
    for store in ("STORE1", "STORE2"):
        path = tmp_path / f"{store}.sqlite3"
        with open_pos(sim.http_url, path, store) as pos:
            sell(pos, 3)
        sync_once(path, central_url, store)
    with Central.open(central_url, create=False) as central:
        rows = list(central.entries(terminal=sim.http_url))
        one = list(central.entries(sites=["STORE1"], terminal=sim.http_url))
    assert len(rows) == 6 and {r.site for r in rows} == {"STORE1", "STORE2"}
    assert [r.entry.id for r in one] == [1, 2, 3]
    for store in ("STORE1", "STORE2"):
        assert_same(tmp_path / f"{store}.sqlite3", central_url, store)


def test_a_second_journal_under_a_site_name_is_refused(
    sim: Simulator, journal: Path, tmp_path: Path, central_url: str
) -> None:
    sync_once(journal, central_url, "STORE42")
    other = tmp_path / "other.sqlite3"
    with open_pos(sim.http_url, other, "QUAY2") as pos:
        sell(pos, 2)
    with pytest.raises(JournalError, match="another journal under this name"):
        sync_once(other, central_url, "STORE42")
    assert_same(journal, central_url, "STORE42")


def test_a_journal_restored_from_an_older_copy_is_refused(
    sim: Simulator, journal: Path, tmp_path: Path, central_url: str
) -> None:
    backup = tmp_path / "backup.sqlite3"
    with Journal(journal) as j:  # a consistent copy of the WAL journal
        j._db.execute(f"VACUUM INTO '{backup}'")
    with open_pos(sim.http_url, journal, "QUAY1") as pos:
        sell(pos, 3, start=12)
    sync_once(journal, central_url, "STORE42")
    for suffix in ("-wal", "-shm"):
        Path(f"{journal}{suffix}").unlink(missing_ok=True)
    os.replace(backup, journal)
    with open_pos(sim.http_url, journal, "QUAY1") as pos:  # new payments reuse change numbers
        sell(pos, 4, start=20)
    with pytest.raises(JournalError, match="restored from an older copy"):
        sync_once(journal, central_url, "STORE42")


def test_sync_reads_the_journal_without_writing_it(journal: Path, central_url: str) -> None:
    files = [journal, Path(f"{journal}-wal")]

    def contents() -> list[tuple[bytes, int]]:
        return [(f.read_bytes(), f.stat().st_mtime_ns) if f.exists() else (b"", 0)
                for f in files]

    before = contents()
    sync_once(journal, central_url, "STORE42")
    assert contents() == before


def test_an_empty_journal_ships_nothing(tmp_path: Path, central_url: str) -> None:
    path = tmp_path / "empty.sqlite3"
    Journal(path).close()
    assert sync_once(path, central_url, "STORE42") == Progress()
    with Central.open(central_url, create=False) as central:
        assert central.sites() == []


def test_a_batch_is_all_or_nothing(journal: Path, central_url: str) -> None:
    """A batch that fails halfway leaves neither rows nor a moved cursor."""
    with LocalJournal(journal) as local, Central.open(central_url) as central:
        shipper = Shipper(local, "STORE42", batch=4)
        shipper.ship_batch(central, Progress())
        with pytest.raises(JournalError), central.transaction():
            cursor = central.claim("STORE42", local.fingerprint() or "")
            changes, entries = local.read(cursor, 4)
            central.write("STORE42", entries, changes, changes[-1].id)
            central.conn.execute("SELECT 1/0")
        assert central.sites()[0].shipped == 4
        assert [c.id for c in central.changes("STORE42")] == [1, 2, 3, 4]


def test_head_office_reads_without_creating_anything(central_url: str) -> None:
    with pytest.raises(JournalError, match="no ecrlink chain data"):
        Central.open(central_url, create=False)


def test_a_store_role_needs_only_the_documented_grants(
    journal: Path, central_url: str
) -> None:
    """docs/chains.md: head office makes the schema; a store's role gets USAGE and
    SELECT/INSERT/UPDATE, an accountant's role SELECT only."""
    Central.open(central_url).close()
    with psycopg.connect(central_url, autocommit=True) as admin:
        for statement in (
            "CREATE ROLE store42 LOGIN",
            "GRANT USAGE ON SCHEMA ecrlink_chain TO store42",
            "GRANT SELECT ON ecrlink_chain.meta TO store42",
            "GRANT SELECT, INSERT, UPDATE ON ecrlink_chain.sites, ecrlink_chain.entries, "
            "ecrlink_chain.history TO store42",
            "CREATE ROLE accounting LOGIN",
            "GRANT USAGE ON SCHEMA ecrlink_chain TO accounting",
            "GRANT SELECT ON ALL TABLES IN SCHEMA ecrlink_chain TO accounting",
        ):
            admin.execute(statement)
    try:
        store_url = central_url.replace("postgres@", "store42@")
        sync_once(journal, store_url, "STORE42")
        assert_same(journal, store_url, "STORE42")
        reader_url = central_url.replace("postgres@", "accounting@")
        with Central.open(reader_url, create=False) as central:
            assert len(list(central.entries())) == 12
        with pytest.raises(JournalError, match="permission denied"):
            sync_once(journal, reader_url, "STORE43")
    finally:
        with psycopg.connect(central_url, autocommit=True) as admin:
            admin.execute("DROP OWNED BY store42, accounting")
            admin.execute("DROP ROLE store42, accounting")


def test_two_syncs_of_one_store_at_once_ship_each_change_once(
    journal: Path, central_url: str
) -> None:
    """A cron job and a --follow service by mistake: the site's row lock takes turns."""
    Central.open(central_url).close()
    results: list[Progress] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(sync_once(journal, central_url, "STORE42", batch=1))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    assert sum(p.changes for p in results) == len(local_state(journal)[1])
    assert_same(journal, central_url, "STORE42")
