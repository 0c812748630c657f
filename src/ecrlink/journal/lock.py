"""One transaction per terminal at a time, across threads and processes, first come first served.

The lock itself is an advisory ``flock`` on a file per terminal (``<digest>.lock``): the
kernel drops it when its holder dies, even by SIGKILL, so a crashed register never leaves
a terminal locked. Each acquisition opens the file anew, which makes two threads of one
process exclude each other too (flock locks belong to the open file, not the process).

Nothing in flock says who gets the file next, and waiters can only poll it (a blocking
flock could not honour ``wait`` nor a ``stop`` event): with several registers waiting, the
one whose poll happens to follow the release wins, and one can starve. So waiters queue:

* Arriving, a caller that finds nobody queued just tries the flock. Failing that, it
  creates a *ticket* ``<n>.t`` in ``<digest>.q/``, ``n`` one more than the highest ticket
  there (``O_EXCL``: two arrivals never share a number), and locks it for as long as it
  waits. Numbers come from the directory, not from a clock, so the order holds across
  processes whatever their clocks say.
* A waiter watches its predecessor, the next lower ticket. A ticket it can lock is no
  longer watched over by a live owner (the owner died, or just left): it is deleted and the
  waiter moves on to the one below. So a waiter killed in the queue costs the others one
  poll, and a waiter with no lower live ticket is the head.
* Only the head tries the terminal lock; having it, it deletes its ticket, making the next
  one the head. A waiter that gives up (``wait`` elapsed, ``stop`` set) deletes its ticket.

Correctness never depends on the queue: whatever happens to the tickets (a ticket deleted
by a waiter that races with its creator, a program that locks the file without queueing),
the terminal flock alone decides who holds the terminal; the queue only decides who asks
first. Uncontended, a lock costs one directory listing more than the bare flock; a ticket
(a file created, which can cost 100+ µs) only when there is a wait anyway
(``bench/bench_lock.py`` measures both).

On Windows the same queue runs over ``msvcrt.locking`` byte locks (``use_platform``): byte 0
of each file, sought before every call since they lock from the current position; held per
handle, so threads exclude each other as with flock; released by Windows when the holder
dies; unlocked (``LK_UNLCK``, same byte) before every close, because Windows frees a closed
handle's locks only "when system resources allow". A file someone has open cannot be
deleted there, so tickets are closed before deletion, and one whose deletion failed (a
waiter was testing it) is removed by the next waiter that finds it unlocked. The order is
first come, first served as on POSIX, with one exception: a ticket tested by a waiter in
the instant between its creation and its locking (which POSIX would delete, sending its
creator to the back) stays on Windows and that waiter no longer watches it, so two waiters
may both try the terminal lock, which still admits one at a time.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import importlib
import os
import sys
import threading
import time
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any, Protocol

from .._exceptions import JournalError, TerminalBusy

__all__ = ["Lock", "TerminalLock", "use_platform"]


class Lock(Protocol):
    """What a terminal's lock offers, whatever holds it (this module's file lock, or a
    PostgreSQL journal's advisory lock: ``ecrlink.journal.pg.PgTerminalLock``)."""

    def acquire(self, stop: threading.Event | None = None) -> bool:
        """Take it, waiting up to its ``wait`` (then ``TerminalBusy``); False if ``stop``."""

    def release(self) -> None:
        """Give it back; harmless if not held."""

    def __enter__(self) -> Any: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

#: A waiter polls every sixteenth of the time it has spent in its place in the queue
#: (``_POLL_FRACTION``), between ``_FIRST_POLL`` and ``_MAX_POLL``: a hand-over is seen late
#: by a small fraction of the transaction it waited for, whether that took 10 ms or a
#: minute, and a long card transaction is not polled through hundreds of times a second.
_POLL_FRACTION = 1 / 16
_FIRST_POLL = 0.002
_MAX_POLL = 0.025

_msvcrt: ModuleType | None = None
"""Windows' ``msvcrt`` when its byte locks are in use, None for POSIX ``flock``."""


def use_platform(platform: str) -> None:
    """Lock with ``platform``'s primitives: ``msvcrt`` byte locks on ``"win32"``, else flock.

    Chosen once at import from ``sys.platform``. The rest of this module is the same on
    both; tests run the Windows primitives on Linux by putting a stand-in ``msvcrt`` in
    ``sys.modules`` and calling ``use_platform("win32")``.
    """
    global _msvcrt
    _msvcrt = importlib.import_module("msvcrt") if platform == "win32" else None


use_platform(sys.platform)


def _lock(fd: int, *, block: bool = False) -> bool:
    """Lock ``fd`` exclusively; False if someone else holds it (and not ``block``).

    Windows locks bytes from the file's current position (byte 0 here, sought every time)
    and by handle, so two descriptors of one process exclude each other, as with flock.
    ``LK_LOCK`` would give up after ten tries a second apart, so blocking polls
    ``LK_NBLCK`` instead; its refusal is ``EACCES`` (a ``PermissionError``).
    """
    if _msvcrt is None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if block else fcntl.LOCK_NB))
        except BlockingIOError:
            return False
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                return False
            raise
        return True
    while True:
        os.lseek(fd, 0, os.SEEK_SET)
        try:
            _msvcrt.locking(fd, _msvcrt.LK_NBLCK, 1)
        except PermissionError:
            if not block:
                return False
            time.sleep(_FIRST_POLL)
        else:
            return True


def _close(fd: int, *, locked: bool) -> None:
    """Close ``fd``, unlocking it first on Windows if this descriptor holds the lock.

    Windows does release a closed handle's locks, but "the time it takes ... depends upon
    available system resources" (``LockFileEx``): unlocking first hands the terminal over
    at once.
    """
    if locked and _msvcrt is not None:
        with contextlib.suppress(OSError):
            os.lseek(fd, 0, os.SEEK_SET)
            _msvcrt.locking(fd, _msvcrt.LK_UNLCK, 1)
    os.close(fd)


def _delete(path: Path, fd: int) -> None:
    """Delete the ticket ``path`` open (and locked) as ``fd``, and close ``fd``.

    POSIX deletes first, so no waiter sees a departed owner's ticket unlocked; Windows can
    only delete a file nobody has open, so it closes first and leaves a ticket someone else
    still has open to the next waiter that finds it unlocked.
    """
    if _msvcrt is None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(fd)
    else:
        _close(fd, locked=True)
        with contextlib.suppress(OSError):
            os.unlink(path)


class TerminalLock:
    """``with TerminalLock(directory, terminal, wait=30):`` holds ``terminal`` exclusively.

    Waits up to ``wait`` seconds, then raises ``TerminalBusy``. Waiters get the terminal
    in the order they asked for it, whether they are threads or processes.
    """

    def __init__(self, directory: Path, terminal: str, *, wait: float) -> None:
        digest = hashlib.sha256(terminal.encode("utf-8")).hexdigest()[:24]
        self.path = directory / f"{digest}.lock"
        self.queue = directory / f"{digest}.q"
        """Where waiters' tickets are (see the module's documentation)."""
        self.terminal = terminal
        self.wait = wait
        self._fd: int | None = None

    def acquire(self, stop: threading.Event | None = None) -> bool:
        """Take the lock, waiting up to ``wait`` seconds (then ``TerminalBusy``).

        Returns False, without the lock, if ``stop`` is set while waiting (an asyncio
        caller that was cancelled). Either way no ticket is left behind.
        """
        deadline = time.monotonic() + self.wait
        fd = self._open()
        try:
            if not self._tickets() and _lock(fd):  # nobody waits: no need to queue
                self._fd = fd
                return True
            number, ticket = self._take_ticket()
        except BaseException:
            os.close(fd)
            raise
        watched: tuple[Path, int] | None = None  # the predecessor's ticket, locked by it
        head = False
        since = 0.0  # when this waiter last moved up in the queue
        try:
            while True:
                if not head and watched is None:
                    watched = self._predecessor(number)
                    head = watched is None
                    since = time.monotonic()
                if head and _lock(fd):
                    self._fd, fd = fd, -1
                    return True
                if watched is not None and _lock(watched[1]):
                    self._drop_if_abandoned(*watched)  # it left or died: look further down
                    watched = None
                    continue
                if stop is not None and stop.is_set():
                    return False
                now = time.monotonic()
                if now >= deadline:
                    raise TerminalBusy(
                        f"{self.terminal}: another transaction is in progress on this terminal "
                        f"(waited {self.wait:g} s)"
                    )
                time.sleep(min(max((now - since) * _POLL_FRACTION, _FIRST_POLL), _MAX_POLL))
        finally:
            # Leaving the queue, with the lock or not, hands the head over to the next.
            _delete(self._ticket_path(number), ticket)
            if watched is not None:
                os.close(watched[1])
            if fd != -1:
                os.close(fd)

    def release(self) -> None:
        """Give the lock back (closing the file releases it); harmless if not held."""
        if self._fd is not None:
            _close(self._fd, locked=True)
            self._fd = None

    def __enter__(self) -> TerminalLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def _open(self) -> int:
        """This acquisition's own descriptor on the terminal's lock file."""
        try:
            try:
                return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            except FileNotFoundError:  # the first lock in this directory
                self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise JournalError(f"cannot create the terminal lock {self.path} ({exc})") from exc

    def _ticket_path(self, number: int) -> Path:
        return self.queue / f"{number:012d}.t"

    def _tickets(self) -> list[int]:
        """The numbers of the tickets now in the queue, live or not, in no order."""
        try:
            names = os.listdir(self.queue)
        except FileNotFoundError:  # nobody ever queued for this terminal here
            return []
        numbers = []
        for name in names:
            stem, dot, ext = name.partition(".")
            if dot and ext == "t" and stem.isdigit():
                numbers.append(int(stem))
        return numbers

    def _take_ticket(self) -> tuple[int, int]:
        """Join the queue: a new ticket, after every other, locked; (number, descriptor)."""
        while True:
            number = max(self._tickets(), default=0) + 1
            path = self._ticket_path(number)
            try:
                try:
                    ticket = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
                except FileNotFoundError:  # the first to queue for this terminal here
                    self.queue.mkdir(exist_ok=True, mode=0o700)
                    continue
            except FileExistsError:
                continue  # another waiter took that number a moment ago
            except OSError as exc:
                raise JournalError(f"cannot queue for the terminal in {self.queue} ({exc})") \
                    from exc
            # Blocking is fine: only a waiter testing whether this ticket is live can hold
            # it, for an instant. Not yet locked, the ticket looked abandoned to that
            # waiter, which may have deleted it: then draw again (it was only just made).
            try:
                mine = _lock(ticket, block=True) and os.path.samestat(
                    os.fstat(ticket), os.stat(path)
                )
            except FileNotFoundError:
                mine = False
            except BaseException:
                _close(ticket, locked=True)  # if it was not locked yet, unlocking fails quietly
                raise
            if mine:
                return number, ticket
            _close(ticket, locked=True)

    def _predecessor(self, number: int) -> tuple[Path, int] | None:
        """The next lower live ticket, open (its owner holds its lock); None: we are head.

        Abandoned tickets met on the way (their lock is free) are deleted.
        """
        for other in sorted((n for n in self._tickets() if n < number), reverse=True):
            path = self._ticket_path(other)
            try:
                ticket = os.open(path, os.O_RDWR)
            except FileNotFoundError:
                continue  # its owner got the terminal or gave up
            if not _lock(ticket):
                return path, ticket
            self._drop_if_abandoned(path, ticket)
        return None

    @staticmethod
    def _drop_if_abandoned(path: Path, ticket: int) -> None:
        """Close a ticket whose lock we got; delete it if its owner did not (it died)."""
        if os.fstat(ticket).st_nlink:
            _delete(path, ticket)
        else:
            _close(ticket, locked=True)
