"""Terminal lock fairness: the old polling lock vs the queued one, side by side.

Several processes (registers) sell on one terminal, each taking the lock again as soon as
it gives it back (a queue of customers), each sale holding it 5-20 ms (a sleep). For every
acquisition the wait is measured; starvation shows as one process waiting far longer in
total than the others, or as long streaks of one process. Also times the uncontended
acquire + release, which the queue makes dearer by one ticket file.

    python bench/bench_lock.py [--processes 4] [--sales 40] [--hold 5 20] [--rounds 1]
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Protocol

from ecrlink import TerminalBusy
from ecrlink.journal import TerminalLock
from ecrlink.journal.lock import _delete

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]
    import msvcrt


def _try_lock(fd: int) -> bool:
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:  # pragma: no cover - Windows
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except (BlockingIOError, PermissionError):
        return False
    return True


class PollingLock:
    """The baseline: ecrlink's lock before the queue (flock, polled with backoff to 100 ms)."""

    def __init__(self, directory: Path, terminal: str, *, wait: float) -> None:
        digest = hashlib.sha256(terminal.encode("utf-8")).hexdigest()[:24]
        self.path = directory / f"{digest}.lock"
        self.terminal = terminal
        self.wait = wait
        self._fd: int | None = None

    def acquire(self, stop: threading.Event | None = None) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + self.wait
        delay = 0.005
        while not _try_lock(fd):
            if stop is not None and stop.is_set():
                os.close(fd)
                return False
            if time.monotonic() >= deadline:
                os.close(fd)
                raise TerminalBusy(f"{self.terminal}: busy (waited {self.wait:g} s)")
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class Lock(Protocol):
    def acquire(self, stop: threading.Event | None = None) -> bool: ...
    def release(self) -> None: ...


LOCKS: dict[str, type[PollingLock] | type[TerminalLock]] = {
    "old (polling)": PollingLock,
    "new (queued)": TerminalLock,
}
TERMINAL = "http://192.0.2.10"


class Sample(NamedTuple):
    """One acquisition: when it was asked for and granted (``time.monotonic``)."""

    asked: float
    granted: float

    @property
    def wait(self) -> float:
        return self.granted - self.asked


def register(
    kind: str, directory: str, sales: int, hold: tuple[float, float], seed: int,
    start: threading.Barrier,
    results: multiprocessing.Queue[tuple[int, float, list[Sample]]],
) -> None:
    """One register: ``sales`` sales back to back.

    Sends back its number, the CPU time it took, and a ``Sample`` per sale.
    """
    rng = random.Random(seed)
    samples: list[Sample] = []
    start.wait()  # all registers start together, once all are up
    cpu = time.process_time()
    for _ in range(sales):
        lock: Lock = LOCKS[kind](Path(directory), TERMINAL, wait=300)
        asked = time.monotonic()  # one clock for all processes (system-wide on Linux)
        lock.acquire()
        samples.append(Sample(asked, time.monotonic()))
        time.sleep(rng.uniform(*hold))  # the sale
        lock.release()
    results.put((seed, time.process_time() - cpu, samples))


@dataclass
class Run:
    """One contended run's figures (seconds)."""

    longest: float
    p99: float
    mean: float
    totals: list[float]  # per process: starvation shows here
    streak: int  # most grants in a row to one process while all sell
    span: float  # first grant to last
    cpu: float  # CPU time of all registers: what polling costs


def contended(kind: str, processes: int, sales: int, hold: tuple[float, float]) -> Run:
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue[tuple[int, float, list[Sample]]] = context.Queue()
    with tempfile.TemporaryDirectory() as directory:
        start = context.Barrier(processes)
        children = [
            context.Process(
                target=register, args=(kind, directory, sales, hold, n, start, results)
            )
            for n in range(processes)
        ]
        for child in children:
            child.start()
        reports = [results.get(timeout=600) for _ in children]
        for child in children:
            child.join()
    per_process = {n: samples for n, _, samples in reports}
    waits = [sample.wait for samples in per_process.values() for sample in samples]
    # Streaks only count while every register is in the race: not before the last one
    # asked for the first time, nor after the first one is done.
    everyone_from = max(samples[0].asked for samples in per_process.values())
    everyone_until = min(samples[-1].granted for samples in per_process.values())
    grants = sorted(
        (sample.granted, n) for n, samples in per_process.items() for sample in samples
        if everyone_from <= sample.granted <= everyone_until
    )
    streak = longest = 0
    previous = None
    for _, n in grants:
        streak = streak + 1 if n == previous else 1
        previous = n
        longest = max(longest, streak)
    first = min(samples[0].granted for samples in per_process.values())
    last = max(samples[-1].granted for samples in per_process.values())
    return Run(
        longest=max(waits),
        p99=statistics.quantiles(waits, n=100, method="inclusive")[98],
        mean=statistics.fmean(waits),
        totals=[sum(sample.wait for sample in per_process[n]) for n in sorted(per_process)],
        streak=longest,
        span=last - first,
        cpu=sum(cpu for _, cpu, _ in reports),
    )


def uncontended(kind: str, cycles: int) -> float:
    """Median seconds for one acquire + release with nobody else around."""
    with tempfile.TemporaryDirectory() as directory:
        timings = []
        for _ in range(cycles):
            lock: Lock = LOCKS[kind](Path(directory), TERMINAL, wait=1)
            started = time.perf_counter()
            lock.acquire()
            lock.release()
            timings.append(time.perf_counter() - started)
        return statistics.median(timings)


def ticket_cost(cycles: int) -> float:
    """Median seconds to join and leave the queue: what a wait adds (private API)."""
    with tempfile.TemporaryDirectory() as directory:
        lock = TerminalLock(Path(directory), TERMINAL, wait=1)
        timings = []
        for _ in range(cycles):
            started = time.perf_counter()
            number, ticket = lock._take_ticket()
            _delete(lock._ticket_path(number), ticket)
            timings.append(time.perf_counter() - started)
        return statistics.median(timings)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--sales", type=int, default=40, help="per process")
    parser.add_argument("--rounds", type=int, default=1, help="alternating runs per lock")
    parser.add_argument("--cycles", type=int, default=3000, help="uncontended timings")
    parser.add_argument(
        "--hold", type=float, nargs=2, default=(5.0, 20.0), metavar=("MIN", "MAX"),
        help="ms a sale holds the lock (uniform)",
    )
    args = parser.parse_args()
    hold = (args.hold[0] / 1e3, args.hold[1] / 1e3)
    runs: dict[str, list[Run]] = {kind: [] for kind in LOCKS}
    for _ in range(args.rounds):
        for kind in LOCKS:
            runs[kind].append(contended(kind, args.processes, args.sales, hold))
    solo = {kind: uncontended(kind, args.cycles) for kind in LOCKS}

    print(
        f"{args.processes} processes x {args.sales} sales on one terminal, each holding "
        f"the lock {args.hold[0]:g}-{args.hold[1]:g} ms, {args.rounds} round(s); "
        f"{os.cpu_count()} CPUs, "
        f"load {os.getloadavg()[0]:.1f}"
    )
    kinds = list(LOCKS)
    print(f"{'':34}" + "".join(f"{kind:>18}" for kind in kinds))
    for r in range(args.rounds):
        if args.rounds > 1:
            print(f"round {r + 1}")
        rows = {kind: runs[kind][r] for kind in kinds}

        def line(label: str, cells: list[str]) -> None:
            print(f"  {label:32}" + "".join(f"{cell:>18}" for cell in cells))

        line("longest wait (ms)", [f"{rows[k].longest * 1e3:.1f}" for k in kinds])
        line("p99 wait (ms)", [f"{rows[k].p99 * 1e3:.1f}" for k in kinds])
        line("mean wait (ms)", [f"{rows[k].mean * 1e3:.1f}" for k in kinds])
        for n in range(args.processes):
            line(f"total wait, process {n} (s)", [f"{rows[k].totals[n]:.2f}" for k in kinds])
        line(
            "slowest / fastest process total",
            [f"{max(rows[k].totals) / min(rows[k].totals):.2f}x" for k in kinds],
        )
        line("most turns in a row, one process", [str(rows[k].streak) for k in kinds])
        line("all sales done in (s)", [f"{rows[k].span:.2f}" for k in kinds])
        line("CPU time, all processes (s)", [f"{rows[k].cpu:.3f}" for k in kinds])
    print(f"  {'uncontended acquire+release (µs)':32}"
          + "".join(f"{solo[k] * 1e6:>18.1f}" for k in kinds))
    print(f"  {'ticket taken + deleted (µs)':32}{'-':>18}{ticket_cost(args.cycles) * 1e6:>18.1f}"
          "   (only when waiting)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
