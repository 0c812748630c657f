"""The journal's list reads in PostgreSQL: the same SQL, checked against the same oracle
as the SQLite journal's (``tests/journal/test_list_query.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecrlink.journal import State, open_journal
from ecrlink.journal.pg import PgJournal
from ecrlink.journal.store import Selection
from ecrlink.payment import OPEN_STATES
from tests.journal.test_list_query import MIDNIGHT, ROWS, SELECTIONS, _stamp, ids, oracle
from tests.pgserver import PgServer


@pytest.fixture
def journal(pg_server: PgServer) -> Iterator[PgJournal]:
    pg_server.start()
    with open_journal(pg_server.create_database()) as opened:
        assert isinstance(opened, PgJournal)
        yield opened


def refill(journal: PgJournal, rows: list[tuple[int, str, State]]) -> None:
    """The journal's entries replaced by ``rows``, inserted raw."""
    with psycopg.connect(journal.url, autocommit=True) as conn:
        conn.execute("TRUNCATE ecrlink.history, ecrlink.entries RESTART IDENTITY")
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO ecrlink.entries (terminal, command, state, request_id, client_id, "
                "amount, created_at, updated_at) VALUES (%s, 'sale', %s, %s, 'ECRLINK', 1000, "
                "%s, %s)",
                [(terminal, state.value, f"rq{i}", at, at) for i, (terminal, state, at) in
                 enumerate((t, s, _stamp(MIDNIGHT + timedelta(microseconds=us)))
                           for us, t, s in rows)],
            )


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=ROWS, selection=SELECTIONS, limit=st.integers(1, 45), chunk=st.integers(1, 7),
       cap=st.integers(1, 45))
def test_sql_lists_equal_a_python_filter_of_every_entry(
    journal: PgJournal, rows: list[tuple[int, str, State]], selection: Selection, limit: int,
    chunk: int, cap: int,
) -> None:
    refill(journal, rows)
    expected = oracle(journal, selection)
    assert journal.count(selection) == len(expected)
    assert ids(journal.select(selection, chunk=chunk)) == ids(expected)
    page = journal.page(selection, limit)
    assert ids(page.entries) == ids(expected[-limit:])
    assert page.total == len(expected) and page.more == max(0, len(expected) - limit)
    capped = journal.page(selection, limit, count_up_to=cap)
    assert capped.entries == page.entries
    assert capped.total == min(len(expected), max(cap, limit + 1))
    open_ = selection.only(OPEN_STATES)
    assert journal.count(open_) == sum(e.state in OPEN_STATES for e in expected)
    assert sorted(journal.terminals()) == sorted({t for _, t, _ in rows})
