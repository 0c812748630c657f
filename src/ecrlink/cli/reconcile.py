"""``ecrlink reconcile``: the register's payments against the bank's statement.

``ecrlink.reconcile`` (and polars with it) is imported inside the command, so that
other commands never load it.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, cast

import click

from .._exceptions import EcrError, ReconcileError
from ..journal import Entry, Journal, ResolvedBy, State, default_journal_path
from ..protocol import VIETNAM_TIME as VN_TZ
from .exit_codes import ExitStatus, exit_status_for
from .messages import default_lang
from .output import format_vnd
from .streams import SafeStream

if TYPE_CHECKING:
    from rich.console import Console

    from ..reconcile import Lang, Report, Resolver

__all__ = ["reconcile_command"]


# --- journal adapter -------------------------------------------------------------------
# The only place that touches the journal, through its API: Journal(path) (None: the
# default journal), .entries(since=, until=, commands=) with aware datetimes, and
# .resolve(entry_id, state, by=, who=, note=).

_MARGIN = timedelta(days=1)
"""The journal filters on creation time, reconciliation on the terminal's time: ask
for a day more on each side and let ``reconcile`` cut the period exactly."""


def _journal_wanted(path: Path | None, invoices: Path | None) -> bool:
    """The journal is the register side without an invoice list; with one, it lends
    card data when named, or when the default journal exists (never created for it)."""
    if path is not None or invoices is None:
        return True
    return default_journal_path().exists()


def _load_journal_entries(
    path: Path | None, since: datetime | None, until: datetime | None
) -> tuple[list[Entry], Resolver]:
    """The journal's sales and voids around the period, and a resolver that records
    in the same journal what the statement proves."""
    journal = Journal(path, create=path is None)
    entries = list(journal.entries(
        since=since.replace(tzinfo=VN_TZ) - _MARGIN if since else None,
        until=until.replace(tzinfo=VN_TZ) + _MARGIN if until else None,
        commands=("sale", "void"),
    ))

    def resolve(entry: Entry, state: State, note: str) -> None:
        journal.resolve(
            entry.id, state, by=ResolvedBy.RECONCILIATION, who="ecrlink reconcile", note=note
        )

    return entries, resolve


# --- options ---------------------------------------------------------------------------

DEFAULT_WINDOW_TEXT = "24h"
"""``ecrlink.reconcile.DEFAULT_WINDOW`` as the option writes it (a test keeps both equal)."""
_WINDOW = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([dhm]?)\s*", re.IGNORECASE)
_UNIT = {"d": "days", "h": "hours", "m": "minutes", "": "hours"}


def _parse_window(value: str) -> timedelta:
    m = _WINDOW.fullmatch(value)
    if not m:
        raise click.BadParameter(f"{value!r}: write e.g. 24h, 90m or 2d", param_hint="--window")
    return timedelta(**{_UNIT[m[2].lower()]: float(m[1])})


def _parse_day(value: str | None, *, end: bool, option: str) -> datetime | None:
    if value is None:
        return None
    from ..reconcile.values import parse_datetime

    try:
        moment = parse_datetime(value)
    except ReconcileError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None
    if end and ":" not in value and moment.time() == time(0):
        # A day alone, as the end of a period, means all of that day.
        moment += timedelta(days=1, microseconds=-1)
    return moment


_TEXT: dict[Lang, dict[str, str]] = {
    "en": {
        "title": "Reconciliation",
        "category": "Category",
        "count": "Count",
        "amount": "Amount",
        "todo": "What to do",
        "period": "Period",
        "all": "everything in the files",
        "bank": "Bank statement",
        "register": "Register",
        "in_doubt": "{n} payment(s) still in doubt: the statement does not show them.",
        "resolved": "{n} in-doubt payment(s) proved approved by the statement, "
        "recorded in the journal.",
        "dropped": "Left out: {bank} bank row(s), {register} register row(s) "
        "(declined, or outside the period).",
        "attention": "Needs attention",
        "more": "… and {n} more: write them all with --out report.xlsx",
        "ok": "Everything matched.",
        "written": "Report written to {path}",
    },
    "vi": {
        "title": "Đối soát",
        "category": "Loại",
        "count": "Số GD",
        "amount": "Số tiền",
        "todo": "Cần làm",
        "period": "Kỳ đối soát",
        "all": "toàn bộ dữ liệu trong tệp",
        "bank": "Sao kê ngân hàng",
        "register": "Máy tính tiền",
        "in_doubt": "{n} giao dịch chưa rõ kết quả: sao kê không có.",
        "resolved": "{n} giao dịch chưa rõ kết quả đã được sao kê xác nhận thành công, "
        "đã ghi vào nhật ký.",
        "dropped": "Bỏ qua: {bank} dòng ngân hàng, {register} dòng máy tính tiền "
        "(bị từ chối hoặc ngoài kỳ).",
        "attention": "Cần xử lý",
        "more": "… và {n} dòng nữa: xuất đủ với --out report.xlsx",
        "ok": "Tất cả đều khớp.",
        "written": "Đã ghi báo cáo: {path}",
    },
}
_SHOWN_ROWS = 20


def _print_summary(console: Console, report: Report, lang: Lang, out: Path | None) -> None:
    from rich.table import Table

    from ..reconcile import ADVICE, LABELS, Category

    text = _TEXT[lang]
    period = (
        f"{report.since or '…'} → {report.until or '…'}"
        if report.since or report.until
        else text["all"]
    )
    console.print(f"[bold]{text['title']}[/bold]  {text['period']}: {period}")
    console.print(f"{text['bank']}: {report.bank_source}   "
                  f"{text['register']}: {report.register_source}")
    table = Table(show_lines=False)
    table.add_column(text["category"])
    table.add_column(text["count"], justify="right")
    table.add_column(text["amount"], justify="right")
    table.add_column(text["todo"])
    for category, totals in report.summary.items():
        style = "bold red" if category.needs_attention and totals.count else None
        table.add_row(
            LABELS[lang][category],
            str(totals.count),
            format_vnd(totals.amount),
            ADVICE[lang][category] if totals.count else "",
            style=style,
        )
    console.print(table)
    shown = 0
    problems = (
        row
        for category, totals in report.summary.items()
        if category.needs_attention and totals.count
        for row in report.rows(category)
    )
    listing = Table(title=text["attention"], title_justify="left")
    for name in ("category", "time", "amount", "invoice", "card", "approval", "ref_no", "row"):
        listing.add_column(name)
    extra = in_doubt = 0
    for row in problems:
        if row.category is Category.ECR_ONLY and row.in_doubt:
            in_doubt += 1
        if shown >= _SHOWN_ROWS:
            extra += 1
            continue
        side = row.bank or row.register or row.bank_void or row.register_void
        assert side is not None
        where = (f"bank {row.bank.row}" if row.bank else "") + (
            f" reg {row.register.row}" if row.register else ""
        )
        flag = " (in doubt)" if row.in_doubt else ""
        listing.add_row(
            row.category.value + flag,
            side.time.strftime("%d/%m/%Y %H:%M:%S") if side.time else "",
            format_vnd(row.amount) + (f" ({row.difference:+,})" if row.difference else ""),
            side.invoice,
            side.card,
            side.approval,
            side.ref_no,
            where.strip() or str(side.row),
        )
        shown += 1
    if shown:
        console.print(listing)
        if extra:
            console.print(text["more"].format(n=extra))
    if in_doubt:
        console.print(text["in_doubt"].format(n=in_doubt))
    if report.resolved:
        console.print(text["resolved"].format(n=len(report.resolved)))
    if any(report.dropped.values()):
        console.print(text["dropped"].format(
            bank=report.dropped.get("bank", 0), register=report.dropped.get("register", 0)
        ))
    if not report.needs_attention:
        console.print(f"[green]{text['ok']}[/green]")
    if out is not None:
        console.print(text["written"].format(path=out))


def _write_atomically(report: Report, out: Path, lang: Lang) -> None:
    """Write beside the target and rename, so a failed run never leaves a partial
    report under the real name."""
    directory = out.resolve().parent
    try:
        fd, tmp = tempfile.mkstemp(prefix=".ecrlink-", suffix=out.suffix, dir=directory)
    except OSError as exc:
        raise ReconcileError(f"cannot write {out}: {exc.strerror}") from None
    os.close(fd)
    from ..reconcile import write_report

    try:
        write_report(report, tmp, lang)
        try:
            os.replace(tmp, out)
        except OSError as exc:
            raise ReconcileError(f"cannot write {out}: {exc.strerror}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@click.command("reconcile")
@click.option("--bank", "bank", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The bank's statement (CSV or XLSX).")
@click.option("--invoices", type=click.Path(dir_okay=False, path_type=Path),
              help="The register's invoice list (CSV or XLSX); else the journal.")
@click.option("--journal", type=click.Path(dir_okay=False, path_type=Path),
              help="The journal file; with --invoices it lends card data to invoices.")
@click.option("--from", "since", metavar="DATE", help="First day (dd/mm/yyyy or yyyy-mm-dd).")
@click.option("--to", "until", metavar="DATE", help="Last day, included.")
@click.option("--window", default=DEFAULT_WINDOW_TEXT,
              show_default=True, help="How far apart card + approval matches may be dated.")
@click.option("--mapping", type=click.Path(dir_okay=False, path_type=Path),
              help="A mapping file naming columns (TOML, or JSON).")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON report instead.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the report: .xlsx, .csv or .json.")
@click.option("--lang", type=click.Choice(["vi", "en"]), default=None,
              help="Language of the summary (default: ECRLINK_LANG, else the locale).")
def reconcile_command(
    bank: Path,
    invoices: Path | None,
    journal: Path | None,
    since: str | None,
    until: str | None,
    window: str,
    mapping: Path | None,
    as_json: bool,
    out: Path | None,
    lang: Lang | None,
) -> None:
    """Match card payments to invoices against the bank's statement (đối soát).

    Exit status: 0 all matched or voided, 10 discrepancies found, 4 bad input
    (the table in ecrlink --help).
    """
    lang = lang or default_lang(os.environ)
    from rich.console import Console

    from ..reconcile import json_chunks, reconcile

    try:
        start = _parse_day(since, end=False, option="--from")
        end = _parse_day(until, end=True, option="--to")
        span = _parse_window(window)
        entries: list[Entry] | None = None
        resolver: Resolver | None = None
        if _journal_wanted(journal, invoices):
            entries, resolver = _load_journal_entries(journal, start, end)
        report = reconcile(
            bank, invoices=invoices, entries=entries, since=start, until=end,
            window=span, resolve=resolver, mapping=mapping,
        )  # fmt: skip
        if out is not None:
            _write_atomically(report, out, lang)
    except click.BadParameter as exc:
        click.echo(f"ecrlink reconcile: error: {exc.format_message()}", err=True)
        sys.exit(exit_status_for(exc))
    except EcrError as exc:
        click.echo(f"ecrlink reconcile: error: {exc}", err=True)
        sys.exit(exit_status_for(exc))
    stdout = cast(IO[str], SafeStream(sys.stdout))  # CliRunner swaps sys.stdout in tests
    if as_json:
        for chunk in json_chunks(report, ascii_only=True):
            stdout.write(chunk.decode("ascii"))
    else:
        _print_summary(Console(file=stdout, highlight=False), report, lang, out)
    sys.exit(ExitStatus.DISCREPANCIES if report.needs_attention else ExitStatus.OK)
