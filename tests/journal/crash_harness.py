"""Kill a register process at the worst moments and check that no payment is lost.

A child process sells on a simulated terminal with a journal; it is killed with
SIGKILL at a random moment, or at a chosen phase: just before its request leaves,
while the customer is at the terminal, or after the reply arrived but before it was
recorded. The next child recovers what the last one left. At the end the journal and
the simulator's own ledger must agree exactly. Used by the test suite (a few runs)
and by ``bench/bench_crash.py`` (hundreds).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ecrlink import Terminal
from ecrlink.journal import Journal, ResolvedBy, State
from ecrlink.simulator import Simulator
from tests.conftest import LEGACY_PROFILE

PHASES = ("random", "before_send", "at_terminal", "after_reply")

# The child: sells until killed. In a chosen phase it kills itself at the exact
# moment by wrapping its transport's exchange.
CHILD = r"""
import os, signal, sys, threading
import ecrlink

url, journal, start, phase = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
pos = ecrlink.Terminal(url, journal=journal, timeout=5, status_timeout=2, recovery_timeout=15)
real = pos._transport.exchange
calls = 0

def die():
    os.kill(os.getpid(), signal.SIGKILL)

def exchange(line, *, timeout):
    global calls
    if "cmd=sale" in line:
        calls += 1
        if calls == 2:  # the first sale runs normally, the second one dies
            if phase == "before_send":
                die()
            if phase == "at_terminal":
                threading.Timer(0.03, die).start()
            if phase == "after_reply":
                reply = real(line, timeout=timeout)
                die()
    return real(line, timeout=timeout)

pos._transport.exchange = exchange
i = start
while True:
    pos.sale(1000 * (i % 900 + 1) + 100, invoice=f"HD{i}")
    i += 1
"""


@dataclass
class CrashReport:
    """What a crash run found; every count but ``runs``/``kills``/``sales`` must be 0."""

    runs: int = 0
    kills: int = 0
    phases: Counter[str] = field(default_factory=Counter)
    sales_at_terminal: int = 0
    approved: int = 0
    lost: int = 0
    """Approved by the terminal, not approved in the journal."""
    doubled: int = 0
    """A request charged twice, or an approval recorded twice."""
    phantom: int = 0
    """Approved in the journal, not at the terminal."""
    unjournaled: int = 0
    """Reached the terminal without being written down first."""
    left_in_doubt: int = 0
    recovered: Counter[str] = field(default_factory=Counter)
    """Entries whose outcome was settled by recovery, by final state."""

    @property
    def ok(self) -> bool:
        """True when nothing was lost, doubled, invented or left in doubt."""
        return not (self.lost or self.doubled or self.phantom or self.unjournaled
                    or self.left_in_doubt)


def run(runs: int, folder: Path, seed: int = 1) -> CrashReport:
    """Run ``runs`` killed children against one simulator and compare the records."""
    rng = random.Random(seed)
    report = CrashReport()
    journal_path = folder / "journal.sqlite3"
    env = {**os.environ, "ECRLINK_HOME": str(folder)}
    # legacy profile: pinned until the client proves approvals without the echo (issue 9)
    with Simulator(http=("127.0.0.1", 0), card_delay=0.08, **LEGACY_PROFILE) as sim:
        for n in range(runs):
            phase = PHASES[n % len(PHASES)] if n < len(PHASES) else rng.choice(PHASES)
            child = subprocess.Popen(
                [sys.executable, "-c", CHILD, sim.http_url, str(journal_path), str(n * 50), phase],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            if phase == "random":
                time.sleep(rng.uniform(0.3, 0.9))
                child.send_signal(signal.SIGKILL)
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            report.runs += 1
            report.phases[phase] += 1
            report.kills += child.returncode == -signal.SIGKILL
        with Terminal(sim.http_url, journal=journal_path, recovery_timeout=15) as pos:
            pos.recover()
        compare(Journal(journal_path), sim, report)
    return report


def compare(journal: Journal, sim: Simulator, report: CrashReport) -> None:
    """Fill ``report`` from the journal and the terminal's ledger."""
    sales = [r for r in sim.ledger.transactions if r.command == "sale"]
    entries = list(journal.entries(commands=["sale"]))
    report.sales_at_terminal = len(sales)
    at_terminal = Counter(r.request_id for r in sales)
    bank_approved = {r.request_id for r in sales if r.approved}
    approved_counts = Counter(e.request_id for e in entries if e.state is State.APPROVED)
    journaled = {e.request_id for e in entries}
    report.approved = len(bank_approved)
    report.lost = len(bank_approved - set(approved_counts))
    report.phantom = len(set(approved_counts) - bank_approved)
    report.doubled = sum(1 for c in at_terminal.values() if c > 1) + sum(
        1 for c in approved_counts.values() if c > 1
    )
    report.unjournaled = len(set(at_terminal) - journaled)
    report.left_in_doubt = sum(e.state in (State.PENDING, State.IN_DOUBT) for e in entries)
    report.recovered = Counter(
        e.state.value for e in entries if e.resolved_by is ResolvedBy.LAST_TRANS
    )
