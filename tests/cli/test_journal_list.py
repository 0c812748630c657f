"""``ecrlink journal list``: a page at a time, --limit/--all, ids never cut, JSON shape.

Journals are made with the real schema (``Journal``) and filled with raw rows, so that
ids and creation times are exactly what each test needs (6-digit ids, both sides of
midnight Vietnam time).
"""

from __future__ import annotations

import io
import json
import re
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from ecrlink.cli.exit_codes import ExitStatus
from ecrlink.cli.output import (
    LIST_COLUMNS,
    entry_to_dict,
    fit_widths,
    render_entries,
    write_entries_json,
)
from ecrlink.journal import Entry, Journal, State, store
from ecrlink.protocol import VIETNAM_TIME

from .conftest import run

DAY = datetime(2026, 3, 10, 9, tzinfo=VIETNAM_TIME)
URL = "http://192.168.1.50:80"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def make(path: Path, rows: list[dict[str, object]]) -> Path:
    """A journal at ``path`` holding ``rows`` (id, created_at, state, terminal, ...)."""
    Journal(path).close()
    db = sqlite3.connect(path)
    with db:
        for i, row in enumerate(rows, 1):
            at = row.get("at", DAY + timedelta(minutes=i))
            assert isinstance(at, datetime)
            stamp = at.astimezone(UTC).isoformat(timespec="microseconds")
            db.execute(
                "INSERT INTO entries (id, terminal, command, state, request_id, client_id, "
                "amount, f3, created_at, updated_at, receipt_no, card_no) "
                "VALUES (?, ?, 'sale', ?, ?, 'LANE1', ?, ?, ?, ?, ?, ?)",
                (row.get("id", i), row.get("terminal", URL), row.get("state", "approved"),
                 f"rq{i}", row.get("amount", 150_000), f"HD{i:04d}", stamp, stamp,
                 f"{i:06d}", "970436******1234"),
            )
    db.close()
    return path


def listing(path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[str, str]:
    result = run("journal", "list", "--journal", str(path), *args, env=env)
    assert result.exit_code == 0, result.stderr
    return result.stdout, result.stderr


def listed(path: Path, *args: str) -> list[dict[str, object]]:
    stdout, _ = listing(path, "--json", *args)
    rows = json.loads(stdout)
    assert isinstance(rows, list)
    return rows


def ids_of(rows: list[dict[str, object]]) -> list[object]:
    return [r["id"] for r in rows]


# --- paging -----------------------------------------------------------------------------


def test_default_is_the_newest_50_oldest_first_with_a_footer(tmp_path: Path) -> None:
    path = make(tmp_path / "j.sqlite3", [{}] * 120)
    stdout, stderr = listing(path, "--json")
    assert ids_of(json.loads(stdout)) == list(range(71, 121))
    assert "Showing the newest 50 of 120 entries; 70 older" in stderr  # not in the JSON
    en, _ = listing(path, "--lang", "en")
    rows = [int(m) for m in re.findall(r"^ *(\d+)  ", en, re.M)]
    assert rows == list(range(71, 121))
    assert "Showing the newest 50 of 120 entries; 70 older not shown: `--limit N`" in en
    assert "`--all`" in en
    vi, _ = listing(path, "--lang", "vi")
    assert "Đang hiện 50 giao dịch mới nhất trong tổng số 120; còn 70 giao dịch cũ hơn" in vi


def test_a_selection_too_large_to_count_says_more_than(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "COUNT_CAP", 80)  # counting stops after 81
    path = make(tmp_path / "j.sqlite3", [{}] * 120)
    text, _ = listing(path, "--lang", "en")
    assert "Showing the newest 50 of more than 80 entries: `--limit N` shows more" in text
    vi, _ = listing(path, "--lang", "vi")
    assert "Đang hiện 50 giao dịch mới nhất trong hơn 80 giao dịch" in vi
    _, stderr = listing(path, "--json")
    assert "of more than 80 entries" in stderr
    larger, _ = listing(path, "--limit", "100")  # a page beyond the cap: still "more"
    assert "Showing the newest 100 of more than 101 entries" in larger


def test_limit_and_all_at_their_boundaries(tmp_path: Path) -> None:
    path = make(tmp_path / "j.sqlite3", [{}] * 120)
    assert ids_of(listed(path, "--limit", "1")) == [120]
    assert ids_of(listed(path, "--limit", "119")) == list(range(2, 121))
    for enough in ("120", "121", "5000"):
        assert ids_of(listed(path, "--limit", enough)) == list(range(1, 121))
        people, _ = listing(path, "--limit", enough)
        assert "older not shown" not in people
    assert ids_of(listed(path, "--all")) == list(range(1, 121))
    people, stderr = listing(path, "--all")
    assert re.findall(r"^ *(\d+)  ", people, re.M) == [str(i) for i in range(1, 121)]
    assert "older not shown" not in people and stderr == ""
    # --all streams its JSON; the text is the very one a whole list would give.
    streamed, _ = listing(path, "--all", "--json")
    whole, _ = listing(path, "--limit", "1000", "--json")
    assert streamed == whole


def test_the_selection_is_paged_not_the_journal(tmp_path: Path) -> None:
    rows: list[dict[str, object]] = [{"state": "declined" if i % 3 else "approved"}
                                     for i in range(90)]
    path = make(tmp_path / "j.sqlite3", rows)
    approved = [i + 1 for i in range(90) if not i % 3]
    assert ids_of(listed(path, "--state", "approved", "--limit", "7")) == approved[-7:]
    text, _ = listing(path, "--state", "approved", "--limit", "7")
    assert f"Showing the newest 7 of {len(approved)} entries; {len(approved) - 7} older" \
        in text


def test_bad_limits_are_bad_input(tmp_path: Path) -> None:
    path = make(tmp_path / "j.sqlite3", [{}])
    for args in (["--limit", "0"], ["--limit", "-3"], ["--limit", "many"]):
        result = run("journal", "list", "--journal", str(path), *args)
        assert result.exit_code == ExitStatus.BAD_INPUT and "--limit" in result.stderr
    both = run("journal", "list", "--journal", str(path), "--limit", "5", "--all")
    assert both.exit_code == ExitStatus.BAD_INPUT
    assert "--limit: cannot be used with --all" in both.stderr
    vi = run("journal", "list", "--journal", str(path), "--limit", "5", "--all", "--lang", "vi")
    assert "--limit (số dòng): không dùng cùng --all" in vi.stderr
    assert both.stdout == "" and "Traceback" not in both.stderr
    # With --json the refusal is the usual error object on stdout, not Click's usage text.
    as_json = run("journal", "list", "--journal", str(path), "--limit", "5", "--all", "--json")
    assert as_json.exit_code == ExitStatus.BAD_INPUT
    error = json.loads(as_json.stdout)["error"]
    assert (error["field"], error["rule_code"]) == ("--limit", "not_with_all")


def test_in_doubt_beyond_the_page_is_still_counted(tmp_path: Path) -> None:
    rows: list[dict[str, object]] = [{}] * 60
    rows = [*rows[:2], {"state": "in_doubt"}, *rows[3:-1], {"state": "pending"}]
    path = make(tmp_path / "j.sqlite3", rows)
    text, _ = listing(path, "--limit", "10", "--lang", "en")
    assert "PENDING" in text and "IN_DOUBT" not in text  # id 3 is not on the page
    assert "2 payment(s) IN DOUBT" in text
    assert "Some of them are not on this page: `ecrlink journal list --in-doubt`" in text
    shown, _ = listing(path, "--in-doubt")
    assert "2 payment(s) IN DOUBT" in shown and "not on this page" not in shown


def test_empty_selection(tmp_path: Path) -> None:
    path = make(tmp_path / "j.sqlite3", [{}] * 3)
    for args in ([], ["--all"]):
        text, _ = listing(path, "--until", "2000-01-01", *args)
        assert text.strip() == "No entries."
        assert listed(path, "--until", "2000-01-01", *args) == []


# --- filters ----------------------------------------------------------------------------


def test_today_is_vietnam_midnight_to_midnight(tmp_path: Path) -> None:
    midnight = datetime.combine(datetime.now(VIETNAM_TIME).date(), time(), VIETNAM_TIME)
    edges = [midnight - timedelta(microseconds=1), midnight,
             midnight + timedelta(days=1, microseconds=-1), midnight + timedelta(days=1)]
    path = make(tmp_path / "j.sqlite3", [{"at": at} for at in edges])
    assert ids_of(listed(path, "--today")) == [2, 3]
    day = midnight.date().isoformat()
    assert ids_of(listed(path, "--since", day, "--until", day)) == [2, 3]
    assert ids_of(listed(path, "--until", day)) == [1, 2, 3]
    assert ids_of(listed(path, "--since", midnight.astimezone(UTC).isoformat())) == [2, 3, 4]


@pytest.mark.parametrize("args", [
    ["--state", "approved"], ["--state", "declined", "--state", "in_doubt"], ["--in-doubt"],
    ["-t", "serial:COM3"], ["-t", "serial:COM3", "--in-doubt"], ["--since", "2026-03-10T09:30"],
])
def test_filters_equal_a_python_filter_of_every_entry(tmp_path: Path, args: list[str]) -> None:
    states = ["approved", "declined", "in_doubt", "pending", "failed", "amount_mismatch"]
    rows: list[dict[str, object]] = [
        {"state": states[i % len(states)], "terminal": URL if i % 4 else "serial:COM3",
         "at": DAY + timedelta(minutes=i // 2)}  # pairs tied on created_at
        for i in range(80)
    ]
    path = make(tmp_path / "j.sqlite3", rows)
    with Journal(path) as journal:
        everything = list(journal.entries())
    wanted = {
        "--state": lambda e, v: e.state.value == v, "-t": lambda e, v: e.terminal == v,
        "--since": lambda e, v: e.created_at >= datetime.fromisoformat(v).replace(
            tzinfo=VIETNAM_TIME),
    }
    expected = everything
    pairs = [a for a in args if a != "--in-doubt"]
    states_asked = [v for k, v in zip(pairs[::2], pairs[1::2], strict=True) if k == "--state"]
    for k, v in zip(pairs[::2], pairs[1::2], strict=True):
        if k != "--state":
            expected = [e for e in expected if wanted[k](e, v)]
    if states_asked:
        expected = [e for e in expected if e.state.value in states_asked]
    if "--in-doubt" in args:
        expected = [e for e in expected if e.state in (State.PENDING, State.IN_DOUBT)]
    expected.sort(key=lambda e: (e.created_at, e.id))
    assert ids_of(listed(path, *args, "--all")) == [e.id for e in expected]
    assert ids_of(listed(path, *args, "--limit", "5")) == [e.id for e in expected][-5:]


# --- the id column ----------------------------------------------------------------------

IDS = [7, 74, 76, 77, 78, 999, 12_345, 123_456, 999_999]


def _rows_with_ids(terminals: tuple[str, ...]) -> list[dict[str, object]]:
    states = ["approved", "in_doubt", "amount_mismatch", "declined"]
    return [{"id": n, "state": states[i % 4], "terminal": terminals[i % len(terminals)],
             "amount": 9_999_999_999 if i == 2 else 150_000} for i, n in enumerate(IDS)]


@pytest.mark.parametrize("columns", [60, 80, 100])
@pytest.mark.parametrize("lang", ["en", "vi"])
@pytest.mark.parametrize("terminals", [
    (URL,), (URL, "serial:///dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A50285BI-if00-port0"),
])
@pytest.mark.parametrize("how", [["--limit", "50"], ["--all"]])
@pytest.mark.parametrize("colour", [False, True])
def test_the_id_column_is_never_cut(
    tmp_path: Path, columns: int, lang: str, terminals: tuple[str, ...], how: list[str],
    colour: bool,
) -> None:
    path = make(tmp_path / "j.sqlite3", _rows_with_ids(terminals))
    env = {"COLUMNS": str(columns), **({"FORCE_COLOR": "1", "TERM": "xterm"} if colour else {})}
    text, _ = listing(path, "--lang", lang, *how, env=env)
    if colour:
        assert "\x1b[" in text  # the styled path was the one taken
        text = ANSI.sub("", text)
    lines = text.splitlines()
    first = [m.group(1) for line in lines if (m := re.match(r" *(\d+)  ", line))]
    assert first == [str(n) for n in IDS]
    assert all(len(line) <= columns for line in lines), (columns, lines)
    body = [line for line in lines if re.match(r" *\d+  ", line)]
    assert {line.index(str(n)) + len(str(n)) for line, n in zip(body, IDS, strict=True)} \
        == {6}, "ids right-aligned in one column"
    assert "9.999.999.999" in text  # amounts are never cut either


@given(
    natural=st.lists(st.integers(1, 40), min_size=len(LIST_COLUMNS), max_size=len(LIST_COLUMNS)),
    width=st.integers(10, 200),
)
def test_fit_widths_never_touches_what_must_not_be_cut(natural: list[int], width: int) -> None:
    widths = fit_widths(natural, LIST_COLUMNS, width)
    for column, was, now in zip(LIST_COLUMNS, natural, widths, strict=True):
        if not column.drop:
            assert now == was, column.key
        elif not column.cut:
            assert now in (was, None), column.key
        else:
            assert now is None or min(was, 6) <= now <= was, column.key
    gaps = 2 * (sum(w is not None for w in widths) - 1)
    essential = sum(n for n, c in zip(natural, LIST_COLUMNS, strict=True) if not c.drop)
    if essential + 2 * (sum(not c.drop for c in LIST_COLUMNS) - 1) <= width:
        assert sum(w for w in widths if w is not None) + gaps <= width
    if sum(natural) + 2 * (len(natural) - 1) <= width:
        assert widths == natural


# --- streaming ----------------------------------------------------------------------------


def _entries(count: int) -> list[Entry]:
    at = DAY.astimezone(UTC)
    return [Entry(id=i, terminal=URL, command="sale", state=State.APPROVED, request_id=f"r{i}",
                  client_id="LANE1", amount=1000, fields=("", "", f"HD{i}", "", ""),
                  created_at=at, updated_at=at) for i in range(1, count + 1)]


class Recorder(io.StringIO):
    """A stream that notes how many entries had been read when it was first written to."""

    def __init__(self, pulled: list[int]) -> None:
        super().__init__()
        self.pulled = pulled
        self.at_first_write: int | None = None

    def write(self, text: str) -> int:
        if self.at_first_write is None and text.strip("[\n"):
            self.at_first_write = self.pulled[0]
        return super().write(text)


def _counting(entries: list[Entry], pulled: list[int]) -> Iterator[Entry]:
    for entry in entries:
        pulled[0] += 1
        yield entry


def test_render_entries_writes_each_chunk_before_reading_the_next() -> None:
    pulled = [0]
    out = Recorder(pulled)
    render_entries(Console(file=out, width=100), _counting(_entries(25), pulled), "en", "j",
                   chunk=10, id_width=2)
    # The title goes out after the first chunk is read; rows 11.. after the first 10 went.
    assert out.at_first_write == 10
    assert re.findall(r"^ *(\d+)  ", out.getvalue(), re.M) == [str(i) for i in range(1, 26)]


def test_write_entries_json_streams_the_same_text_as_one_dump() -> None:
    entries = _entries(25)
    pulled = [0]
    out = Recorder(pulled)
    write_entries_json(out, _counting(entries, pulled), chunk=10)
    assert out.at_first_write == 10
    assert out.getvalue() == json.dumps([entry_to_dict(e) for e in entries]) + "\n"
    empty = io.StringIO()
    write_entries_json(empty, iter([]))
    assert empty.getvalue() == "[]\n"


def test_json_shape(tmp_path: Path) -> None:
    path = make(tmp_path / "j.sqlite3", [{"state": "in_doubt"}, {}])
    rows = listed(path)
    assert [set(r) for r in rows] == [set(entry_to_dict(_entries(1)[0]))] * 2
    first = rows[0]
    assert (first["id"], first["state"], first["terminal"], first["invoice"]) == (
        1, "in_doubt", URL, "HD0001")
    assert first["card_no"] == "970436******1234" and first["card_last4"] == "1234"
    assert "raw_reply" not in first
    assert datetime.fromisoformat(str(first["created_at"])) == DAY + timedelta(minutes=1)
