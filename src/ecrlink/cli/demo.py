"""``ecrlink demo``: a short business day on the embedded simulator, checked step by step.

It starts the simulator in-process (HTTP and a serial pty), then drives it with the
real ``Terminal`` and a real journal, both in a temporary directory (never the
user's data): approved sales on both transports, a decline, a customer cancel, a
lost reply that recovery resolves, a void, settlement, and reconciliation of the
journal against the simulator's bank statement. Every step states what it expects;
the command exits 0 only if every step got it. No network, no setup, a few seconds.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from rich import box
from rich.table import Table
from rich.text import Text

from ..client import Terminal
from ..journal import Journal, ResolvedBy
from ..protocol import Outcome, Result
from ..simulator import Simulator
from ..simulator.serial import pty_available
from .config import Timeouts
from .exit_codes import EXIT_CODES_HELP, ExitStatus
from .messages import text
from .options import Session, command_options
from .output import format_vnd

__all__ = ["DemoStep", "demo", "run_demo"]

# Short timeouts: the fault steps must resolve in well under a second each.
_CLIENT = Timeouts(timeout=1.5, status_timeout=1.0, recovery_timeout=8.0, lock_timeout=5.0)


@dataclass
class DemoStep:
    """One step of the demo: what it should do and what it did."""

    name: str
    expected: str
    got: str = ""
    ok: bool = False
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``--json``)."""
        return {
            "step": self.name, "expected": self.expected, "got": self.got, "ok": self.ok,
            "seconds": round(self.seconds, 3),
        }


def _said(result: Result) -> str:
    parts = [result.outcome.value]
    if result.return_code and result.outcome is not Outcome.APPROVED:
        parts.append(result.return_code)
    t = result.transaction
    if t is not None and result.outcome is Outcome.APPROVED and result.command != "settle":
        if t.receipt_no:
            parts.append(f"#{t.receipt_no}")
        if t.amount:
            parts.append(format_vnd(t.amount))
    return " ".join(parts)


class _Day:
    """The state the steps share: the simulator, both clients, the journal."""

    def __init__(self, sim: Simulator, journal: Journal, http: Terminal, serial: Terminal):
        self.sim = sim
        self.journal = journal
        self.http = http
        self.serial = serial
        self.first_receipt: str | None = None


def _verdict(result: Result, outcome: Outcome, code: str | None = None) -> str:
    """What the step got; marked ``!`` unless it is ``outcome`` (with ``code``, if given)."""
    ok = result.outcome is outcome and (code is None or result.return_code == code)
    return _said(result) if ok else "!" + _said(result)


def _steps(day: _Day, lang: str, statement: Path) -> list[tuple[DemoStep, Callable[[], str]]]:
    """The business day, in order; each callable runs one step and returns what it got."""

    def sale_http() -> str:
        r = day.http.sale(150_000, invoice="HD0001")
        day.first_receipt = r.transaction.receipt_no if r.transaction else None
        return _verdict(r, Outcome.APPROVED)

    def sale_serial() -> str:
        return _verdict(day.serial.sale(85_000, invoice="HD0002"), Outcome.APPROVED)

    def decline() -> str:
        return _verdict(day.http.sale(120_051, invoice="HD0003"), Outcome.DECLINED, "51")

    def cancel() -> str:
        return _verdict(day.http.sale(50_999, invoice="HD0004"), Outcome.CANCELED)

    def lost() -> str:
        r = day.http.sale(200_997, invoice="HD0005")
        entry = day.journal.get(r.journal_id) if r.journal_id is not None else None
        by_last = entry is not None and entry.resolved_by is ResolvedBy.LAST_TRANS
        got = _said(r) + (" (last trans)" if by_last else "")
        return got if r.outcome is Outcome.APPROVED and by_last else "!" + got

    def void() -> str:
        if day.first_receipt is None:
            return "!no receipt to void"
        return _verdict(day.http.void(day.first_receipt), Outcome.APPROVED)

    def settle() -> str:
        return _verdict(day.http.settle(), Outcome.APPROVED)

    def journal_clear() -> str:
        open_ = day.journal.unresolved()
        return f"{len(open_)} in doubt" if not open_ else f"!{len(open_)} in doubt"

    return [
        (DemoStep(text("demo_step_sale_http", lang, invoice="HD0001"), "approved"), sale_http),
        (DemoStep(text("demo_step_sale_serial", lang, invoice="HD0002"), "approved"), sale_serial),
        (DemoStep(text("demo_step_decline", lang), "declined 51"), decline),
        (DemoStep(text("demo_step_cancel", lang), "canceled"), cancel),
        (DemoStep(text("demo_step_lost", lang), "approved (last trans)"), lost),
        (DemoStep(text("demo_step_void", lang, invoice="HD0001"), "approved"), void),
        (DemoStep(text("demo_step_settle", lang), "approved"), settle),
        (DemoStep(text("demo_step_journal", lang), "0 in doubt"), journal_clear),
        (
            DemoStep(text("demo_step_reconcile", lang), "matched 2, voided 1, attention 0"),
            lambda: _reconcile(day, statement),
        ),
    ]


def _reconcile(day: _Day, statement: Path) -> str:
    from ..reconcile import Category, reconcile  # polars: only when the demo gets here

    day.sim.write_statement(statement)
    report = reconcile(statement, entries=day.journal.entries())
    matched = report.summary[Category.MATCHED].count
    voided = report.summary[Category.VOIDED].count
    attention = sum(t.count for c, t in report.summary.items() if c.needs_attention)
    got = f"matched {matched}, voided {voided}, attention {attention}"
    return got if (matched, voided, attention) == (2, 1, 0) else "!" + got


def run_demo(session: Session) -> list[DemoStep]:
    """Play the business day; return the steps with what each got."""
    say = session.out
    quiet = session.json
    with tempfile.TemporaryDirectory(prefix="ecrlink-demo-") as tmp:
        base = Path(tmp)
        # Serial needs a pty; where none can be opened (Windows, a container without
        # /dev/ptmx) both clients use HTTP. Trying one is the only reliable test.
        serial = pty_available()
        with Simulator(
            http=("127.0.0.1", 0), serial=serial or None, card_delay=0.3,
            no_answer_timeout=0.5, head_timeout=2.0,
        ) as sim, Journal(base / "journal.sqlite3") as journal:
            serial_url = sim.serial_url if serial else sim.http_url
            if not quiet:
                say.print(Text(session.t("demo_title"), style="bold"))
                say.print(Text(session.t("demo_started", http=sim.http_url, serial=serial_url)))
                if not serial:
                    say.print(Text(session.t("demo_no_serial"), style="yellow"))
            with Terminal(sim.http_url, journal=journal, **_CLIENT) as http, Terminal(
                serial_url, journal=journal, **_CLIENT
            ) as serial_pos:
                day = _Day(sim, journal, http, serial_pos)
                steps = _steps(day, session.lang, base / "statement.csv")
                done: list[DemoStep] = []
                for number, (step, action) in enumerate(steps, 1):
                    started = time.monotonic()
                    try:
                        got = action()
                    except Exception as exc:  # a demo step failing is a finding, not a crash
                        got = f"!{type(exc).__name__}: {exc}"
                    step.seconds = time.monotonic() - started
                    step.ok = not got.startswith("!")
                    step.got = got.lstrip("!")
                    done.append(step)
                    if not quiet:
                        mark = Text("✓", style="green") if step.ok else Text("✗", style="red")
                        say.print(Text.assemble(
                            f"{number:>2}. ", mark, f" {step.name}: ", (step.got, "bold"),
                            (f"  ({step.seconds:.1f}s)", "dim"),
                        ))
    return done


@click.command("demo", epilog=EXIT_CODES_HELP)
@command_options(terminal=False, journal=False, client=False)
def demo(session: Session) -> ExitStatus:
    """Play a short business day on the built-in simulator and check every step.

    Needs no terminal, no network and no setup; takes a few seconds. Exits 0 only if
    every step did what it should.
    """
    started = time.monotonic()
    steps = run_demo(session)
    seconds = time.monotonic() - started
    failed = [s for s in steps if not s.ok]
    if session.json:
        session.print_json([s.to_dict() for s in steps])
    else:
        table = Table(title=Text(session.t("demo_summary")), box=box.SIMPLE_HEAD)
        for key in ("demo_col_step", "demo_col_expected", "demo_col_got", "demo_col_ok"):
            table.add_column(session.t(key))
        for s in steps:
            table.add_row(
                Text(s.name), Text(s.expected), Text(s.got),
                Text("✓", style="green") if s.ok else Text("✗", style="bold red"),
            )
        session.out.print(table)
        if failed:
            session.out.print(Text(
                session.t("demo_failed", failed=len(failed), count=len(steps)), style="bold red"
            ))
        else:
            session.out.print(Text(
                session.t("demo_all_ok", count=len(steps), seconds=seconds), style="bold green"
            ))
    return ExitStatus.ERROR if failed else ExitStatus.OK
