"""ecrlink journal list|show|recover|resolve through Click's runner."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ecrlink import Terminal
from ecrlink.cli.exit_codes import ExitStatus
from ecrlink.journal import Journal, State, default_journal_path
from ecrlink.payment import Event, Mark
from ecrlink.protocol import VIETNAM_TIME, Sale
from ecrlink.simulator import Simulator

from .conftest import run


def _in_doubt(
    url: str, amount: int = 42_000, request_id: str = "rq-doubt-1", mark: Mark | None = None
) -> int:
    """A sale journaled as in doubt, as a crash or Ctrl-C leaves it."""
    with Journal(default_journal_path()) as j:
        entry_id = j.begin(
            url, Sale.build(amount, request_id=request_id, client_id="ECRLINK", invoice="HD0042"),
            mark=mark.to_json() if mark else None, mark_at=datetime.now(UTC),
        )
        j.record(entry_id, Event.SENT, Event.LOST, note="interrupted (KeyboardInterrupt)")
    return entry_id


def test_list_shows_entries_and_in_doubt_rows_stand_out(sim: Simulator) -> None:
    assert run("sale", "1000", "--invoice", "HD0001", "-t", sim.http_url).exit_code == 0
    _in_doubt(sim.http_url)
    r = run("journal", "list", "--lang", "en")
    assert r.exit_code == 0
    assert "HD0001" in r.stdout and "approved" in r.stdout
    assert "IN_DOUBT" in r.stdout and "1 payment(s) IN DOUBT" in r.stdout
    vi = run("journal", "list", "--lang", "vi")
    assert "CHƯA RÕ KẾT QUẢ" in vi.stdout and "Trạng thái" in vi.stdout


def test_list_filters_and_json(sim: Simulator) -> None:
    assert run("sale", "1000", "-t", sim.http_url).exit_code == 0
    doubt = _in_doubt("http://192.0.2.1")
    rows = json.loads(run("journal", "list", "--json").stdout)
    assert [r["state"] for r in rows] == ["approved", "in_doubt"]
    assert rows[1]["invoice"] == "HD0042" and "raw_reply" not in rows[1]
    only = json.loads(run("journal", "list", "--in-doubt", "--json").stdout)
    assert [r["id"] for r in only] == [doubt]
    by_state = json.loads(run("journal", "list", "--state", "approved", "--json").stdout)
    assert [r["state"] for r in by_state] == ["approved"]
    by_terminal = json.loads(run("journal", "list", "-t", "http://192.0.2.1", "--json").stdout)
    assert [r["id"] for r in by_terminal] == [doubt]
    today = json.loads(run("journal", "list", "--today", "--json").stdout)
    assert len(today) == 2
    assert json.loads(run("journal", "list", "--until", "2000-01-01", "--json").stdout) == []
    assert len(json.loads(run("journal", "list", "--since", "2000-01-01", "--json").stdout)) == 2


def test_list_bad_date_is_bad_input() -> None:
    r = run("journal", "list", "--since", "yesterday")
    assert r.exit_code == ExitStatus.BAD_INPUT and "--since" in r.stderr


def test_show(sim: Simulator) -> None:
    entry_id = _in_doubt(sim.http_url)
    r = run("journal", "show", str(entry_id), "--lang", "en")
    assert r.exit_code == 0
    assert "HD0042" in r.stdout and "in_doubt" in r.stdout and "journal resolve" in r.stdout
    data = json.loads(run("journal", "show", str(entry_id), "--json").stdout)
    assert data["id"] == entry_id and [h["state"] for h in data["history"]] == [
        "pending", "sent", "in_doubt"
    ]
    missing = run("journal", "show", "999")
    assert missing.exit_code == ExitStatus.JOURNAL_ERROR and "999" in missing.stderr


def test_resolve_approved_and_not_approved(sim: Simulator) -> None:
    first = _in_doubt(sim.http_url, request_id="rq-a")
    second = _in_doubt(sim.http_url, request_id="rq-b")
    r = run("journal", "resolve", str(first), "--approved", "61", "--who", "Lan", "--json")
    assert r.exit_code == 0
    data = json.loads(r.stdout)
    assert data["state"] == "approved" and data["receipt_no"] == "000061"
    assert data["resolved_by"] == "cashier" and data["resolved_who"] == "Lan"
    r = run("journal", "resolve", str(second), "--not-approved", "--lang", "vi")
    assert r.exit_code == 0 and "KHÔNG THÀNH CÔNG" in r.stdout
    again = run("journal", "resolve", str(second), "--not-approved")
    assert again.exit_code == ExitStatus.JOURNAL_ERROR and "not in doubt" in again.stderr


def test_resolve_needs_exactly_one_verdict() -> None:
    assert run("journal", "resolve", "1").exit_code == ExitStatus.BAD_INPUT
    both = run("journal", "resolve", "1", "--approved", "5", "--not-approved")
    assert both.exit_code == ExitStatus.BAD_INPUT
    bad = run("journal", "resolve", "1", "--approved", "x1")
    assert bad.exit_code == ExitStatus.BAD_INPUT and "--approved" in bad.stderr


def test_recover_asks_the_terminal(sim: Simulator) -> None:
    # The terminal did approve it, but our answer was lost. The register knew the
    # terminal's last transaction before sending; last trans (no requestId echo on
    # this firmware) shows a newer one, of our amount.
    with Terminal(sim.http_url, journal=False) as pos:
        mark = Mark.from_last_trans(pos.last_transaction())
        entry_id = _in_doubt(sim.http_url, amount=64_000, request_id="rq-recover-1", mark=mark)
        assert pos.sale(64_000, request_id="rq-recover-1").approved
    r = run("journal", "recover", "--json")
    assert r.exit_code == 0, r.stderr
    [result] = json.loads(r.stdout)
    assert result["outcome"] == "approved" and result["journal_id"] == entry_id
    assert Journal(default_journal_path()).get(entry_id).state is State.APPROVED
    nothing = run("journal", "recover", "--lang", "en")
    assert nothing.exit_code == 0 and "Nothing in doubt" in nothing.stdout


def test_recover_unreachable_terminal_uses_its_configured_timeouts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[terminals.lane9]\nurl = "http://127.0.0.1:1"\nrecovery_timeout = 0.5\n'
        "connect_timeout = 0.2\n"
    )
    monkeypatch.setenv("ECRLINK_CONFIG", str(config))
    entry_id = _in_doubt("http://127.0.0.1:1")
    r = run("journal", "recover", "--json")
    assert r.exit_code == ExitStatus.UNKNOWN  # last trans got no answer: still in doubt
    [result] = json.loads(r.stdout)
    assert result["outcome"] == "unknown" and result["journal_id"] == entry_id


def test_a_journal_path_that_does_not_exist_is_refused_not_created(tmp_path: Path) -> None:
    typo = tmp_path / "jounral.sqlite3"
    for args in (["journal", "list"], ["journal", "show", "1"], ["journal", "recover"]):
        r = run(*args, "--journal", str(typo))
        assert r.exit_code == ExitStatus.JOURNAL_ERROR, (args, r.stderr)
        assert "no such file" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not typo.exists()


def test_show_prints_vietnam_time_like_list() -> None:
    entry_id = _in_doubt("http://127.0.0.1:1", request_id="rq-vn-time")
    with Journal(default_journal_path()) as j:
        created = j.get(entry_id).created_at
    shown = run("journal", "show", str(entry_id), "--lang", "en").stdout
    vietnam = created.astimezone(VIETNAM_TIME).strftime("%d/%m/%Y %H:%M")
    assert vietnam in shown and created.isoformat() not in shown
