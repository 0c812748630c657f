"""The journal's list reads (``Selection``, ``count``, ``page``, ``select``) in SQL.

Each is checked against the plainest possible oracle: every entry read back, filtered
and ordered in Python. Entries are generated with hypothesis: states, terminals, and
creation times clustered around midnight Vietnam time, with ties, so that date
boundaries and the (created_at, id) keyset are both exercised.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecrlink import FieldError
from ecrlink.journal import SCHEMA_VERSION, Entry, Journal, State
from ecrlink.journal.store import _MIGRATIONS, Page, Selection, _count_sql, _list_sql
from ecrlink.payment import OPEN_STATES
from ecrlink.protocol import VIETNAM_TIME

MIDNIGHT = datetime(2026, 3, 10, tzinfo=VIETNAM_TIME)
"""A Vietnam midnight: 2026-03-09T17:00Z. Times are generated on both sides of it."""
TERMINALS = ("http://192.168.1.50:80", "http://192.168.1.51:80", "serial:COM3")

# A handful of instants so that ties on created_at are frequent, plus any microsecond.
OFFSETS = st.one_of(
    st.sampled_from([-86_400_000_000, -1, 0, 1, 3_600_000_000, 86_399_999_999,
                     86_400_000_000]),
    st.integers(min_value=-2 * 86_400_000_000, max_value=2 * 86_400_000_000),
)
ROWS = st.lists(
    st.tuples(OFFSETS, st.sampled_from(TERMINALS), st.sampled_from(list(State))),
    max_size=40,
)
MOMENTS = st.one_of(
    st.none(),
    OFFSETS.map(lambda us: MIDNIGHT + timedelta(microseconds=us)),
    OFFSETS.map(lambda us: (MIDNIGHT + timedelta(microseconds=us)).astimezone(UTC)),
)
SELECTIONS = st.builds(
    Selection,
    since=MOMENTS,
    until=MOMENTS,
    terminal=st.one_of(st.none(), st.sampled_from([*TERMINALS, "http://unknown:80"])),
    states=st.one_of(st.none(), st.frozensets(st.sampled_from(list(State)))),
)


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def fill(path: Path, rows: list[tuple[int, str, State]]) -> None:
    """A journal with the real schema (made by ``Journal``), rows inserted raw."""
    Journal(path).close()
    db = sqlite3.connect(path)
    with db:
        db.executemany(
            "INSERT INTO entries (terminal, command, state, request_id, client_id, amount, "
            "created_at, updated_at) VALUES (?, 'sale', ?, ?, 'ECRLINK', 1000, ?, ?)",
            [(terminal, state.value, f"rq{i}", at, at) for i, (terminal, state, at) in
             enumerate((t, s, _stamp(MIDNIGHT + timedelta(microseconds=us)))
                       for us, t, s in rows)],
        )
    db.close()


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A folder of its own per hypothesis example (tmp_path is one per test)."""
    with tempfile.TemporaryDirectory(prefix="ecrlink-list-") as folder:
        yield Path(folder)


def oracle(journal: Journal, selection: Selection) -> list[Entry]:
    """The selection the slow, obvious way: every entry, filtered and sorted in Python."""
    def wanted(e: Entry) -> bool:
        return ((selection.since is None or e.created_at >= selection.since)
                and (selection.until is None or e.created_at < selection.until)
                and (selection.terminal is None or e.terminal == selection.terminal)
                and (selection.states is None or e.state in selection.states))
    return sorted(filter(wanted, journal.entries()), key=lambda e: (e.created_at, e.id))


def ids(entries: list[Entry] | Iterator[Entry]) -> list[int]:
    return [e.id for e in entries]


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=ROWS, selection=SELECTIONS, limit=st.integers(1, 45), chunk=st.integers(1, 7),
       cap=st.integers(1, 45))
def test_sql_lists_equal_a_python_filter_of_every_entry(
    scratch: Path, rows: list[tuple[int, str, State]], selection: Selection, limit: int,
    chunk: int, cap: int,
) -> None:
    path = scratch / f"j{len(list(scratch.iterdir()))}.sqlite3"
    fill(path, rows)
    with Journal(path) as journal:
        expected = oracle(journal, selection)
        assert journal.count(selection) == len(expected)
        assert ids(journal.select(selection, chunk=chunk)) == ids(expected)
        page = journal.page(selection, limit)
        assert ids(page.entries) == ids(expected[-limit:])
        assert page.total == len(expected) and page.exact
        assert page.more == max(0, len(expected) - limit)
        capped = journal.page(selection, limit, count_up_to=cap)
        assert capped.entries == page.entries
        cap = max(cap, limit + 1)
        assert capped.exact == (len(expected) <= cap)
        assert capped.total == min(len(expected), cap)
        assert capped.exact or capped.more >= 1  # more than the page: said, if not counted
        assert journal.count(selection, at_most=cap) == min(len(expected), cap + 1)
        open_ = selection.only(OPEN_STATES)
        assert journal.count(open_) == sum(e.state in OPEN_STATES for e in expected)


def test_paging_boundaries(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    fill(path, [(i * 1_000_000, TERMINALS[0], State.APPROVED) for i in range(10)])
    with Journal(path) as journal:
        everything = ids(journal.select())
        assert everything == list(range(1, 11))
        for limit in (1, 9, 10, 11, 50):
            page = journal.page(limit=limit)
            assert ids(page.entries) == everything[-limit:]
            assert (page.total, page.more) == (10, max(0, 10 - limit))
        assert journal.page(Selection(states=frozenset()), 5) == Page([], 0)
        capped = journal.page(limit=3, count_up_to=6)
        assert (ids(capped.entries), capped.total, capped.exact, capped.more) == (
            [8, 9, 10], 6, False, 3)
        assert journal.page(limit=3, count_up_to=10).exact
        assert list(journal.select(Selection(states=frozenset()))) == []
        for bad in (0, -1):
            with pytest.raises(FieldError, match="limit: must be at least 1"):
                journal.page(limit=bad)
            with pytest.raises(FieldError, match="chunk: must be at least 1"):
                next(journal.select(chunk=bad))


def test_select_reads_one_short_query_per_chunk(tmp_path: Path) -> None:
    # Memory stays flat: never more than a chunk of rows is asked for at once.
    path = tmp_path / "j.sqlite3"
    fill(path, [(0, TERMINALS[0], State.APPROVED)] * 35)  # all tied on created_at
    with Journal(path) as journal:
        statements: list[str] = []
        journal._db.set_trace_callback(statements.append)
        stream = journal.select(chunk=10)
        first = [next(stream) for _ in range(10)]
        assert len([s for s in statements if s.startswith("SELECT")]) == 1
        rest = list(stream)
        journal._db.set_trace_callback(None)
        assert ids(first + rest) == list(range(1, 36))
        selects = [s for s in statements if s.startswith("SELECT")]
        assert len(selects) == 4 and all(s.endswith("LIMIT 10") for s in selects)


def _plan(journal: Journal, sql: str, params: list[object]) -> str:
    rows = journal._db.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()
    return " | ".join(row[3] for row in rows)


@pytest.mark.parametrize("since", [None, MIDNIGHT])
@pytest.mark.parametrize("until", [None, MIDNIGHT + timedelta(days=1)])
@pytest.mark.parametrize("terminal", [None, TERMINALS[0]])
@pytest.mark.parametrize("states", [None, frozenset({State.APPROVED}), OPEN_STATES])
def test_every_list_query_reads_an_index_in_order_and_counts_from_an_index(
    tmp_path: Path, since: datetime | None, until: datetime | None, terminal: str | None,
    states: frozenset[State] | None,
) -> None:
    # Whatever the filters, a page never sorts the selection (no temporary b-tree) and
    # a count never reads the table: that is what keeps a page cheap on any journal.
    fill(tmp_path / "j.sqlite3", [(0, TERMINALS[0], State.APPROVED)])
    selection = Selection(since, until, terminal, states)
    with Journal(tmp_path / "j.sqlite3") as journal:
        reads = [(True, None), (False, None), (False, (_stamp(MIDNIGHT), 7))]
        for newest_first, after in reads:
            query = _list_sql(selection, after=after, newest_first=newest_first, limit=51)
            assert query is not None
            plan = _plan(journal, *query)
            assert "TEMP B-TREE" not in plan, plan
            assert "INDEX" in plan, plan
        for at_most in (None, 100):
            counted = _count_sql(selection, at_most)
            assert counted is not None
            plan = _plan(journal, *counted)
            assert "COVERING INDEX" in plan, plan


def test_schema_2_journal_gains_the_list_indexes(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(_MIGRATIONS[0] + ";" + _MIGRATIONS[1] + "; PRAGMA user_version = 2;")
    db.execute("INSERT INTO entries (terminal, command, state, request_id, client_id, amount, "
               "created_at, updated_at) VALUES ('http://t', 'sale', 'in_doubt', 'r', 'c', 5, "
               "'2026-01-01T00:00:00.000000+00:00', '2026-01-01T00:00:00.000000+00:00')")
    db.commit()
    db.close()
    with Journal(path) as journal:
        page = journal.page(Selection(terminal="http://t", states=OPEN_STATES))
        assert [e.state for e in page.entries] == [State.IN_DOUBT] and page.total == 1
        assert [e.id for e in journal.unresolved("http://t")] == [1]
    db = sqlite3.connect(path)
    indexes = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.close()
    assert {"entries_state_created", "entries_terminal_state_created"} <= indexes
    assert "entries_terminal_state" not in indexes


def test_terminals_and_last_id(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    Journal(path).close()
    with Journal(path) as journal:
        assert journal.terminals() == [] and journal.last_id() == 0
    fill(path, [(0, t, State.APPROVED) for t in (TERMINALS[2], TERMINALS[0], TERMINALS[2])])
    with Journal(path) as journal:
        assert journal.terminals() == sorted({TERMINALS[0], TERMINALS[2]})
        assert journal.last_id() == 3


def test_selection_only_narrows() -> None:
    assert Selection().only(OPEN_STATES).states == OPEN_STATES
    narrowed = Selection(states=frozenset({State.APPROVED, State.IN_DOUBT})).only(OPEN_STATES)
    assert narrowed.states == {State.IN_DOUBT}
    assert Selection(states=frozenset({State.APPROVED})).only(OPEN_STATES).states == frozenset()
