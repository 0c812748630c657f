"""The journal's storage: durable, private, migratable, masked.

The tests taking the ``journal`` fixture run against both backends: a SQLite file and
a PostgreSQL database on the session's throwaway server (skipped without PostgreSQL's
binaries, failed under CI=true).
"""

from __future__ import annotations

import logging
import sqlite3
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ecrlink import IllegalTransition, JournalError
from ecrlink._exceptions import FieldError
from ecrlink.journal import SCHEMA_VERSION, Journal, ResolvedBy, State, open_journal
from ecrlink.journal.store import _MIGRATIONS, Recorded
from ecrlink.payment import Event
from ecrlink.protocol import LastTrans, Sale, Void, parse_reply
from tests.conftest import fixture_bytes

SALE = Sale.build(
    123456, request_id="Request:001", client_id="UserName:Manh123", invoice="HD1", reference="R"
)


@pytest.fixture(params=["sqlite", "postgresql"])
def journal(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Journal]:
    if request.param == "sqlite":
        name = str(tmp_path / "sub" / "journal.sqlite3")
    else:
        server = request.getfixturevalue("pg_server")
        server.start()
        name = server.create_database()
    with open_journal(name) as opened:
        yield opened


def reopen(journal: Journal) -> Journal:
    """The same journal through another connection (as another process would)."""
    return open_journal(getattr(journal, "url", journal.path), create=False)


def stored(journal: Journal) -> bytes:
    """Everything the journal keeps on disk or in its database, as bytes."""
    url = getattr(journal, "url", None)
    if url is None:  # the file and its write-ahead log
        wal = journal.path.with_name(journal.path.name + "-wal")
        return journal.path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT e::text FROM ecrlink.entries e").fetchall()
    return "".join(r[0] for r in rows).encode()


def test_created_owner_only_in_wal_mode(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "sub" / "journal.sqlite3")
    assert stat.S_IMODE(journal.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(journal.path.parent.stat().st_mode) == 0o700
    db = sqlite3.connect(journal.path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_pending_is_durable_before_anything_else(journal: Journal) -> None:
    entry_id = journal.begin("http://t", SALE)
    # Another connection (another process) sees it at once: it was committed.
    other = reopen(journal)
    entry = other.get(entry_id)
    assert entry.state is State.PENDING
    assert (entry.amount, entry.invoice, entry.reference) == (123456, "HD1", "R")
    assert (entry.request_id, entry.client_id, entry.command) == (
        "Request:001", "UserName:Manh123", "sale",
    )


def test_result_fields_are_recorded(journal: Journal) -> None:
    entry_id = journal.begin("http://t", SALE)
    state = journal.record(
        entry_id, Event.SENT, Event.REPLY_APPROVED, by=ResolvedBy.REPLY, charged_amount=123456,
        result=parse_reply(fixture_bytes("sale_approved_swipe.json")),
    )
    entry = journal.get(entry_id)
    assert state is State.APPROVED and entry.state is State.APPROVED
    assert entry.resolved_by is ResolvedBy.REPLY
    assert (entry.receipt_no, entry.approval_code, entry.ref_no) == ("6", "111112", "020037020001")
    assert entry.card_no == "9704 XXXX XXXX 6163" and entry.card_last4 == "6163"
    assert (entry.tid, entry.mid, entry.batch_no, entry.stan) == (
        "31002095", "000000100091555", "3", "000010",
    )
    assert entry.trans_time is not None and entry.trans_time.year == 2015
    assert entry.raw_reply == fixture_bytes("sale_approved_swipe.json")
    assert entry.charged_amount == 123456
    assert [h["state"] for h in journal.history(entry_id)] == ["pending", "sent", "approved"]


def test_unmasked_card_is_masked_before_storage(
    journal: Journal, caplog: pytest.LogCaptureFixture
) -> None:
    raw = fixture_bytes("sale_approved_swipe.json").replace(
        b"9704 XXXX XXXX 6163", b"9704 3612 3456 6163"
    )
    entry_id = journal.begin("http://t", SALE)
    with caplog.at_level(logging.WARNING, logger="ecrlink.journal"):
        journal.record(entry_id, Event.SENT, Event.REPLY_APPROVED, result=parse_reply(raw))
    entry = journal.get(entry_id)
    assert entry.card_no == "9704 36XX XXXX 6163"
    assert entry.raw_reply is not None and b"3612 3456" not in entry.raw_reply
    assert "unmasked card number" in caplog.text
    assert b"3612 3456" not in stored(journal)
    assert b"9704 36XX XXXX 6163" in stored(journal)


def test_void_keeps_the_receipt_it_cancels(journal: Journal) -> None:
    entry_id = journal.begin("http://t", Void(request_id="1", client_id="c", receipt_no="61"))
    assert journal.get(entry_id).void_of == "61"


def test_cashier_resolution_records_who_and_when(journal: Journal) -> None:
    entry_id = journal.begin("http://t", SALE)
    journal.record(entry_id, Event.SENT, Event.LOST, note="no reply")
    entry = journal.resolve(
        entry_id, State.APPROVED, by=ResolvedBy.CASHIER, who="thu.ngan", note="receipt seen",
        receipt_no="000042",
    )
    assert entry.state is State.APPROVED and entry.resolved_by is ResolvedBy.CASHIER
    assert (entry.resolved_who, entry.receipt_no) == ("thu.ngan", "000042")
    last = journal.history(entry_id)[-1]
    assert (last["state"], last["by"], last["who"]) == ("approved", "cashier", "thu.ngan")
    with pytest.raises(JournalError, match="not in doubt"):
        journal.resolve(entry_id, State.DECLINED, by=ResolvedBy.CASHIER)


def test_only_approved_or_declined_resolutions(journal: Journal) -> None:
    entry_id = journal.begin("http://t", SALE)
    with pytest.raises(JournalError, match="approved or declined"):
        journal.resolve(entry_id, State.CANCELED, by=ResolvedBy.CASHIER)


def test_orphans_become_in_doubt_per_terminal(journal: Journal) -> None:
    a = journal.begin("http://a", SALE)
    b = journal.begin("http://b", SALE)
    assert journal.orphans_to_in_doubt("http://a") == 1
    assert journal.get(a).state is State.IN_DOUBT
    assert journal.get(b).state is State.PENDING
    assert [e.id for e in journal.unresolved("http://a")] == [a]


def test_reader_filters(journal: Journal) -> None:
    ids = [journal.begin(t, SALE) for t in ("http://a", "http://a", "http://b")]
    journal.begin("http://a", LastTrans(request_id="x", client_id="c"))
    journal.record(ids[1], Event.SENT, Event.REFUSED, note="refused")
    assert [e.id for e in journal.entries(terminal="http://a", commands=["sale"])] == ids[:2]
    assert [e.id for e in journal.entries(states=[State.FAILED])] == [ids[1]]
    now = datetime.now(UTC)
    assert len(list(journal.entries(since=now - timedelta(minutes=1)))) == 4
    assert list(journal.entries(until=now - timedelta(minutes=1))) == []
    assert sorted(journal.terminals()) == ["http://a", "http://b"]


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    Journal(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(JournalError, match="newer than this ecrlink"):
        Journal(path)


def test_unopenable_journal_is_a_journal_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(JournalError, match="cannot open"):
        Journal(tmp_path / "file" / "journal.sqlite3")


def test_the_journal_refuses_a_change_the_state_table_does_not_allow(journal: Journal) -> None:
    entry_id = journal.begin("http://t", SALE)
    journal.record(entry_id, Event.SENT, Event.REPLY_DECLINED)
    before = (journal.get(entry_id), journal.history(entry_id))
    for events in ([Event.LOST], [Event.PROVEN_APPROVED], [Event.REPLY_APPROVED]):
        with pytest.raises(IllegalTransition, match="declined"):
            journal.record(entry_id, *events)
    assert (journal.get(entry_id), journal.history(entry_id)) == before
    # a path that is illegal half-way is refused whole
    other = journal.begin("http://t", SALE)
    with pytest.raises(IllegalTransition):
        journal.record(other, Event.NOT_SENT, Event.REPLY_APPROVED)
    assert journal.get(other).state is State.PENDING


def test_terminal_profile_is_learned_in_the_same_commit(journal: Journal) -> None:
    assert journal.profile("http://t").mark_valid is False
    entry_id = journal.begin("http://t", SALE)
    journal.record(entry_id, Event.SENT, Event.REPLY_APPROVED,
                   learned={"mark": "{}", "mark_valid": 1, "echoes": 0, "tid": "31002095",
                            "mark_at": datetime.now(UTC)})
    profile = journal.profile("http://t")
    assert (profile.mark_valid, profile.echoes, profile.tid) == (True, False, "31002095")
    journal.begin("http://t", SALE)  # an answer not known yet: the mark is not either
    assert journal.profile("http://t").mark_valid is False


def test_schema_1_journal_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(_MIGRATIONS[0] + "; PRAGMA user_version = 1;")
    db.execute("INSERT INTO entries (terminal, command, state, request_id, client_id, amount, "
               "created_at, updated_at) VALUES ('http://t', 'sale', 'in_doubt', 'r', 'c', 5, "
               "'2026-01-01T00:00:00+00:00', '2026-01-01T00:00:00+00:00')")
    db.commit()
    db.close()
    with Journal(path) as journal:
        [entry] = journal.unresolved()
        assert entry.mark_before is None and entry.charged_amount is None
        journal.resolve(entry.id, State.DECLINED, by=ResolvedBy.CASHIER)


def test_every_change_carries_its_number_and_sync_reads_them_in_order(journal: Journal) -> None:
    a = journal.begin("http://t", SALE)
    b = journal.begin("http://t", SALE)
    journal.record(a, Event.SENT, Event.REPLY_APPROVED)
    assert journal.last_change() == 4
    changes, entries = journal.changes_since(0, 100)
    assert [(c.id, c.entry_id, c.state) for c in changes] == [
        (1, a, State.PENDING), (2, b, State.PENDING), (3, a, State.SENT), (4, a, State.APPROVED),
    ]
    assert [(e.id, e.state, n) for e, n in entries] == [
        (a, State.APPROVED, 4), (b, State.PENDING, 2),
    ]
    # an entry comes with its latest change number, even one past the batch
    first, touched = journal.changes_since(0, 1)
    assert [c.id for c in first] == [1]
    assert [(e.id, n) for e, n in touched] == [(a, 4)]
    assert journal.change(3) == changes[2] and journal.change(99) is None
    assert journal.changes_since(4, 10) == ([], [])
    with pytest.raises(FieldError, match="limit: must be at least 1"):
        journal.changes_since(0, 0)


def test_a_journal_has_one_id_for_life(journal: Journal) -> None:
    first = journal.journal_id()
    assert len(first) >= 32
    journal.begin("http://t", SALE)
    with reopen(journal) as again:
        assert again.journal_id() == first


def test_a_planned_change_survives_json_and_applies_once(journal: Journal) -> None:
    entry_id = journal.begin("http://t", SALE)
    answer = parse_reply(fixture_bytes("sale_approved_swipe.json"))
    change = journal.recorded(entry_id, Event.SENT, Event.REPLY_APPROVED, result=answer,
                              by=ResolvedBy.REPLY, charged_amount=123456,
                              learned={"tid": "31002095", "mark_at": datetime.now(UTC)})
    again = Recorded.from_json(change.to_json())
    assert again.fill == change.fill and again.events == change.events
    assert journal.apply(again) is State.APPROVED
    entry = journal.get(entry_id)
    assert (entry.receipt_no, entry.raw_reply, entry.resolved_by) == (
        "6", fixture_bytes("sale_approved_swipe.json"), ResolvedBy.REPLY)
    assert journal.profile("http://t").tid == "31002095"
    with pytest.raises(IllegalTransition):
        journal.apply(again)


def test_schema_3_journal_gains_change_numbers_and_keeps_its_old_fingerprint(
    tmp_path: Path,
) -> None:
    path = tmp_path / "v3.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(";".join(_MIGRATIONS[:3]) + "; PRAGMA user_version = 3;")
    db.execute("INSERT INTO entries (terminal, command, state, request_id, client_id, amount, "
               "created_at, updated_at) VALUES ('http://t', 'sale', 'approved', 'r1', 'c', 5, "
               "'2026-01-01T00:00:00+00:00', '2026-01-01T00:00:00+00:00')")
    for state in ("pending", "sent", "approved"):
        db.execute("INSERT INTO history (entry_id, at, state) VALUES (1, "
                   "'2026-01-01T00:00:00+00:00', ?)", (state,))
    db.commit()
    db.close()
    with Journal(path, readonly=True) as journal:  # a sync upgrades it, then only reads
        # head office knew this journal by its first entry: it keeps that name
        assert journal.journal_id() == "2026-01-01T00:00:00+00:00 r1"
        assert [(e.id, n) for e, n in journal.changes_since(0, 10)[1]] == [(1, 3)]
        with pytest.raises(JournalError, match="write failed"):
            journal.begin("http://t", SALE)
