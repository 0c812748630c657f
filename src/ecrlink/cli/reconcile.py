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
from typing import IO, TYPE_CHECKING, Literal, cast

import click

from .._exceptions import EcrError, FieldError, ReconcileError
from ..journal import Entry, Journal, ResolvedBy, State, default_journal_path
from ..journal.backends import is_database_url, open_journal
from ..protocol import VIETNAM_TIME as VN_TZ
from ..protocol.field_texts import field_error, field_message
from .exit_codes import ExitStatus, exit_status_for
from .messages import default_lang
from .output import format_vnd
from .streams import SafeStream

if TYPE_CHECKING:
    import polars as pl
    from rich.console import Console

    from ..journal.central import Central
    from ..reconcile import Lang, Report, ReportRow, Resolver
    from ..reconcile.sources import JournalEntries

__all__ = ["reconcile_command"]


# --- journal adapter -------------------------------------------------------------------
# The only place that touches the journal, through its API: Journal(path) (None: the
# default journal), .entries(since=, until=, commands=) with aware datetimes, .get(id)
# and .resolve(entry_id, state, by=, who=, note=); head office's Central.entry_frame and
# .entries_at.

_MARGIN = timedelta(days=1)
"""The journal filters on creation time, reconciliation on the terminal's time: ask
for a day more on each side and let ``reconcile`` cut the period exactly."""


def _journal_wanted(path: str | None, invoices: Path | None) -> bool:
    """The journal is the register side without an invoice list; with one, it lends
    card data when named, or when the default journal exists (never created for it)."""
    if path is not None or invoices is None:
        return True
    return default_journal_path().exists()


def _load_journal_entries(
    path: str | None, since: datetime | None, until: datetime | None
) -> tuple[JournalEntries, Resolver]:
    """The journal's sales and voids around the period, as columns, and a resolver
    that records in the same journal what the statement proves (only the proven
    entries are fetched again, by id)."""
    from ..reconcile.sources import JournalEntries, entry_frame

    journal = Journal(None) if path is None else open_journal(path, create=False)

    def read() -> pl.DataFrame:
        return entry_frame(journal.entries(
            since=since.replace(tzinfo=VN_TZ) - _MARGIN if since else None,
            until=until.replace(tzinfo=VN_TZ) + _MARGIN if until else None,
            commands=("sale", "void"),
        ))

    def fetch(rows: pl.DataFrame) -> list[Entry]:
        return [journal.get(i) for i in rows.get_column("id")]

    def resolve(entry: Entry, state: State, note: str) -> None:
        journal.resolve(
            entry.id, state, by=ResolvedBy.RECONCILIATION, who="ecrlink reconcile", note=note
        )

    return JournalEntries(read, fetch), resolve


def _central(path: str | None) -> Central | None:
    """Head office's database if ``path`` names one (``journal list``'s test: a
    database with the chain's schema), else None. Never creates anything."""
    if path is None or not is_database_url(path):
        return None
    from ..journal.central import Central

    return Central.probe(path)


def _site_entries(
    central: Central, sites: list[str] | None, since: datetime | None, until: datetime | None
) -> JournalEntries:
    """Every store's (or ``sites``') sales and voids around the period, streamed from
    head office's server into columns (``Central.entry_frame``: COPY, parsed by polars
    a block at a time; no object per entry) while the statement is read. Only what
    reconciliation keeps is asked for (approved, and the unsettled: pending, sent, in
    doubt): the declined and failed never leave the server. The few entries a report
    names are fetched by (site, id)."""
    from ..reconcile.model import UNSETTLED
    from ..reconcile.sources import JournalEntries

    def read() -> pl.DataFrame:
        return central.entry_frame(
            sites=sites, commands=("sale", "void"),
            states=(State.APPROVED, *sorted(UNSETTLED)),
            since=since.replace(tzinfo=VN_TZ) - _MARGIN if since else None,
            until=until.replace(tzinfo=VN_TZ) + _MARGIN if until else None,
        )  # fmt: skip

    def fetch(rows: pl.DataFrame) -> list[Entry]:
        return central.entries_at(list(rows.select("site", "id").iter_rows()))

    return JournalEntries(read, fetch, by_site=True)


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
        "at_store": "{n} in-doubt payment(s) proven approved by the statement: resolve "
        "them at the store (head office never writes a store's journal):",
        "by_site": "Per store",
        "by_mid": "Per MID",
        "site": "Store",
        "no_site": "(bank only)",
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
        "at_store": "{n} giao dịch chưa rõ kết quả đã được sao kê xác nhận thành công: "
        "cập nhật tại cửa hàng (trụ sở không ghi vào nhật ký của cửa hàng):",
        "by_site": "Theo cửa hàng",
        "by_mid": "Theo MID",
        "site": "Cửa hàng",
        "no_site": "(chỉ ngân hàng)",
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
    # Only the rows shown are built: the first of each category that needs attention,
    # in the report's order; the rest are counted (a million-row report lists 20).
    attention = [c for c, t in report.summary.items() if c.needs_attention and t.count]
    problems: list[ReportRow] = []
    for category in attention:
        if len(problems) >= _SHOWN_ROWS:
            break
        problems += report.rows(category, limit=_SHOWN_ROWS - len(problems))
    extra = sum(report.summary[c].count for c in attention) - len(problems)
    in_doubt = report.count_in_doubt(Category.ECR_ONLY)
    listing = Table(title=text["attention"], title_justify="left")
    site_column = ("site",) if report.by_site else ()
    for name in ("category", *site_column, "time", "amount", "invoice", "card", "approval",
                 "ref_no", "row"):
        listing.add_column(name)
    for row in problems:
        side = row.bank or row.register or row.bank_void or row.register_void
        assert side is not None
        where = (f"bank {row.bank.row}" if row.bank else "") + (
            f" reg {row.register.row}" if row.register else ""
        )
        flag = " (in doubt)" if row.in_doubt else ""
        listing.add_row(
            row.category.value + flag,
            *((row.site or "",) if report.by_site else ()),
            side.time.strftime("%d/%m/%Y %H:%M:%S") if side.time else "",
            format_vnd(row.amount) + (f" ({row.difference:+,})" if row.difference else ""),
            side.invoice,
            side.card,
            side.approval,
            side.ref_no,
            where.strip() or str(side.row),
        )
    shown = len(problems)
    if shown:
        console.print(listing)
        if extra:
            console.print(text["more"].format(n=extra))
    if in_doubt:
        console.print(text["in_doubt"].format(n=in_doubt))
    if report.by_site:
        _print_totals(console, report, lang)
        if report.resolved:
            console.print(text["at_store"].format(n=len(report.resolved)))
            for site, entry in report.resolved_at_sites:
                console.print(f"  {site} #{entry.id}", markup=False, highlight=False)
    elif report.resolved:
        console.print(text["resolved"].format(n=len(report.resolved)))
    if any(report.dropped.values()):
        console.print(text["dropped"].format(
            bank=report.dropped.get("bank", 0), register=report.dropped.get("register", 0)
        ))
    if not report.needs_attention:
        console.print(f"[green]{text['ok']}[/green]")
    if out is not None:
        console.print(text["written"].format(path=out))


def _print_totals(console: Console, report: Report, lang: Lang) -> None:
    """Head office's totals: per store and per MID, each category's count and amount."""
    from rich.table import Table

    from ..reconcile import Category

    text = _TEXT[lang]
    views: tuple[tuple[Literal["site", "mid"], str], ...] = (
        ("site", text["by_site"]), ("mid", text["by_mid"]),
    )
    for by, title in views:
        totals = report.totals(by)
        table = Table(title=title, title_justify="left")
        # Store names and MIDs are never cut: the money columns wrap instead.
        table.add_column(text["site"] if by == "site" else "MID", no_wrap=True, min_width=max(
            (len(k or text["no_site"]) for k in totals), default=4))
        for category in Category:
            table.add_column(category.value, justify="right")
        for key, per in totals.items():
            table.add_row(key or text["no_site"], *(
                f"{per[c].count} / {format_vnd(per[c].amount)}" if c in per else ""
                for c in Category
            ))
        console.print(table)


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
@click.option("--journal", metavar="FILE|URL",
              help="The journal (a file or postgresql://…); with --invoices it lends card "
              "data to invoices. Head office's database (filled by `journal sync`): every "
              "store's journal, read only.")
@click.option("--site", "sites", multiple=True, metavar="SITE",
              help="Head office (--journal postgresql://…): only this store (repeatable) "
              "[default: every store].")
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
    journal: str | None,
    sites: tuple[str, ...],
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
        if sites:
            from ..journal.central import check_site

            for site in sites:
                check_site(site, "--site")
        central = _central(journal) if _journal_wanted(journal, invoices) else None
        if central is not None:
            report = _reconcile_central(
                central, list(dict.fromkeys(sites)) or None, bank, invoices=invoices,
                since=start, until=end, window=span, mapping=mapping,
            )  # fmt: skip
        else:
            if sites:
                raise field_error("--site", "central_only")
            entries: JournalEntries | None = None
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
    except FieldError as exc:
        click.echo(f"ecrlink reconcile: error: {field_message(exc, lang)}", err=True)
        sys.exit(exit_status_for(exc))
    except EcrError as exc:
        click.echo(f"ecrlink reconcile: error: {exc}", err=True)
        sys.exit(exit_status_for(exc))
    safe = SafeStream(sys.stdout)  # CliRunner swaps sys.stdout in tests
    stdout = cast(IO[str], safe)
    if as_json:
        for chunk in json_chunks(report, ascii_only=True):
            safe.write_bytes(chunk)  # ASCII: the same bytes in any code page
        safe.flush()
    else:
        _print_summary(Console(file=stdout, highlight=False), report, lang, out)
    sys.exit(ExitStatus.DISCREPANCIES if report.needs_attention else ExitStatus.OK)


def _reconcile_central(
    central: Central, sites: list[str] | None, bank: Path, *, invoices: Path | None,
    since: datetime | None, until: datetime | None, window: timedelta, mapping: Path | None,
) -> Report:
    """Every store's journal (or ``sites``') against one statement, streamed from head
    office's server. Read only: what the statement proves is listed for the stores to
    resolve, never written here (each store's journal is the authority)."""
    from ..journal.central import redact_url
    from ..reconcile import reconcile

    with central:
        report = reconcile(
            bank, invoices=invoices, entries=_site_entries(central, sites, since, until),
            since=since, until=until, window=window, resolve=None, mapping=mapping,
        )  # fmt: skip
    if invoices is None:
        report.register_source = redact_url(central.url)
    return report
