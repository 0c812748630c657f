"""``ecrlink journal list|show|recover|resolve``: read the journal, settle what is in doubt.

``list`` filters by date, terminal and state, and makes in-doubt rows stand out;
``recover`` asks each terminal with open payments (``last trans``); ``resolve``
records what the cashier read on the terminal's printed receipt.
"""

from __future__ import annotations

import getpass
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING

import click

from .._exceptions import JournalError
from ..journal import Entry, Journal, ResolvedBy, State
from ..journal.store import Page, Selection
from ..payment import OPEN_STATES
from ..protocol import VIETNAM_TIME, Outcome, check_receipt_no
from ..protocol.field_texts import field_error
from .config import TerminalConfig
from .exit_codes import EXIT_CODES_HELP, ExitStatus
from .options import Session, command_options
from .output import (
    entry_to_dict,
    render_entries,
    render_entry,
    render_result,
    row_to_dict,
    write_entries_json,
)

if TYPE_CHECKING:  # loaded by head office's list only (it imports psycopg on use)
    from ..journal.central import Central, SitePage

__all__ = ["journal", "parse_moment"]


def parse_moment(value: str, name: str, *, end: bool = False) -> datetime:
    """``YYYY-MM-DD`` or an ISO date-time, Vietnam time unless it says otherwise.

    A bare date as the end of a period means the whole of that day.
    """
    text = value.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime.combine(day + timedelta(days=1 if end else 0), time())
        else:
            moment = datetime.fromisoformat(text)
    except ValueError:
        raise field_error(name, "date_time", value) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=VIETNAM_TIME)


@click.group("journal", epilog=EXIT_CODES_HELP)
def journal() -> None:
    """The journal: every payment command, what became of it, and what is in doubt."""


_STATES = [s.value for s in State]
DEFAULT_LIMIT = 50
"""How many entries ``journal list`` shows without --limit or --all: the newest."""


@journal.command("list", epilog=EXIT_CODES_HELP)
@click.option("--since", metavar="DATE", help="From this date/time (Vietnam time).")
@click.option("--until", metavar="DATE", help="Up to this date (inclusive) or date-time.")
@click.option("--today", is_flag=True, help="Only today's entries (Vietnam time).")
@click.option(
    "--state", "states", multiple=True, type=click.Choice(_STATES),
    help="Only entries in this state (repeatable).",
)
@click.option("--in-doubt", is_flag=True, help="Only entries still pending or in doubt.")
@click.option(
    "--site", "sites", multiple=True, metavar="SITE",
    help="Head office (--journal postgresql://… filled by `journal sync`): only this "
    "store (repeatable) [default: every store].",
)
@click.option(
    "--limit", type=click.IntRange(min=1), metavar="N",
    help=f"Show the newest N entries of the selection [default: {DEFAULT_LIMIT}]; a footer "
    "says how many more there are. --json follows it too.",
)
@click.option(
    "--all", "show_all", is_flag=True,
    help="Show every entry of the selection, however many (streamed; with --json too).",
)
@command_options(client=False, terminal_help="Only this terminal (URL or configured name).")
def list_(
    session: Session,
    since: str | None,
    until: str | None,
    today: bool,
    states: tuple[str, ...],
    in_doubt: bool,
    sites: tuple[str, ...],
    limit: int | None,
    show_all: bool,
) -> ExitStatus:
    """List journal entries, oldest first: the newest 50 of the selection unless --limit
    or --all says otherwise. In-doubt rows stand out. Head office's database (filled by
    `journal sync`) lists every store's entries, with their site."""
    if show_all and limit is not None:
        raise field_error("--limit", "not_with_all", limit)
    if sites:
        from ..journal.central import check_site

        for site in sites:
            check_site(site, "--site")
    start = parse_moment(since, "--since") if since else None
    stop = parse_moment(until, "--until", end=True) if until else None
    if today:
        midnight = datetime.combine(datetime.now(VIETNAM_TIME).date(), time(), VIETNAM_TIME)
        start, stop = midnight, midnight + timedelta(days=1)
    wanted = frozenset(State(s) for s in states) if states else None
    if in_doubt:
        wanted = frozenset({State.PENDING, State.IN_DOUBT})
    selection = Selection(start, stop, session.terminal_url_filter(), wanted)
    name = session.journal_name()
    central = None
    if name and _is_url(name):
        from ..journal.central import Central

        central = Central.probe(name)
    if central is not None:
        with central:
            _list_central(session, central, selection, list(dict.fromkeys(sites)) or None,
                          None if show_all else limit or DEFAULT_LIMIT)
        return ExitStatus.OK
    if sites:
        raise field_error("--site", "central_only")
    with session.open_journal() as j:
        if show_all:
            _list_all(session, j, selection)
        else:
            _list_page(session, j, selection, limit or DEFAULT_LIMIT)
    return ExitStatus.OK


def _list_page(session: Session, j: Journal, selection: Selection, limit: int) -> None:
    """The newest ``limit`` entries of ``selection``: read, laid out and written alone."""
    page = j.page(selection, limit)
    if session.json:
        session.print_json([entry_to_dict(e) for e in page.entries])
        if page.more:  # stdout is the list alone; a person trying it by hand is told
            session.err.print(_more(session, page), markup=False, highlight=False)
        return
    # Entries in doubt may be older than the page: count them all, from an index.
    doubtful = j.count(selection.only(OPEN_STATES)) if page.more else None
    render_entries(session.out, page.entries, session.lang, str(j.path), more=page.more,
                   more_exact=page.exact, in_doubt=doubtful)


def _is_url(name: str) -> bool:
    return name.split(":", 1)[0].lower() in ("postgresql", "postgres")


def _list_central(
    session: Session, central: Central, selection: Selection, sites: list[str] | None,
    limit: int | None,
) -> None:
    """Head office's list: every store's entries (or ``sites``'), streamed from the
    server; ``limit`` None: all of them."""
    if sites is not None:
        known = [s.site for s in central.sites()]
        unknown = [s for s in sites if s not in known]
        if unknown:  # a typo lists nothing: say which names would
            session.env.err.write(session.t(
                "journal_site_unknown", sites=", ".join(unknown), known=", ".join(known) or "-"
            ) + "\n")
            session.env.err.flush()
    from ..journal.central import redact_url

    sel = selection
    path = redact_url(central.url)
    if limit is None:
        rows = central.entries(sites=sites, terminal=sel.terminal, states=sel.states,
                               since=sel.since, until=sel.until)
        if session.json:
            write_entries_json(session.env.out, rows)
            return
        site_width = max((len(s.site) for s in central.sites()
                          if sites is None or s.site in sites), default=0)
        render_entries(session.out, rows, session.lang, path, id_width=len(str(
            central.last_id(sites))), site_width=site_width)
        return
    page = central.page(limit, sites=sites, terminal=sel.terminal, states=sel.states,
                        since=sel.since, until=sel.until)
    if session.json:
        session.print_json([row_to_dict(e) for e in page.entries])
        if page.more:
            session.err.print(_more(session, page), markup=False, highlight=False)
        return
    doubtful = None
    if page.more:
        doubtful = central.count(sites=sites, terminal=sel.terminal,
                                 states=sel.only(OPEN_STATES).states, since=sel.since,
                                 until=sel.until)
    render_entries(session.out, page.entries, session.lang, path, more=page.more,
                   more_exact=page.exact, in_doubt=doubtful)


def _more(session: Session, page: Page | SitePage) -> str:
    key = "journal_more" if page.exact else "journal_more_many"
    return session.t(key, shown=len(page.entries), total=page.total, more=page.more)


def _list_all(session: Session, j: Journal, selection: Selection) -> None:
    """Every entry of ``selection``, streamed: memory stays flat at any journal size."""
    entries = j.select(selection)
    if session.json:
        write_entries_json(session.env.out, entries)
        return
    terminals = [selection.terminal] if selection.terminal is not None else j.terminals()
    render_entries(session.out, entries, session.lang, str(j.path), terminals=terminals,
                   id_width=len(str(j.last_id())))


@journal.command("show", epilog=EXIT_CODES_HELP)
@click.argument("entry_id", metavar="ID", type=int)
@command_options(terminal=False, client=False)
def show(session: Session, entry_id: int) -> ExitStatus:
    """Show one journal entry in full, with its history."""
    with session.open_journal() as j:
        entry = j.get(entry_id)
        history = j.history(entry_id)
        if session.json:
            session.print_json({**entry_to_dict(entry), "history": history})
        else:
            render_entry(session.out, entry, history, session.lang)
    return ExitStatus.OK


def _targets(session: Session, j: Journal) -> list[TerminalConfig]:
    if session.terminal is not None:
        return [session.terminal_config()]
    # Every terminal with open payments, with its settings from the config if named there.
    by_url = {c.url: c for c in session.config().terminals.values()}
    urls = sorted({e.terminal for e in j.unresolved()})
    return [by_url.get(url, TerminalConfig(url=url)) for url in urls]


@journal.command("recover", epilog=EXIT_CODES_HELP)
@command_options(
    journal=True, terminal_help="Only this terminal [default: every terminal with open "
    "payments in the journal].",
)
def recover(session: Session) -> ExitStatus:
    """Ask the terminals about payments in doubt (last trans) and record the answers."""
    if not session.use_journal:
        raise JournalError("journal recover needs the journal; drop --no-journal")
    with session.open_journal() as j:
        targets = _targets(session, j)
    results = []
    for target in targets:
        if not session.json:
            session.err.print(
                session.t("recovering", terminal=target.url), markup=False, highlight=False
            )
        with session.open_terminal(target) as pos:
            results += pos.recover()
    if session.json:
        session.print_json([r.to_dict(session.lang) for r in results])
    elif not results:
        session.out.print(session.t("nothing_to_recover"), markup=False)
    else:
        for result in results:
            render_result(session.out, result, session.lang)
    if any(r.outcome is Outcome.UNKNOWN for r in results):
        return ExitStatus.UNKNOWN
    return ExitStatus.OK


@journal.command("resolve", epilog=EXIT_CODES_HELP)
@click.argument("entry_id", metavar="ID", type=int)
@click.option(
    "--approved", "receipt", metavar="RECEIPT",
    help="The payment went through: the receipt number printed by the terminal.",
)
@click.option("--not-approved", is_flag=True, help="The payment did not go through.")
@click.option("--who", metavar="NAME", help="Who checked [default: the login name].")
@click.option("--note", metavar="TEXT", help="Why (kept in the history).")
@command_options(terminal=False, client=False)
def resolve(
    session: Session,
    entry_id: int,
    receipt: str | None,
    not_approved: bool,
    who: str | None,
    note: str | None,
) -> ExitStatus:
    """Record the outcome of payment ID from the terminal's printed receipt."""
    if (receipt is None) == (not not_approved):
        raise field_error("resolve", "one_outcome")
    receipt_no = check_receipt_no(receipt, "--approved").zfill(6) if receipt else None
    if who is None:
        try:
            who = getpass.getuser()
        except (OSError, KeyError):  # no login name in containers and some services
            who = None
    state = State.APPROVED if receipt_no else State.DECLINED
    with session.open_journal() as j:
        entry: Entry = j.resolve(
            entry_id, state, by=ResolvedBy.CASHIER, who=who, note=note, receipt_no=receipt_no
        )
        if session.json:
            session.print_json(entry_to_dict(entry))
        else:
            label = session.t("state_approved" if receipt_no else "state_declined")
            session.out.print(
                session.t("resolved", id=entry_id, state=label), markup=False, highlight=False
            )
    return ExitStatus.OK


# ``journal sync`` (chains, issue 13) lives in its own module; it joins the group here.
from .journal_sync import sync  # noqa: E402

journal.add_command(sync)
