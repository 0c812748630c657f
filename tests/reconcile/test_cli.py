"""``ecrlink reconcile`` as a person or a nightly job runs it."""

from __future__ import annotations

import io
import json
import random
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from ecrlink.cli import cli
from ecrlink.cli.exit_codes import ExitStatus
from ecrlink.journal import Journal, ResolvedBy, State
from ecrlink.payment import Event
from ecrlink.protocol import Sale, parse_reply
from tests.conftest import fixture_bytes

from .conftest import DAY, bank_row, entry, write_bank, write_csv


@pytest.fixture(autouse=True)
def english(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ECRLINK_LANG", "LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LANG", "C.UTF-8")


def _run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, ["reconcile", *args], env=env)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    bank = write_bank(tmp_path / "bank.csv", [
        bank_row(150_000, invoice="HD1", approval="1"),
        bank_row(85_000, invoice="HD2", approval="2"),
    ])  # fmt: skip
    good = write_csv(tmp_path / "good.csv", ["Mã hóa đơn", "Số tiền"],
                     [["HD1", "150.000"], ["HD2", "85.000"]])
    short = write_csv(tmp_path / "short.csv", ["Mã hóa đơn", "Số tiền"], [["HD1", "150.000"]])
    return {"bank": bank, "good": good, "short": short, "dir": tmp_path}


def test_all_matched_exits_0(files: dict[str, Path]) -> None:
    result = _run("--bank", str(files["bank"]), "--invoices", str(files["good"]))
    assert result.exit_code == 0, result.output
    assert "Matched" in result.output and "Everything matched" in result.output


def test_discrepancies_exit_1_and_are_listed(files: dict[str, Path]) -> None:
    result = _run("--bank", str(files["bank"]), "--invoices", str(files["short"]))
    assert result.exit_code == ExitStatus.DISCREPANCIES
    assert "Money taken, no invoice" in result.output
    assert "HD2" in result.output  # the row that needs attention is shown


def test_vietnamese_by_option_or_locale(files: dict[str, Path]) -> None:
    args = ("--bank", str(files["bank"]), "--invoices", str(files["short"]))
    assert "Ngân hàng đã thu" in _run(*args, "--lang", "vi").output
    assert "Đối soát" in _run(*args, env={"LANG": "vi_VN.UTF-8"}).output
    assert "Reconciliation" in _run(*args, "--lang", "en", env={"LANG": "vi_VN.UTF-8"}).output


def test_json_output(files: dict[str, Path]) -> None:
    result = _run("--bank", str(files["bank"]), "--invoices", str(files["short"]), "--json")
    assert result.exit_code == ExitStatus.DISCREPANCIES
    doc = json.loads(result.output)
    assert doc["summary"]["bank_only"] == {"count": 1, "amount": 85_000}
    assert doc["summary"]["matched"]["count"] == 1
    assert {r["category"] for r in doc["rows"]} == {"bank_only", "matched"}


@pytest.mark.parametrize("suffix", [".xlsx", ".csv", ".json"])
def test_out_file(files: dict[str, Path], suffix: str) -> None:
    out = files["dir"] / f"report{suffix}"
    result = _run("--bank", str(files["bank"]), "--invoices", str(files["good"]),
                  "--out", str(out))
    assert result.exit_code == 0 and out.stat().st_size > 0
    assert not list(files["dir"].glob(".ecrlink-*"))


def test_bad_input_exits_2_with_one_line_and_no_report(files: dict[str, Path]) -> None:
    bad = write_bank(files["dir"] / "bad.csv", [bank_row(1), ["02/03/2026", "", "", "", "1,5"]])
    out = files["dir"] / "report.xlsx"
    result = CliRunner().invoke(
        cli, ["reconcile", "--bank", str(bad), "--invoices", str(files["good"]),
              "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == ExitStatus.BAD_INPUT
    message = result.stderr.strip()
    assert "\n" not in message
    assert str(bad) in message and "row 3" in message and "'Amount'" in message
    assert not out.exists()
    assert result.stdout == ""


@pytest.mark.parametrize(
    "options",
    [["--from", "yesterday"], ["--window", "soon"], ["--engine", "fast"], ["--lang", "fr"]],
)
def test_bad_options_exit_2(files: dict[str, Path], options: list[str]) -> None:
    result = _run("--bank", str(files["bank"]), "--invoices", str(files["good"]), *options)
    assert result.exit_code == ExitStatus.BAD_INPUT


def test_period_from_and_to_days(files: dict[str, Path]) -> None:
    args = ("--bank", str(files["bank"]), "--invoices", str(files["short"]), "--json")
    doc = json.loads(_run(*args, "--from", "02/03/2026", "--to", "2026-03-02").output)
    assert doc["period"] == {"from": "2026-03-02 00:00:00", "to": "2026-03-02 23:59:59.999999"}
    assert doc["summary"]["bank_only"]["count"] == 1  # the whole last day is in
    doc = json.loads(_run(*args, "--from", "03/03/2026").output)
    assert doc["summary"]["matched"]["count"] == 0 and doc["dropped"]["bank"] == 2


def test_journal_in_doubt_resolved_and_recorded(files: dict[str, Path]) -> None:
    path = files["dir"] / "journal.sqlite3"
    journal = Journal(path)
    sale = Sale.build(85_000, request_id="r1", client_id="c", invoice="HD2")
    entry_id = journal.begin("http://pos", sale)
    journal.record(entry_id, Event.SENT, Event.LOST, note="no reply")
    result = _run("--bank", str(files["bank"]), "--journal", str(path), "--json")
    doc = json.loads(result.output)
    assert doc["resolved"] == [entry_id]
    assert doc["summary"]["matched"]["count"] == 1
    assert doc["summary"]["bank_only"]["count"] == 1  # HD1 is not in this journal
    resolved = Journal(path).get(entry_id)
    assert resolved.state is State.APPROVED
    assert resolved.resolved_by is ResolvedBy.RECONCILIATION
    assert resolved.note is not None and "bank.csv row 3" in resolved.note


def test_summary_counts_in_doubt_and_resolved(files: dict[str, Path]) -> None:
    path = files["dir"] / "journal.sqlite3"
    journal = Journal(path)
    for n, (amount, invoice) in enumerate([(85_000, "HD2"), (40_000, "HD3")]):
        sale = Sale.build(amount, request_id=f"r{n}", client_id="c", invoice=invoice)
        journal.record(journal.begin("http://pos", sale), Event.SENT, Event.LOST, note="no reply")
    result = _run("--bank", str(files["bank"]), "--journal", str(path))
    assert result.exit_code == ExitStatus.DISCREPANCIES
    assert "1 payment(s) still in doubt" in result.output  # HD3: not on the statement
    assert "1 in-doubt payment(s) proved approved" in result.output  # HD2


def test_default_register_side_is_the_journal(files: dict[str, Path]) -> None:
    result = _run("--bank", str(files["bank"]), "--json")
    # an empty default journal: both bank rows unexplained
    assert result.exit_code == ExitStatus.DISCREPANCIES
    assert json.loads(result.output)["summary"]["bank_only"]["count"] == 2


def test_out_into_a_missing_directory_is_bad_input(files: dict[str, Path]) -> None:
    out = files["dir"] / "nowhere" / "report.csv"
    result = _run("--bank", str(files["bank"]), "--invoices", str(files["good"]),
                  "--out", str(out))
    assert result.exit_code == ExitStatus.BAD_INPUT and "cannot write" in result.stderr


def test_default_journal_lends_card_data_to_invoices(
    files: dict[str, Path], private_data_dir: Path
) -> None:
    # The fixture's sale: 123456 VND, card ...6163, approval 111112, 14/06/2015.
    when = datetime(2015, 6, 14, 15, 55, 43)
    bank = write_bank(files["dir"] / "nocodes.csv", [bank_row(123_456, at=when)])
    invoices = write_csv(files["dir"] / "one.csv", ["Mã hóa đơn", "Số tiền"], [["HD9", "123456"]])
    args = ("--bank", str(bank), "--invoices", str(invoices), "--json")
    assert json.loads(_run(*args).output)["summary"]["ecr_only"]["count"] == 1
    assert not (private_data_dir / "journal.sqlite3").exists()  # not created for it
    journal = Journal()
    sale = Sale.build(123_456, request_id="Request:001", client_id="UserName:Manh123",
                      invoice="HD9")
    journal.record(journal.begin("http://pos", sale), Event.SENT, Event.REPLY_APPROVED,
                   result=parse_reply(fixture_bytes("sale_approved_swipe.json")))
    doc = json.loads(_run(*args).output)
    assert doc["summary"]["matched"]["count"] == 1
    assert doc["rows"][0]["key"] == "card_approval"
    assert doc["rows"][0]["register"]["card"] == "9704 XXXX XXXX 6163"


def test_a_missing_journal_path_is_refused_not_created(tmp_path: Path) -> None:
    bank = tmp_path / "bank.csv"
    bank.write_text("Ngày giao dịch,Số tiền,Mã chuẩn chi,Số thẻ\n")
    typo = tmp_path / "jounral.sqlite3"
    result = _run("--bank", str(bank), "--journal", str(typo))
    assert result.exit_code == ExitStatus.JOURNAL_ERROR and "no such file" in result.stderr
    assert not typo.exists()


def test_other_commands_never_import_reconciliation() -> None:
    """polars, fastexcel and xlsxwriter load only when reconcile runs (a fast `sale`)."""
    import subprocess
    import sys

    probe = (
        "import sys, ecrlink.cli\n"
        "print(sorted(m for m in sys.modules if m.startswith(('ecrlink.reconcile', 'polars',"
        " 'fastexcel', 'xlsxwriter'))))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"


def test_the_window_option_default_is_the_library_default() -> None:
    from ecrlink.cli.reconcile import DEFAULT_WINDOW_TEXT, _parse_window
    from ecrlink.reconcile import DEFAULT_WINDOW

    assert _parse_window(DEFAULT_WINDOW_TEXT) == DEFAULT_WINDOW


def test_summary_lists_the_first_rows_of_the_whole_sorted_report(tmp_path: Path) -> None:
    """The summary builds only the rows it shows; they are the first of the full report
    (every row built and sorted), across categories, and the rest are counted."""
    from rich.console import Console

    from ecrlink.cli.reconcile import _SHOWN_ROWS, _print_summary
    from ecrlink.reconcile import Category, reconcile

    rng = random.Random(14)
    bank, entries = [], []
    plan = ["bank_only"] * 8 + ["duplicate"] * 6 + ["ecr_only"] * 30 + ["mismatch"] * 10
    plan += ["matched"] * 1500
    rng.shuffle(plan)
    ecr_only = 0
    for n, case in enumerate(plan):
        at = DAY + timedelta(minutes=rng.randrange(90))  # many rows share a time
        invoice, amount = f"HD{n:05d}", rng.randrange(1, 900) * 1000
        approval = f"{n:06d}"
        state = State.APPROVED
        if case == "ecr_only":
            ecr_only += 1
            state = State.IN_DOUBT if ecr_only % 3 == 0 else State.APPROVED
        if case != "bank_only":
            entries.append(entry(amount, invoice=invoice, approval=approval, at=at, state=state))
        if case in ("matched", "mismatch", "duplicate", "bank_only"):
            charged = amount + 1000 if case == "mismatch" else amount
            bank.append(bank_row(charged, invoice=invoice, approval=approval, at=at))
        if case == "duplicate":
            bank.append(bank_row(amount, invoice=invoice, approval="9" + approval[1:],
                                 at=at + timedelta(minutes=1)))
    report = reconcile(write_bank(tmp_path / "bank.csv", bank), entries=entries)
    out = io.StringIO()
    _print_summary(Console(file=out, width=250, highlight=False), report, "en", None)
    printed = out.getvalue().split("Needs attention", 1)[1].splitlines()
    listed = [[c.strip() for c in line.split("│")[1:-1]] for line in printed if "│" in line]

    everything = [r for r in report.rows() if r.category.needs_attention]  # full sort
    first = everything[:_SHOWN_ROWS]
    assert len({r.category for r in first}) >= 3  # the listing crosses categories
    expected = [
        [r.category.value + (" (in doubt)" if r.in_doubt else ""),
         " ".join(f"{name} {side.row}" for name, side in (("bank", r.bank), ("reg", r.register))
                  if side is not None)]
        for r in first
    ]  # fmt: skip
    assert [[cells[0], cells[-1]] for cells in listed] == expected
    assert f"… and {len(everything) - _SHOWN_ROWS} more" in out.getvalue()
    doubtful = sum(r.in_doubt for r in report.rows(Category.ECR_ONLY))
    assert doubtful == 10
    assert f"{doubtful} payment(s) still in doubt" in out.getvalue()
