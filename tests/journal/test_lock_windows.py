"""The terminal lock's Windows branch (``msvcrt`` byte locks), run here on Linux.

``use_platform("win32")`` switches ``ecrlink.journal.lock`` to the code it runs on
Windows; ``msvcrt`` is ``tests/journal/msvcrt_standin.py``: Microsoft's ``_locking``
semantics over real kernel byte-range locks, and Windows' refusal to delete a file that
is open. Child processes switch the same way, so exclusion, hand-over on death and order
are real across processes. What the stand-in cannot show is Windows' own timing; nothing
here depends on timing.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ecrlink import TerminalBusy
from ecrlink.journal import TerminalLock, lock
from tests.journal import msvcrt_standin

TERMINAL = "http://lane1"
HERE = Path(__file__).parent

# A child process on the Windows branch; the script's own lines follow.
CHILD = """
import sys, time
from pathlib import Path
sys.path.insert(0, {here!r})
import msvcrt_standin
msvcrt_standin.install()
from ecrlink.journal import TerminalLock, lock
lock.use_platform("win32")
assert lock._msvcrt is msvcrt_standin
"""

HOLDER = CHILD + """
held = TerminalLock(Path(sys.argv[1]), sys.argv[2], wait=5)
held.acquire()
print("held", flush=True)
time.sleep(120)
"""

WAITER = CHILD + """
with TerminalLock(Path(sys.argv[1]), sys.argv[2], wait=60):
    with open(sys.argv[3], "a") as order:
        order.write(sys.argv[4] + "\\n")
    time.sleep(0.01)
"""

WORKER = CHILD + """
import os
for _ in range(int(sys.argv[4])):
    with TerminalLock(Path(sys.argv[1]), sys.argv[2], wait=60):
        with open(sys.argv[3], "a") as log:
            log.write(f"in {os.getpid()}\\n")
            log.flush()
            time.sleep(0.002)
            log.write(f"out {os.getpid()}\\n")
"""


@pytest.fixture
def windows(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process locks as ecrlink does on Windows, with the stand-in ``msvcrt``."""
    monkeypatch.setitem(sys.modules, "msvcrt", msvcrt_standin)
    monkeypatch.setattr(os, "unlink", msvcrt_standin.unlink)
    lock.use_platform("win32")
    try:
        yield
    finally:
        lock.use_platform(sys.platform)


def child(script: str, *args: str, stdout: int | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", script.replace("{here!r}", repr(str(HERE))), *args],
        stdout=stdout,
    )


def tickets(directory: Path) -> list[str]:
    queue = TerminalLock(directory, TERMINAL, wait=0).queue
    if not queue.exists():
        return []
    return sorted(name for name in os.listdir(queue) if name.endswith(".t"))


def until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def queue_up(directory: Path, start: Callable[[], object]) -> None:
    """Start one more waiter; return once its ticket is in the queue and locked."""
    before = tickets(directory)
    start()
    until(lambda: len(tickets(directory)) == len(before) + 1)
    newest = TerminalLock(directory, TERMINAL, wait=0).queue / tickets(directory)[-1]
    until(lambda: msvcrt_standin.is_locked(newest))


def test_the_stand_in_locks_from_the_current_position_per_handle(tmp_path: Path) -> None:
    # Otherwise the tests below would prove nothing about seeking or per-handle locks.
    path = tmp_path / "f"
    path.write_bytes(b"")
    a, b = os.open(path, os.O_RDWR), os.open(path, os.O_RDWR)
    try:
        os.lseek(a, 7, os.SEEK_SET)
        msvcrt_standin.locking(a, msvcrt_standin.LK_NBLCK, 1)  # byte 7, past the end
        msvcrt_standin.locking(b, msvcrt_standin.LK_NBLCK, 1)  # byte 0: free
        os.lseek(b, 7, os.SEEK_SET)
        with pytest.raises(PermissionError):  # another handle of this very process
            msvcrt_standin.locking(b, msvcrt_standin.LK_NBLCK, 1)
        with pytest.raises(PermissionError):  # the same handle, twice
            msvcrt_standin.locking(a, msvcrt_standin.LK_NBLCK, 1)
        with pytest.raises(PermissionError):  # b does not hold byte 7
            msvcrt_standin.locking(b, msvcrt_standin.LK_UNLCK, 1)
        msvcrt_standin.locking(a, msvcrt_standin.LK_UNLCK, 1)
        msvcrt_standin.locking(b, msvcrt_standin.LK_NBLCK, 1)
    finally:
        os.close(a)
        os.close(b)


def test_the_stand_in_refuses_to_delete_an_open_file(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"")
    fd = os.open(path, os.O_RDWR)
    with pytest.raises(PermissionError):
        msvcrt_standin.unlink(path)
    os.close(fd)
    msvcrt_standin.unlink(path)
    assert not path.exists()


def test_windows_branch_uses_msvcrt_byte_locks_not_flock(tmp_path: Path, windows: None) -> None:
    held = TerminalLock(tmp_path, TERMINAL, wait=1)
    with held:
        assert msvcrt_standin.is_locked(held.path)
        other = os.open(held.path, os.O_RDWR)
        try:  # nobody holds a flock: the Windows branch really ran
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(other)
    assert not msvcrt_standin.is_locked(held.path)
    assert msvcrt_standin.held_here(held.path) == set()  # LK_UNLCK'd, not just closed


def test_the_locked_byte_is_sought_whatever_the_position(tmp_path: Path, windows: None) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"0123456789")
    a, b = os.open(path, os.O_RDWR), os.open(path, os.O_RDWR)
    try:
        os.lseek(a, 5, os.SEEK_SET)
        assert lock._lock(a)
        os.lseek(b, 9, os.SEEK_SET)
        assert not lock._lock(b)  # the same byte 0, wherever b's position was
        os.lseek(a, 3, os.SEEK_SET)
        lock._close(a, locked=True)  # unlocks byte 0, not byte 3
        a = -1
        assert lock._lock(b)
    finally:
        for fd in (a, b):
            if fd != -1:
                os.close(fd)


def test_threads_exclude_each_other(tmp_path: Path, windows: None) -> None:
    inside: list[int] = []
    overlaps: list[int] = []

    def work() -> None:
        for _ in range(20):
            with TerminalLock(tmp_path, TERMINAL, wait=60):
                inside.append(1)
                overlaps.append(len(inside))
                time.sleep(0.001)
                inside.pop()

    threads = [threading.Thread(target=work, daemon=True) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(overlaps) == 60 and max(overlaps) == 1


def test_processes_exclude_each_other(tmp_path: Path) -> None:
    log = tmp_path / "log.txt"
    workers = [child(WORKER, str(tmp_path), TERMINAL, str(log), "15") for _ in range(3)]
    for worker in workers:
        assert worker.wait(120) == 0
    lines = log.read_text().splitlines()
    assert len(lines) == 2 * 15 * 3
    for enter, leave in zip(lines[::2], lines[1::2], strict=True):  # never two inside
        assert enter.startswith("in ") and leave == "out " + enter[3:]


def test_timeout_is_the_same_terminal_busy_as_on_posix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refusal() -> str:
        with TerminalLock(tmp_path, TERMINAL, wait=5):
            started = time.monotonic()
            with pytest.raises(TerminalBusy) as info:
                TerminalLock(tmp_path, TERMINAL, wait=0.3).acquire()
            assert 0.3 <= time.monotonic() - started < 10
        assert tickets(tmp_path) == []
        return str(info.value)

    posix = refusal()
    monkeypatch.setitem(sys.modules, "msvcrt", msvcrt_standin)
    monkeypatch.setattr(os, "unlink", msvcrt_standin.unlink)
    lock.use_platform("win32")
    try:
        assert refusal() == posix
    finally:
        lock.use_platform(sys.platform)


def test_a_killed_holder_releases_the_terminal(tmp_path: Path, windows: None) -> None:
    holder = child(HOLDER, str(tmp_path), TERMINAL, stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        with pytest.raises(TerminalBusy):
            TerminalLock(tmp_path, TERMINAL, wait=0.3).acquire()
    finally:
        holder.kill()  # SIGKILL: no unlock, no close by the holder
        holder.wait()
    with TerminalLock(tmp_path, TERMINAL, wait=5):
        pass


def test_processes_and_threads_get_the_terminal_in_arrival_order(
    tmp_path: Path, windows: None
) -> None:
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
                processes.append(child(WAITER, str(tmp_path), TERMINAL, str(order), tag))

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
    with TerminalLock(tmp_path, TERMINAL, wait=5):  # clears a ticket Windows kept
        pass
    assert tickets(tmp_path) == []


def test_a_killed_waiter_does_not_block_the_queue(tmp_path: Path, windows: None) -> None:
    order: list[str] = []

    def take(tag: str) -> None:
        with TerminalLock(tmp_path, TERMINAL, wait=60):
            order.append(tag)

    holder = TerminalLock(tmp_path, TERMINAL, wait=1)
    assert holder.acquire()
    first = threading.Thread(target=take, args=("first",), daemon=True)
    queue_up(tmp_path, first.start)
    doomed: list[subprocess.Popen[bytes]] = []
    queue_up(tmp_path, lambda: doomed.append(
        child(WAITER, str(tmp_path), TERMINAL, str(tmp_path / "x"), "killed")))
    last = threading.Thread(target=take, args=("last",), daemon=True)
    queue_up(tmp_path, last.start)  # watching the doomed process's ticket
    doomed[0].kill()
    doomed[0].wait()
    holder.release()
    first.join(30)
    last.join(30)
    assert order == ["first", "last"]


def test_a_ticket_windows_would_not_delete_is_cleared_by_the_next_comer(
    tmp_path: Path, windows: None
) -> None:
    holder = TerminalLock(tmp_path, TERMINAL, wait=1)
    assert holder.acquire()
    waiter = TerminalLock(tmp_path, TERMINAL, wait=30)
    got = threading.Thread(target=waiter.acquire, daemon=True)
    queue_up(tmp_path, got.start)
    [name] = tickets(tmp_path)
    tester = os.open(waiter.queue / name, os.O_RDWR)  # another waiter testing it, say
    holder.release()
    got.join(30)
    assert waiter._fd is not None  # it has the terminal...
    assert tickets(tmp_path) == [name]  # ...but Windows kept its ticket: it was open
    os.close(tester)
    waiter.release()
    started = time.monotonic()
    with TerminalLock(tmp_path, TERMINAL, wait=5):
        assert time.monotonic() - started < 1  # an abandoned ticket is not waited for
    assert tickets(tmp_path) == []
