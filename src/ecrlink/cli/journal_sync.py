"""``ecrlink journal sync``: ship this store's journal to head office's PostgreSQL.

Once (ship what is new, then exit) or ``--follow`` (keep shipping each payment and each
state change as it is written, retrying while head office is unreachable). The store's
own journal stays the authority and is only read. psycopg is imported only here, when
the command runs.
"""

from __future__ import annotations

import signal
import sys
import threading
import time

import click

from .._exceptions import ConfigError
from ..journal.store import default_journal_path
from .exit_codes import EXIT_CODES_HELP, ExitStatus
from .options import Session, command_options

__all__ = ["sync"]

# (Vietnamese, English). Operators read these; the cashier's sales never wait on them.
_MESSAGES = {
    "done": (
        "Đã gửi {changes} thay đổi ({entries} giao dịch) về trụ sở cho {site}; "
        "đã đồng bộ đến thay đổi số {shipped}.",
        "Shipped {changes} changes ({entries} entries) to head office for {site}; "
        "in sync up to change {shipped}.",
    ),
    "following": (
        "Đang theo dõi nhật ký {journal} và gửi về {url} cho {site} (Ctrl-C để dừng).",
        "Following {journal}, shipping to {url} as {site} (Ctrl-C to stop).",
    ),
    "waiting": (
        "{at} chưa có nhật ký (chưa có giao dịch nào); đang chờ giao dịch đầu tiên.",
        "{at} no journal yet (no payment so far); waiting for the first one.",
    ),
    "shipped": (
        "{at} đã gửi {changes} thay đổi; đồng bộ đến thay đổi số {shipped}.",
        "{at} shipped {changes} changes; in sync up to change {shipped}.",
    ),
    "unreachable": (
        "{at} không kết nối được trụ sở ({error}); thử lại sau {delay:.1f} giây. "
        "Bán hàng vẫn tiếp tục, nhật ký giữ mọi giao dịch.",
        "{at} head office unreachable ({error}); retrying in {delay:.1f} s. "
        "Sales go on; the journal keeps every payment.",
    ),
    "reconnected": (
        "{at} đã kết nối lại trụ sở; đang gửi phần còn thiếu.",
        "{at} head office reachable again; catching up.",
    ),
}


def _say(session: Session, key: str, **values: object) -> str:
    vi, en = _MESSAGES[key]
    return (vi if session.lang == "vi" else en).format(**values)


@click.command("sync", epilog=EXIT_CODES_HELP)
@click.option(
    "--to", "url", metavar="URL",
    help="Head office's PostgreSQL, postgresql://user@host/database [default: [central] "
    "url in the config file].",
)
@click.option(
    "--site", metavar="NAME",
    help="This store's name in the chain [default: site in the config file].",
)
@click.option(
    "--follow", is_flag=True,
    help="Keep running: ship each payment and change as it is written; while head office "
    "is unreachable, keep retrying (sales are never held up).",
)
@click.option(
    "--batch", type=click.IntRange(1, 5000), default=500, show_default=True,
    help="Changes per transaction.",
)
@click.option(
    "--interval", type=click.FloatRange(min=0.05), default=1.0, show_default=True,
    metavar="SECONDS", help="With --follow: how often to look for new changes.",
)
@click.option(
    "--retry-max", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
    metavar="SECONDS", help="With --follow: the longest wait between attempts.",
)
@command_options(terminal=False, client=False)
def sync(
    session: Session,
    url: str | None,
    site: str | None,
    follow: bool,
    batch: int,
    interval: float,
    retry_max: float,
) -> ExitStatus:
    """Ship this store's journal to head office's PostgreSQL (every entry and change)."""
    # Here, not at the top: `journal list` and the other journal commands import this
    # module to register it.
    from ..journal.central import check_central_url, check_site, redact_url

    config = session.config()
    url = url or config.central_url
    if not url:
        raise ConfigError(
            f"--to: none given; use --to postgresql://user@host/database or set [central] "
            f"url in {config.path}"
        )
    url = check_central_url(url, "--to")
    site = check_site(site or config.site, "--site") if (site or config.site) else None
    if site is None:
        raise ConfigError(f"--site: none given; use --site STORE42 or set site in {config.path}")
    # The store's own journal file, named as for every command (--journal >
    # ECRLINK_JOURNAL > the config's journal), else the default one.
    journal = session.journal_name() or str(default_journal_path())
    if "://" in journal:
        raise ConfigError(
            "--journal: journal sync ships a store's own journal file; this store's "
            "journal is already a database server (read it there)"
        )

    # Imported here: psycopg is loaded by this command only.
    from ..journal.sync import Backoff, follow_journal, sync_once

    if not follow:
        progress = sync_once(journal, url, site, batch=batch)
        if session.json:
            session.print_json({"site": site, "changes": progress.changes,
                                "entries": progress.entries, "batches": progress.batches,
                                "shipped": progress.shipped})
        else:
            session.env.out.write(_say(session, "done", site=site, changes=progress.changes,
                                       entries=progress.entries, shipped=progress.shipped)
                                  + "\n")
        return ExitStatus.OK

    stop = threading.Event()
    if threading.current_thread() is threading.main_thread() and sys.platform != "win32":
        # A service manager's stop: finish the batch in hand (or none), then exit 0.
        signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())

    def report(key: str, values: dict[str, object]) -> None:
        if session.json and key == "shipped":  # one JSON object per line on stdout
            session.print_json({"site": site, "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                **values})
            return
        line = _say(session, key, at=time.strftime("%H:%M:%S"), **values)
        stream = session.env.out if key == "shipped" else session.env.err
        stream.write(("" if key == "shipped" else "ecrlink: ") + line + "\n")
        stream.flush()

    session.env.err.write("ecrlink: " + _say(
        session, "following", journal=journal, url=redact_url(url), site=site) + "\n")
    session.env.err.flush()
    follow_journal(journal, url, site, batch=batch, interval=interval,
                   backoff=Backoff(cap=retry_max), say=report, stop=stop)
    return ExitStatus.OK
