"""A journal opened by its name; a state change that can wait in a spool as JSON."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ecrlink import ConfigError, JournalError
from ecrlink.cli.config import load_config
from ecrlink.journal import Journal, is_database_url, open_journal
from ecrlink.journal.spool import Spool
from ecrlink.journal.store import _FILL, Recorded
from ecrlink.payment import Event


def test_a_path_is_a_sqlite_journal_and_none_is_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = open_journal(tmp_path / "a.sqlite3")
    assert type(journal) is Journal and journal.path == tmp_path / "a.sqlite3"
    journal.close()
    with open_journal() as default:  # $ECRLINK_HOME (the tests' private one)
        assert default.path.name == "journal.sqlite3"
    monkeypatch.setenv("ECRLINK_JOURNAL", str(tmp_path / "named.sqlite3"))
    with open_journal() as named:
        assert named.path == tmp_path / "named.sqlite3"
    with pytest.raises(JournalError, match="no such file"):
        open_journal(tmp_path / "missing.sqlite3", create=False)


@pytest.mark.parametrize(("name", "is_url"), [
    ("postgresql://u@h/db", True), ("POSTGRES://h/db", True), ("postgresql:///db", True),
    ("journal.sqlite3", False), ("C:\\shop\\journal.sqlite3", False),
    ("sqlite:///x", False), ("/var/lib/postgresql/journal", False),
])
def test_which_names_are_databases(name: str, is_url: bool) -> None:
    assert is_database_url(name) is is_url


def test_the_config_file_names_the_journal(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('journal = "postgresql://shop@server/ecrlink"\n', encoding="utf-8")
    assert load_config(path).journal == "postgresql://shop@server/ecrlink"
    for bad in ("journal = 5", 'journal = ""', "journal = [1]"):
        path.write_text(bad + "\n", encoding="utf-8")
        with pytest.raises(ConfigError, match="journal must be a file path or a postgresql"):
            load_config(path)


texts = st.none() | st.text(max_size=30)
fills = st.fixed_dictionaries({}, optional={
    **{c: st.text(max_size=20) for c in _FILL if c not in ("raw_reply", "charged_amount")},
    "raw_reply": st.binary(max_size=200),
    "charged_amount": st.integers(min_value=0, max_value=10**15),
})
learned = st.none() | st.fixed_dictionaries({}, optional={
    "mark": st.text(max_size=30), "mark_valid": st.integers(0, 1), "echoes": st.booleans(),
    "clock_offset": st.floats(allow_nan=False, allow_infinity=False), "tid": st.text(max_size=8),
})


@given(st.integers(min_value=1, max_value=2**62), st.lists(st.sampled_from(Event), min_size=1,
       max_size=3), texts, texts, texts, fills, learned)
def test_a_planned_change_is_the_same_after_json(
    entry_id: int, events: list[Event], by: str | None, who: str | None, note: str | None,
    fill: dict[str, object], learn: dict[str, object] | None,
) -> None:
    change = Recorded(entry_id, tuple(events), by, who, note, fill, learn)
    assert Recorded.from_json(change.to_json()) == change


def test_times_learned_travel_as_the_journal_stores_them() -> None:
    at = datetime(2026, 11, 29, 9, 30, tzinfo=UTC)
    change = Recorded(1, (Event.SENT,), learned={"mark_at": at})
    assert Recorded.from_json(change.to_json()).learned == {
        "mark_at": "2026-11-29T09:30:00.000000+00:00"}


def test_the_spool_keeps_changes_per_journal_until_done(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.sqlite3")
    spool.keep("A", Recorded(1, (Event.SENT, Event.REPLY_APPROVED), fill={"raw_reply": b"x"}))
    spool.keep("B", Recorded(2, (Event.SENT,)))
    spool.keep("A", Recorded(3, (Event.SENT,)))
    assert spool.holds("A") and spool.holds("B") and not spool.holds("C")
    pending = spool.pending("A")
    assert [c.entry_id for _, c in pending] == [1, 3]
    assert pending[0][1].fill == {"raw_reply": b"x"}
    spool.close()
    again = Spool(tmp_path / "spool.sqlite3")  # durable: another process sees them
    for key, _ in again.pending("A"):
        again.done(key)
    assert not again.holds("A") and again.holds("B")
    again.close()


def test_serve_on_an_unreachable_database_journal_is_one_line(tmp_path: Path) -> None:
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = tmp_path / "config.toml"
    config.write_text('[terminals.lane1]\nurl = "http://127.0.0.1:9"\n', encoding="utf-8")
    url = "postgresql://shop:s3cret@127.0.0.1:9/ecrlink"
    env = {**os.environ, "ECRLINK_LANG": "en", "ECRLINK_HOME": str(tmp_path)}
    for how, extra in ((["--journal", url], {}), ([], {"ECRLINK_JOURNAL": url})):
        done = subprocess.run(
            [sys.executable, "-m", "ecrlink", "serve", "--config", str(config),
             "--listen", f"127.0.0.1:{port}", *how],
            capture_output=True, text=True, timeout=60, env={**env, **extra},
            stdin=subprocess.DEVNULL)
        # Named either way, it is the journal served (tests/pg/test_serve_pg.py serves
        # one); unreachable, serve stops at once with the journal's error, no password.
        assert done.returncode == 8, done.stderr
        assert done.stderr.count("\n") == 1 and "shop:***@127.0.0.1:9" in done.stderr
        assert "s3cret" not in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "journal.sqlite3").exists()
    assert not (tmp_path / "bridge.sqlite3").exists()


def test_a_change_the_journal_refuses_for_good_is_set_aside(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.sqlite3")
    spool.keep("A", Recorded(1, (Event.SENT,)))
    [(key, _)] = spool.pending("A")
    spool.failed(key, "no entry 1")
    assert not spool.holds("A") and spool.pending("A") == []
    spool.close()
