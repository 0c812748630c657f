"""The terminal lock is first come, first served, and a dead waiter never blocks the queue.

Real threads and processes; no assertion depends on how fast the machine is: arrivals are
spaced by waiting for each waiter's ticket to appear, and fairness is counted in turns.
Threads are daemons so that a failure ends the test instead of hanging it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ecrlink import TerminalBusy
from ecrlink.journal import TerminalLock

TERMINAL = "http://lane1"

WAITER = r"""
import sys, time
from pathlib import Path
from ecrlink.journal import TerminalLock
with TerminalLock(Path(sys.argv[1]), sys.argv[2], wait=60):
    with open(sys.argv[3], "a") as order:
        order.write(sys.argv[4] + "\n")
    time.sleep(0.01)
"""


def tickets(directory: Path) -> list[str]:
    """The tickets in the terminal's queue (waiters, live or dead)."""
    queue = TerminalLock(directory, TERMINAL, wait=0).queue
    if not queue.exists():  # made by the first waiter
        return []
    return sorted(name for name in os.listdir(queue) if name.endswith(".t"))


def until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def queue_up(directory: Path, start: Callable[[], object]) -> None:
    """Start one more waiter and return once its ticket is in the queue."""
    before = len(tickets(directory))
    start()
    until(lambda: len(tickets(directory)) == before + 1)


def spawn_waiter(directory: Path, order: Path, tag: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", WAITER, str(directory), TERMINAL, str(order), tag]
    )


def test_threads_get_the_terminal_in_arrival_order(tmp_path: Path) -> None:
    order: list[int] = []

    def take(n: int) -> None:
        with TerminalLock(tmp_path, TERMINAL, wait=60):
            order.append(n)
            time.sleep(0.005)

    holder = TerminalLock(tmp_path, TERMINAL, wait=1)
    assert holder.acquire()
    threads = [threading.Thread(target=take, args=(n,), daemon=True) for n in range(5)]
    for thread in threads:
        queue_up(tmp_path, thread.start)
    holder.release()
    for thread in threads:
        thread.join(60)
    assert order == [0, 1, 2, 3, 4]
    assert tickets(tmp_path) == []


def test_processes_and_threads_get_the_terminal_in_arrival_order(tmp_path: Path) -> None:
    order = tmp_path / "order.txt"
    processes: list[subprocess.Popen[bytes]] = []
    threads: list[threading.Thread] = []

    def take(tag: str) -> None:
        with TerminalLock(tmp_path, TERMINAL, wait=60):
            with order.open("a") as file:
                file.write(tag + "\n")
            time.sleep(0.01)

    holder = TerminalLock(tmp_path, TERMINAL, wait=1)
    assert holder.acquire()
    for n in range(5):
        tag = f"{'process' if n % 2 == 0 else 'thread'}-{n}"
        if n % 2 == 0:

            def start(tag: str = tag) -> None:
                processes.append(spawn_waiter(tmp_path, order, tag))

            queue_up(tmp_path, start)
        else:
            threads.append(threading.Thread(target=take, args=(tag,), daemon=True))
            queue_up(tmp_path, threads[-1].start)
    holder.release()
    for process in processes:
        assert process.wait(60) == 0
    for thread in threads:
        thread.join(60)
    assert order.read_text().split() == [
        "process-0", "thread-1", "process-2", "thread-3", "process-4",
    ]
    assert tickets(tmp_path) == []


def test_no_waiter_starves_while_others_loop(tmp_path: Path) -> None:
    """Three threads take the terminal again as soon as they give it back.

    Counted from when a thread's ticket is in the queue, the others get the terminal at
    most twice (once each) before it does: nobody overtakes a waiter.
    """
    turns: list[int] = []
    overtaken: list[int] = []

    class Counting(TerminalLock):
        def _take_ticket(self) -> tuple[int, int]:
            ticket = super()._take_ticket()
            self.queued_at = len(turns)
            return ticket

    def loop(n: int) -> None:
        for _ in range(15):
            lock = Counting(tmp_path, TERMINAL, wait=60)
            lock.queued_at = len(turns)  # if it finds the terminal free, it takes no ticket
            with lock:
                overtaken.append(len(turns) - lock.queued_at)
                turns.append(n)
                time.sleep(0.003)

    threads = [threading.Thread(target=loop, args=(n,), daemon=True) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sorted(turns) == [0] * 15 + [1] * 15 + [2] * 15
    assert max(overtaken) <= 2, overtaken


def test_a_killed_waiter_does_not_block_the_queue(tmp_path: Path) -> None:
    order: list[str] = []

    def take(tag: str) -> None:
        with TerminalLock(tmp_path, TERMINAL, wait=60):
            order.append(tag)

    holder = TerminalLock(tmp_path, TERMINAL, wait=1)
    assert holder.acquire()
    first = threading.Thread(target=take, args=("first",), daemon=True)
    queue_up(tmp_path, first.start)
    doomed: list[subprocess.Popen[bytes]] = []
    queue_up(tmp_path, lambda: doomed.append(spawn_waiter(tmp_path, tmp_path / "x", "killed")))
    last = threading.Thread(target=take, args=("last",), daemon=True)
    queue_up(tmp_path, last.start)  # watching the doomed process's ticket
    doomed[0].kill()  # SIGKILL: its ticket stays, unlocked
    doomed[0].wait()
    holder.release()
    first.join(30)
    last.join(30)
    assert order == ["first", "last"]
    assert tickets(tmp_path) == []


def test_a_ticket_left_by_a_killed_head_is_cleared_by_the_next_comer(tmp_path: Path) -> None:
    holder = TerminalLock(tmp_path, TERMINAL, wait=1)
    assert holder.acquire()
    doomed: list[subprocess.Popen[bytes]] = []
    queue_up(tmp_path, lambda: doomed.append(spawn_waiter(tmp_path, tmp_path / "x", "killed")))
    doomed[0].kill()
    doomed[0].wait()
    holder.release()
    assert len(tickets(tmp_path)) == 1  # nobody was watching it
    started = time.monotonic()
    with TerminalLock(tmp_path, TERMINAL, wait=5):
        assert time.monotonic() - started < 1  # not waited for
        assert tickets(tmp_path) == []


def test_wait_still_ends_in_terminal_busy_and_leaves_no_ticket(tmp_path: Path) -> None:
    holder = TerminalLock(tmp_path, TERMINAL, wait=1)
    assert holder.acquire()
    outcomes: dict[float, tuple[str, float]] = {}

    def take(wait: float) -> None:
        started = time.monotonic()
        try:
            TerminalLock(tmp_path, TERMINAL, wait=wait).acquire()
        except TerminalBusy as exc:
            outcomes[wait] = (str(exc), time.monotonic() - started)

    # The head times out polling the terminal, the one behind it watching the head.
    threads = [threading.Thread(target=take, args=(wait,), daemon=True) for wait in (0.4, 0.5)]
    for thread in threads:
        queue_up(tmp_path, thread.start)
    for thread in threads:
        thread.join(30)
    for wait in (0.4, 0.5):
        message, elapsed = outcomes[wait]
        assert message == (
            f"{TERMINAL}: another transaction is in progress on this terminal "
            f"(waited {wait:g} s)"
        )
        assert wait <= elapsed < 15
    assert tickets(tmp_path) == []
    holder.release()


def test_stop_returns_false_without_the_lock_and_leaves_no_ticket(tmp_path: Path) -> None:
    holder = TerminalLock(tmp_path, TERMINAL, wait=1)
    assert holder.acquire()
    stops = [threading.Event(), threading.Event()]
    got: dict[int, bool] = {}

    def take(n: int) -> None:
        got[n] = TerminalLock(tmp_path, TERMINAL, wait=60).acquire(stops[n])

    threads = [threading.Thread(target=take, args=(n,), daemon=True) for n in range(2)]
    for thread in threads:
        queue_up(tmp_path, thread.start)
    stops[1].set()  # the one behind gives up
    threads[1].join(30)
    stops[0].set()  # then the head
    threads[0].join(30)
    assert got == {0: False, 1: False}
    assert tickets(tmp_path) == []
    holder.release()
    started = time.monotonic()
    with TerminalLock(tmp_path, TERMINAL, wait=5):
        assert time.monotonic() - started < 1


def test_stopping_a_waiter_hands_its_place_on(tmp_path: Path) -> None:
    holder = TerminalLock(tmp_path, TERMINAL, wait=1)
    assert holder.acquire()
    stop = threading.Event()
    got: list[bool] = []
    quitter = threading.Thread(
        target=lambda: got.append(TerminalLock(tmp_path, TERMINAL, wait=60).acquire(stop)),
        daemon=True,
    )
    queue_up(tmp_path, quitter.start)
    patient = TerminalLock(tmp_path, TERMINAL, wait=60)
    waiting = threading.Thread(target=lambda: got.append(patient.acquire()), daemon=True)
    queue_up(tmp_path, waiting.start)
    stop.set()
    quitter.join(30)
    holder.release()
    waiting.join(30)
    assert got == [False, True]
    patient.release()
    assert tickets(tmp_path) == []


def test_uncontended_leaves_an_empty_queue(tmp_path: Path) -> None:
    for _ in range(3):
        with TerminalLock(tmp_path, TERMINAL, wait=0):
            assert tickets(tmp_path) == []
    assert tickets(tmp_path) == []
