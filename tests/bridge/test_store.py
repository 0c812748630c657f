"""Where the bridge keeps its tables and how it learns a command's journal entry, in
process: a real SQLite journal and real files under ``tmp_path``."""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path

import pytest

from ecrlink.bridge.runner import Admissions
from ecrlink.bridge.store import BridgeStore
from ecrlink.client import RequestIds
from ecrlink.journal import Journal, State
from ecrlink.protocol import Sale


def test_tables_beside_the_journal_share_its_lock_and_its_fsyncs(tmp_path: Path) -> None:
    with Journal(tmp_path / "journal.sqlite3") as journal:
        store = BridgeStore(journal.path, outbox=False, lock=journal.lock)
        try:
            assert store.synchronous == "NORMAL"  # the journal's fsync carries its rows
        finally:
            store.close()


def test_tables_of_their_own_are_fsynced_at_each_commit(tmp_path: Path) -> None:
    path = tmp_path / "pc" / "bridge.sqlite3"
    store = BridgeStore(path, outbox=True)
    try:
        assert store.synchronous == "FULL"
        assert store.last_event_id() == 0
    finally:
        store.close()
    if sys.platform != "win32":
        assert path.stat().st_mode & 0o777 == 0o600  # payment records: owner only


def test_the_journal_tells_who_waits_which_entry_a_request_became(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ids = RequestIds()
    told: list[tuple[int, str]] = []
    with Journal(tmp_path / "journal.sqlite3") as journal:
        admissions = Admissions(journal)
        watched = Sale.build(10_000, request_id=ids.next(), client_id="POS1")
        other = Sale.build(20_000, request_id=ids.next(), client_id="POS1")
        admissions.watch(watched.request_id,
                         lambda entry: told.append((entry, threading.current_thread().name)))
        first = journal.begin("lane1", watched)
        second = journal.begin("lane1", other)  # nobody waits for this one
        assert told == [(first, threading.current_thread().name)]  # once, in the writer
        assert journal.find_request(watched.request_id) == (first, State.PENDING)
        assert journal.find_request(other.request_id) == (second, State.PENDING)
        assert journal.find_request("no-such-request") is None

        def broken(entry: int) -> None:
            raise RuntimeError("observer bug")

        third = Sale.build(30_000, request_id=ids.next(), client_id="POS1")
        admissions.watch(third.request_id, broken)
        with caplog.at_level(logging.ERROR, logger="ecrlink.journal"):
            entry = journal.begin("lane1", third)  # written down all the same
        assert journal.find_request(third.request_id) == (entry, State.PENDING)
        assert "observer" in caplog.text
