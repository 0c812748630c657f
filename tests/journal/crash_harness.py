"""Kill a register process at the worst moments, on every terminal profile.

A child process sells on a simulated terminal with a journal; it is killed with
SIGKILL at a chosen phase: just before its request leaves, while the customer is at
the card reader (the terminal goes on, or cancels, as its ``on_hangup`` says),
between the bank's approval and the reply, after the reply arrived but before it was
recorded, or at a random moment. The next child recovers what the last one left,
waiting as a cashier would when its lane is blocked by a payment in doubt. At the end
the journal and the simulator's own ledger must agree exactly.

Profiles: ``firmware`` (v201: no requestId echo in ``last trans``; echo) ×
``on_hangup`` (finish; cancel) × ``busy_last_trans`` (refuse; answer: the
adversarial terminal that answers ``last trans`` with the previous transaction while
the customer is still at the card reader). Used by the test suite (a few runs) and
by ``bench/bench_crash.py`` (hundreds per profile).
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from ecrlink import Terminal
from ecrlink.journal import Journal, ResolvedBy, State
from ecrlink.simulator import Simulator

PHASES = ("before_send", "at_terminal", "after_bank", "after_reply", "random")
PROFILES = tuple(
    {"firmware": f, "on_hangup": h, "busy_last_trans": b}
    for f, h, b in itertools.product(("v201", "echo"), ("finish", "cancel"),
                                     ("refuse", "answer"))
)
CARD_DELAY = 0.3
"""Seconds the simulated customer takes at the card reader."""
BANK_DELAY = 0.15
"""Seconds between the bank's answer (in the ledger) and the reply leaving."""

# The child: sells until killed, one sale in three declined (…051). In a chosen phase
# the second sale kills itself at the exact moment by wrapping the transport. A sale
# refused because an earlier payment is in doubt waits and recovers, as a cashier
# would with `ecrlink journal recover`; one refused as busy is tried again.
CHILD = r"""
import os, signal, sys, threading, time
import ecrlink

url, journal, start, phase = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
card, bank = float(sys.argv[5]), float(sys.argv[6])
pos = ecrlink.Terminal(url, journal=journal, timeout=2, connect_timeout=1, status_timeout=1,
                       recovery_timeout=4)
real = pos._transport.exchange
calls = 0

def die():
    os.kill(os.getpid(), signal.SIGKILL)

def exchange(line, *, timeout, on_sent=None):
    global calls
    if "cmd=sale" in line:
        calls += 1
        if calls == 2:  # the first sale runs normally, the second one dies
            if phase == "before_send":
                die()
            if phase == "at_terminal":
                threading.Timer(card / 3, die).start()
            if phase == "after_bank":
                threading.Timer(card + bank / 2, die).start()
            if phase == "after_reply":
                real(line, timeout=timeout, on_sent=on_sent)
                die()
    return real(line, timeout=timeout, on_sent=on_sent)

pos._transport.exchange = exchange
i = start
while True:
    amount = 1000 * (i % 900 + 1) + (51 if i % 3 == 2 else 100)
    try:
        pos.sale(amount, invoice=f"HD{i}")
    except ecrlink.InDoubtPending:
        time.sleep(0.2)
        pos.recover()
        continue
    except ecrlink.TerminalBusy:  # still finishing what the last child left: try again
        time.sleep(0.2)
        continue
    i += 1
"""


@dataclass
class CrashReport:
    """What a crash run found; ``lost``, ``doubled``, ``phantom``, ``unjournaled`` must be 0."""

    profile: dict[str, str] = field(default_factory=dict)
    runs: int = 0
    kills: int = 0
    phases: Counter[str] = field(default_factory=Counter)
    sales_at_terminal: int = 0
    approved: int = 0
    lost: int = 0
    """Approved by the terminal, concluded not charged (or never written) in the journal."""
    doubled: int = 0
    """A request charged twice, or an approval recorded twice."""
    phantom: int = 0
    """Approved in the journal, not at the terminal."""
    unjournaled: int = 0
    """Reached the terminal without being written down first."""
    left_in_doubt: int = 0
    """Still in doubt after the final recovery (nothing could prove them)."""
    recovered: Counter[str] = field(default_factory=Counter)
    """Entries whose outcome was settled by ``last trans``, by final state."""
    blocked: int = 0
    """Payments that were in doubt at some point (the lane refused new sales)."""
    blocked_longest: float = 0.0
    """Seconds from in doubt to resolved, at worst."""

    @property
    def ok(self) -> bool:
        """True when nothing was lost, doubled, invented or sent unwritten."""
        return not (self.lost or self.doubled or self.phantom or self.unjournaled)


def run(
    runs: int, folder: Path, seed: int = 1, profile: dict[str, str] | None = None
) -> CrashReport:
    """Run ``runs`` killed children against one simulator and compare the records."""
    profile = profile or dict(PROFILES[0])
    rng = random.Random(seed)
    report = CrashReport(profile=profile)
    journal_path = folder / "journal.sqlite3"
    env = {**os.environ, "ECRLINK_HOME": str(folder)}
    with Simulator(http=("127.0.0.1", 0), card_delay=CARD_DELAY, bank_delay=BANK_DELAY,
                   no_answer_timeout=1.0, **profile) as sim:
        for n in range(runs):
            phase = PHASES[n % len(PHASES)] if n < len(PHASES) else rng.choice(PHASES)
            child = subprocess.Popen(
                [sys.executable, "-c", CHILD, sim.http_url, str(journal_path), str(n * 50),
                 phase, str(CARD_DELAY), str(BANK_DELAY)],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            if phase == "random":
                time.sleep(rng.uniform(0.5, 2.0))
                child.send_signal(signal.SIGKILL)
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            report.runs += 1
            report.phases[phase] += 1
            report.kills += child.returncode == -signal.SIGKILL
        time.sleep(CARD_DELAY + BANK_DELAY)  # let the terminal finish what it was doing
        with Terminal(sim.http_url, journal=journal_path, timeout=2, connect_timeout=1,
                      status_timeout=1, recovery_timeout=8) as pos:
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
    open_ = {e.request_id for e in entries if e.state in (State.PENDING, State.IN_DOUBT)}
    report.approved = len(bank_approved)
    report.lost = len(bank_approved - set(approved_counts) - open_)
    report.phantom = len(set(approved_counts) - bank_approved)
    report.doubled = sum(1 for c in at_terminal.values() if c > 1) + sum(
        1 for c in approved_counts.values() if c > 1
    )
    report.unjournaled = len(set(at_terminal) - journaled)
    report.left_in_doubt = sum(e.state in (State.PENDING, State.IN_DOUBT) for e in entries)
    report.recovered = Counter(
        e.state.value for e in entries if e.resolved_by is ResolvedBy.LAST_TRANS
    )
    for e in entries:
        history = journal.history(e.id)
        doubted = [h["at"] for h in history if h["state"] == "in_doubt"]
        if doubted:
            report.blocked += 1
            end = history[-1]["at"] if e.state is not State.IN_DOUBT else doubted[0]
            seconds = (_at(end) - _at(doubted[0])).total_seconds()
            report.blocked_longest = max(report.blocked_longest, seconds)


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)
