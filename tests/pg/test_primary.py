"""A PostgreSQL primary journal: registers of one shop write to its store server.

Real parts only: the session's PostgreSQL server (stopped and restarted for the
outage faults), the real simulator, real processes for the registers.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from ecrlink import JournalError, Outcome, Terminal, TerminalBusy
from ecrlink.journal import Journal, ResolvedBy, State, open_journal
from ecrlink.journal.pg import PgJournal
from ecrlink.simulator import Simulator
from tests.pgserver import PgServer

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def primary_url(pg_server: PgServer) -> str:
    """A fresh database for the shop's journal (the server restarted if a test stopped it)."""
    pg_server.start()
    return pg_server.create_database()


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(http=("127.0.0.1", 0), no_answer_timeout=0.4) as simulator:
        yield simulator


def open_pos(url: str, journal: str | Journal, **kwargs: float) -> Terminal:
    settings = {"timeout": 1.0, "status_timeout": 0.8, "recovery_timeout": 6.0, **kwargs}
    return Terminal(url, journal=journal, **settings)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rows(url: str, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


def test_sales_approved_declined_and_in_doubt_recovered(primary_url: str, sim: Simulator) -> None:
    with open_pos(sim.http_url, primary_url) as pos:
        assert isinstance(pos.journal, PgJournal)
        approved = pos.sale(10_000, invoice="HD1")
        declined = pos.sale(25_051)
        lost = pos.sale(25_996)  # the reply is lost: in doubt, then last trans proves it
    assert approved.outcome is Outcome.APPROVED and approved.unrecorded is None
    assert (declined.outcome, declined.return_code) == (Outcome.DECLINED, "51")
    assert lost.outcome is Outcome.APPROVED
    with open_journal(primary_url, create=False) as journal:
        got = {r.request_id: journal.get(r.journal_id or 0) for r in (approved, declined, lost)}
        assert [(e.state, e.resolved_by) for e in got.values()] == [
            (State.APPROVED, ResolvedBy.REPLY), (State.DECLINED, ResolvedBy.REPLY),
            (State.APPROVED, ResolvedBy.LAST_TRANS),
        ]
        assert got[approved.request_id].receipt_no == approved.transaction.receipt_no  # type: ignore[union-attr]
        assert [h["state"] for h in journal.history(lost.journal_id or 0)] == [
            "pending", "sent", "in_doubt", "approved"]
        # one invoice, one payment: the duplicate guard reads the shared journal
        assert journal.paid_invoice("HD1", approved.transaction.time or journal.get(  # type: ignore[union-attr]
            approved.journal_id or 0).created_at) is not None
    # the pending row was written before the first byte: every sale the terminal saw is
    # in the database, under the same requestId
    ledger = {r.request_id for r in sim.ledger.transactions if r.command == "sale"}
    assert ledger == {str(r[0]) for r in _rows(
        primary_url, "SELECT request_id FROM ecrlink.entries WHERE command = 'sale'")}


def test_unreachable_before_a_sale_refuses_it_and_sends_nothing(
    pg_server: PgServer, primary_url: str, sim: Simulator
) -> None:
    # No server at all: the register cannot even open its journal.
    dead = f"postgresql://postgres@127.0.0.1:{_closed_port()}/shop"
    with pytest.raises(JournalError, match="cannot open"):
        open_pos(sim.http_url, dead)
    # The server goes away between two sales: the next one is refused before sending.
    with open_pos(sim.http_url, primary_url) as pos:
        assert pos.sale(10_000).approved
        pg_server.stop()
        try:
            with pytest.raises(JournalError):
                pos.sale(20_000)
            assert [r.amount for r in sim.ledger.transactions] == [10_000]
        finally:
            pg_server.start()
        # Back: the very next sale goes through (dead sessions are replaced, not reported).
        assert pos.sale(30_000).approved
    assert [r.amount for r in sim.ledger.transactions] == [10_000, 30_000]


def test_the_command_line_refuses_a_sale_with_exit_8(sim: Simulator, tmp_path: Path) -> None:
    dead = f"postgresql://postgres:s3cret@127.0.0.1:{_closed_port()}/shop"
    env = {**os.environ, "ECRLINK_CONFIG": str(tmp_path / "none.toml"), "ECRLINK_LANG": "en",
           "ECRLINK_HOME": str(tmp_path)}
    for how in (["--journal", dead], []):
        done = subprocess.run(
            [sys.executable, "-m", "ecrlink", "sale", "10000", "-t", sim.http_url, *how],
            capture_output=True, text=True, timeout=60, cwd=ROOT, stdin=subprocess.DEVNULL,
            env={**env, "ECRLINK_JOURNAL": dead} if not how else env,
        )
        assert done.returncode == 8, done.stderr
        assert "journal" in done.stderr and "Traceback" not in done.stderr
        assert "s3cret" not in done.stderr  # the password is never shown
    assert list(sim.ledger.transactions) == []


def test_an_answer_the_stopped_server_missed_is_spooled_then_written_once(
    pg_server: PgServer, primary_url: str, tmp_path: Path
) -> None:
    with Simulator(http=("127.0.0.1", 0), card_delay=2.5) as slow, open_pos(
        slow.http_url, primary_url, timeout=10
    ) as pos:
        results = []
        sale = threading.Thread(target=lambda: results.append(pos.sale(42_000, invoice="HD9")))
        sale.start()
        deadline = time.monotonic() + 10
        while not _rows(primary_url, "SELECT id FROM ecrlink.entries WHERE amount = 42000"):
            assert time.monotonic() < deadline, "the sale was never written down"
            time.sleep(0.05)
        time.sleep(0.3)  # written down, then sent: the terminal waits for the card
        pg_server.stop()  # while the customer taps the card
        try:
            sale.join(30)
            [result] = results
            # The terminal's answer is given back, saying where it is kept.
            assert result.outcome is Outcome.APPROVED
            assert result.unrecorded is not None and "kept in" in result.unrecorded
            assert pos.journal is not None
            spool = pos.journal.path
            assert spool.is_file() and b"HD9" not in spool.read_bytes()  # masked JSON, no F3
        finally:
            pg_server.start()
        # The next command writes it first (the spool settles the entry, no recovery
        # is needed), then goes on.
        assert pos.sale(1_000).approved
        with open_journal(primary_url, create=False) as journal:
            entry = journal.get(result.journal_id or 0)
            assert (entry.state, entry.resolved_by) == (State.APPROVED, ResolvedBy.REPLY)
            assert entry.receipt_no == result.transaction.receipt_no  # type: ignore[union-attr]
            assert entry.charged_amount == 42_000
            states = [h["state"] for h in journal.history(entry.id)]
            assert states == ["pending", "sent", "approved"]
        ledger = [r for r in slow.ledger.transactions if r.command == "sale"]
        assert [r.amount for r in ledger] == [42_000, 1_000]
    # Opening it again writes nothing twice: the spool is empty.
    with open_journal(primary_url) as again:
        assert isinstance(again, PgJournal) and again.flush_spool() == 0


SELLER = r"""
import sys, ecrlink
url, journal, tag = sys.argv[1], sys.argv[2], sys.argv[3]
with ecrlink.Terminal(url, journal=journal, lock_timeout=60) as pos:
    for i in range(6):
        result = pos.sale(1000 + i * 1000, invoice=f"{tag}-{i}")
        assert result.approved and result.unrecorded is None, result
"""


def test_two_registers_on_two_pcs_never_overlap_at_one_terminal(
    primary_url: str, tmp_path: Path
) -> None:
    open_journal(primary_url).close()  # the schema exists before both start
    with Simulator(http=("127.0.0.1", 0), card_delay=0.05) as sim:
        registers = []
        for n in range(2):
            home = tmp_path / f"pc{n}"  # separate local state: no shared lock files
            env = {**os.environ, "ECRLINK_HOME": str(home)}
            registers.append(subprocess.Popen(
                [sys.executable, "-c", SELLER, sim.http_url, primary_url, f"PC{n}"],
                env=env, stderr=subprocess.PIPE, cwd=ROOT,
            ))
        for register in registers:
            _, err = register.communicate(timeout=120)
            assert register.returncode == 0, err.decode()
        sales = [r for r in sim.ledger.transactions if r.command == "sale"]
    # The simulator answers busy to a request that overlaps another: none did, and every
    # sale reached it once.
    assert len(sales) == 12 and all(r.approved for r in sales)
    assert max(Counter(r.request_id for r in sales).values()) == 1
    with open_journal(primary_url, create=False) as journal:
        entries = list(journal.entries(commands=["sale"]))
        assert len(entries) == 12 and all(e.state is State.APPROVED for e in entries)
        assert {e.request_id for e in entries} == {r.request_id for r in sales}
        assert {e.invoice for e in entries} == {f"PC{n}-{i}" for n in range(2) for i in range(6)}
        # change numbers follow commit order: a reader resuming anywhere misses nothing
        changes, _ = journal.changes_since(0, 1000)
        assert [c.id for c in changes] == list(range(1, len(changes) + 1))


HOLDER = r"""
import sys, time
from ecrlink.journal import open_journal
journal = open_journal(sys.argv[1])
lock = journal.terminal_lock("http://lane1", wait=1, directory=None)
lock.acquire()
print("held", flush=True)
time.sleep(60)
"""


def test_a_killed_holder_releases_the_advisory_lock(primary_url: str, tmp_path: Path) -> None:
    journal = open_journal(primary_url)
    lock_dir = tmp_path / "unused"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, primary_url],
                              stdout=subprocess.PIPE, cwd=ROOT)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        started = time.monotonic()
        with pytest.raises(TerminalBusy, match="another transaction"):
            with journal.terminal_lock("http://lane1", wait=0.3, directory=lock_dir):
                pass
        assert time.monotonic() - started >= 0.25  # it waited, then gave up
        with journal.terminal_lock("http://lane2", wait=0.3, directory=lock_dir):
            pass  # another terminal is free
    finally:
        holder.kill()
        holder.wait()
    with journal.terminal_lock("http://lane1", wait=10, directory=lock_dir):
        pass  # the dead holder's session ended: its lock went with it
    assert not list(tmp_path.iterdir())  # no lock files: the lock lives in the database
    journal.close()


def test_a_waiter_told_to_stop_leaves_at_once(primary_url: str, tmp_path: Path) -> None:
    journal = open_journal(primary_url)
    stop = threading.Event()
    with journal.terminal_lock("http://lane1", wait=5, directory=tmp_path):
        waiter = journal.terminal_lock("http://lane1", wait=30, directory=tmp_path)
        threading.Timer(0.3, stop.set).start()
        started = time.monotonic()
        assert waiter.acquire(stop) is False
        assert time.monotonic() - started < 5
    # nothing left held: the next one gets it at once
    again = journal.terminal_lock("http://lane1", wait=0.5, directory=tmp_path)
    assert again.acquire() is True
    again.release()
    journal.close()


def test_the_journal_named_by_environment_or_config(
    primary_url: str, sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ECRLINK_JOURNAL", primary_url)
    with Terminal(sim.http_url) as pos:
        assert isinstance(pos.journal, PgJournal)
        assert pos.sale(5_000).approved
    monkeypatch.delenv("ECRLINK_JOURNAL")
    config = tmp_path / "config.toml"
    config.write_text(f'journal = "{primary_url}"\n', encoding="utf-8")
    env = {**os.environ, "ECRLINK_CONFIG": str(config), "ECRLINK_LANG": "en",
           "ECRLINK_HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "ecrlink", "sale", "6000", "-t", sim.http_url, "--json"],
        capture_output=True, text=True, timeout=60, cwd=ROOT, env=env,
        stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    listed = subprocess.run(
        [sys.executable, "-m", "ecrlink", "journal", "list", "--json"],
        capture_output=True, text=True, timeout=60, cwd=ROOT, env=env,
        stdin=subprocess.DEVNULL)
    assert listed.returncode == 0, listed.stderr
    assert '"amount": 5000' in listed.stdout and '"amount": 6000' in listed.stdout
    assert not (tmp_path / "journal.sqlite3").exists()


def test_a_reader_following_change_numbers_misses_nothing_while_registers_write(
    primary_url: str, tmp_path: Path
) -> None:
    from ecrlink.payment import Event
    from ecrlink.protocol import Sale

    open_journal(primary_url).close()
    stop = threading.Event()
    seen: list[int] = []

    def follow() -> None:  # what a sync does: resume after the last number it read
        with open_journal(primary_url, create=False) as reader:
            cursor = 0
            while True:
                last_round = stop.is_set()
                changes, _ = reader.changes_since(cursor, 7)
                seen.extend(c.id for c in changes)
                cursor = changes[-1].id if changes else cursor
                if last_round and not changes:
                    return

    def write(n: int) -> None:
        with open_journal(primary_url) as journal:
            for i in range(15):
                sale = Sale.build(1000 + i, request_id=f"w{n}-{i}", client_id="c")
                entry = journal.begin(f"http://lane{n}", sale)
                journal.record(entry, Event.SENT, Event.REPLY_APPROVED, fsync=i % 2 == 0)

    reader = threading.Thread(target=follow)
    reader.start()
    writers = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    stop.set()
    reader.join(60)
    assert seen == list(range(1, 4 * 15 * 3 + 1))  # each once, in order, none skipped


def test_async_registers_share_the_postgresql_journal(primary_url: str, sim: Simulator) -> None:
    import asyncio

    from ecrlink import AsyncTerminal

    async def sell() -> list[Outcome]:
        async with AsyncTerminal(sim.http_url, journal=primary_url) as one, AsyncTerminal(
            sim.http_url, journal=primary_url
        ) as two:
            results = await asyncio.gather(*(pos.sale(2_000 + i * 1000) for i, pos in
                                            enumerate([one, two, one, two])))
        return [r.outcome for r in results]

    assert asyncio.run(sell()) == [Outcome.APPROVED] * 4
    with open_journal(primary_url, create=False) as journal:
        assert [e.state for e in journal.entries(commands=["sale"])] == [State.APPROVED] * 4


def test_a_spooled_answer_the_journal_refuses_is_set_aside_not_blocking(
    primary_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    from ecrlink.journal.spool import Spool
    from ecrlink.journal.store import Recorded
    from ecrlink.payment import Event
    from ecrlink.protocol import Sale

    with open_journal(primary_url) as journal:
        assert isinstance(journal, PgJournal)
        spool = Spool(journal.path)
        spool.keep(journal.journal_id(), Recorded(9999, (Event.SENT, Event.REPLY_APPROVED)))
        spool.close()
        with caplog.at_level("ERROR", logger="ecrlink.journal"):
            entry = journal.begin("http://t", Sale.build(1000, request_id="r", client_id="c"))
        assert journal.get(entry).state is State.PENDING  # the sale was not refused
        assert "cannot be written" in caplog.text and "no entry 9999" in caplog.text
        assert journal.flush_spool() == 0


def _sessions(url: str, *, settle: float = 0.0) -> int:
    """Connections to this database other than the one counting them; with ``settle``,
    waits up to that long for the count to reach 0 (a backend leaves a moment after
    its client said goodbye)."""
    database = url.rsplit("/", 1)[1]
    deadline = time.monotonic() + settle
    while True:
        count = int(_rows(url, "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                               f"'{database}' AND pid <> pg_backend_pid()")[0][0])
        if count == 0 or time.monotonic() >= deadline:
            return count
        time.sleep(0.05)


def test_close_releases_a_journal_the_terminal_opened_not_one_it_was_given(
    primary_url: str, sim: Simulator
) -> None:
    # Named by URL: the terminal opened it, so it gives back its connections (the
    # journal's and the kept lock sessions) instead of leaving them to the end of the
    # process; the journal can still be read, connecting again.
    with open_pos(sim.http_url, primary_url) as pos:
        assert pos.sale(12_000).approved
        assert _sessions(primary_url) >= 1
    assert _sessions(primary_url, settle=3) == 0
    assert pos.journal is not None and pos.journal.last_id() == 1
    pos.journal.close()
    # Handed in as an object: the caller's, still open after the terminal closed.
    journal = open_journal(primary_url)
    try:
        with open_pos(sim.http_url, journal) as pos:
            assert pos.sale(13_000).approved
        assert journal.last_id() == 2
        assert _sessions(primary_url) >= 1
    finally:
        journal.close()
    assert _sessions(primary_url, settle=3) == 0


def test_aclose_releases_a_journal_the_async_terminal_opened(
    primary_url: str, sim: Simulator
) -> None:
    import asyncio

    from ecrlink import AsyncTerminal

    async def sell() -> None:
        async with AsyncTerminal(sim.http_url, journal=primary_url, timeout=1.0) as pos:
            assert (await pos.sale(14_000)).approved
            assert _sessions(primary_url) >= 1

    asyncio.run(sell())
    assert _sessions(primary_url, settle=3) == 0
