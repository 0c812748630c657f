"""Ctrl-C at the card reader, then the next sale: the cashier learns the outcome first.

A real ``ecrlink sale`` process is interrupted (SIGINT, as Ctrl-C) while the customer
is paying; the simulated terminal does not notice and approves. The next sale asks
the terminal before it starts and tells the cashier what became of the interrupted
payment, in people's text and under ``--json``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from ecrlink.cli.exit_codes import ExitStatus
from ecrlink.journal import Journal, State, default_journal_path
from ecrlink.simulator import Simulator

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child is POSIX")


@pytest.fixture
def slow_customer() -> Iterator[Simulator]:
    with Simulator(http=("127.0.0.1", 0), card_delay=1.5) as sim:
        yield sim


def interrupted_sale(url: str, amount: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ecrlink", "sale", amount, "-t", url, "--lang", "en"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8",
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
    )
    journal = Journal(default_journal_path())
    deadline = time.monotonic() + 10
    # Ctrl-C once the sale is written down and on its way (the customer is paying).
    while not any(e.state in (State.PENDING, State.SENT)
                  for e in journal.entries(commands=["sale"])):
        assert time.monotonic() < deadline, "the sale never started"
        time.sleep(0.02)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ecrlink", *args], capture_output=True,
                          text=True, encoding="utf-8", timeout=60,
                          env={**os.environ, "PYTHONIOENCODING": "utf-8"})


def test_next_sale_tells_the_cashier_what_became_of_the_interrupted_one(
    slow_customer: Simulator,
) -> None:
    url = slow_customer.http_url
    first = interrupted_sale(url, "41000")
    assert first.returncode == ExitStatus.UNKNOWN, first.stderr
    [open_entry] = Journal(default_journal_path()).unresolved()
    time.sleep(1.5)  # the customer finishes paying; the terminal approves

    second = run("sale", "42000", "-t", url, "--lang", "en")
    assert second.returncode == ExitStatus.OK, second.stderr
    shown = " ".join(second.stdout.split())  # Rich wraps lines at the console width
    notice = shown.index(f"interrupted payment (journal entry {open_entry.id})")
    # Told first: the interrupted payment's outcome comes before the new receipt.
    assert "APPROVED" in shown[notice:]
    assert notice < shown.index("41.000 VND") < shown.index("42.000 VND")
    assert Journal(default_journal_path()).get(open_entry.id).state is State.APPROVED
    charged = [t.amount for t in slow_customer.ledger.transactions if t.approved]
    assert charged == [41000, 42000]  # each sale charged once


def test_json_carries_the_recovered_payment_beside_the_new_result(
    slow_customer: Simulator,
) -> None:
    url = slow_customer.http_url
    interrupted_sale(url, "43000")
    time.sleep(1.5)
    second = run("sale", "44000", "-t", url, "--json")
    assert second.returncode == ExitStatus.OK, second.stderr
    data = json.loads(second.stdout)
    assert data["outcome"] == "approved" and data["transaction"]["amount"] == 44000
    [recovered] = data["recovered"]
    assert recovered["outcome"] == "approved"
    assert recovered["transaction"]["amount"] == 43000
