"""One transaction per terminal at a time, across processes and threads."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest

from ecrlink import Outcome, Terminal, TerminalBusy
from ecrlink.journal import Journal, State, TerminalLock
from ecrlink.simulator import Simulator

SELLER = r"""
import sys, ecrlink
url, journal, tag = sys.argv[1], sys.argv[2], sys.argv[3]
with ecrlink.Terminal(url, journal=journal, lock_timeout=60) as pos:
    for i in range(5):
        result = pos.sale(1000 + i * 1000, invoice=f"{tag}-{i}")
        assert result.approved, result
"""


def test_processes_selling_at_once_never_overlap(tmp_path: Path) -> None:
    journal_path = tmp_path / "j.sqlite3"
    env = {**os.environ, "ECRLINK_HOME": str(tmp_path)}
    with Simulator(http=("127.0.0.1", 0), card_delay=0.03) as sim:
        children = [
            subprocess.Popen(
                [sys.executable, "-c", SELLER, sim.http_url, str(journal_path), f"P{n}"],
                env=env, stderr=subprocess.PIPE,
            )
            for n in range(4)
        ]
        for child in children:
            _, err = child.communicate(timeout=120)
            assert child.returncode == 0, err.decode()
        sales = [r for r in sim.ledger.transactions if r.command == "sale"]
    # The simulator refuses a request that overlaps another (busy): none was refused,
    # all 20 reached it exactly once and were approved.
    assert len(sales) == 20
    assert all(r.approved for r in sales)
    assert max(Counter(r.request_id for r in sales).values()) == 1
    entries = list(Journal(journal_path).entries(commands=["sale"]))
    assert len(entries) == 20 and all(e.state is State.APPROVED for e in entries)
    assert {e.request_id for e in entries} == {r.request_id for r in sales}


def test_threads_share_a_terminal_one_at_a_time(tmp_path: Path) -> None:
    with Simulator(http=("127.0.0.1", 0), card_delay=0.02) as sim:
        outcomes: list[Outcome] = []

        def sell() -> None:
            with Terminal(sim.http_url, journal=tmp_path / "j.sqlite3") as pos:
                outcomes.extend(pos.sale(2000).outcome for _ in range(4))

        threads = [threading.Thread(target=sell) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert outcomes == [Outcome.APPROVED] * 12
        assert len(sim.ledger.transactions) == 12


def test_a_held_terminal_makes_others_wait_then_busy(tmp_path: Path) -> None:
    with TerminalLock(tmp_path / "locks", "http://lane1", wait=1), pytest.raises(
        TerminalBusy, match="another transaction"
    ):
        with TerminalLock(tmp_path / "locks", "http://lane1", wait=0.2):
            pass
    with TerminalLock(tmp_path / "locks", "http://lane1", wait=0.2):
        pass  # released when the holder left


def test_a_killed_holder_releases_the_lock(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path\n"
         "from ecrlink.journal import TerminalLock\n"
         "lock = TerminalLock(Path(sys.argv[1]), 'http://lane1', wait=1).__enter__()\n"
         "print('held', flush=True); time.sleep(60)",
         str(tmp_path / "locks")],
        stdout=subprocess.PIPE,
    )
    assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
    with pytest.raises(TerminalBusy):
        with TerminalLock(tmp_path / "locks", "http://lane1", wait=0.2):
            pass
    holder.kill()
    holder.wait()
    with TerminalLock(tmp_path / "locks", "http://lane1", wait=2):
        pass
