"""One transaction per terminal at a time, across threads and processes.

An advisory ``flock`` on a file per terminal: the kernel drops it when its holder
dies, even by SIGKILL, so a crashed register never leaves a terminal locked. Each
acquisition opens the file anew, which makes two threads of one process exclude
each other too (flock locks belong to the open file, not the process).
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path
from types import TracebackType

from .._exceptions import JournalError, TerminalBusy

__all__ = ["TerminalLock"]

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
    except OSError as exc:
        if exc.errno in (11, 13, 35):  # EAGAIN / EACCES / EWOULDBLOCK on some platforms
            return False
        raise
    return True


class TerminalLock:
    """``with TerminalLock(directory, terminal, wait=30):`` holds ``terminal`` exclusively.

    Waits up to ``wait`` seconds, then raises ``TerminalBusy``.
    """

    def __init__(self, directory: Path, terminal: str, *, wait: float) -> None:
        digest = hashlib.sha256(terminal.encode("utf-8")).hexdigest()[:24]
        self.path = directory / f"{digest}.lock"
        self.terminal = terminal
        self.wait = wait
        self._fd: int | None = None

    def acquire(self, stop: threading.Event | None = None) -> bool:
        """Take the lock, waiting up to ``wait`` seconds (then ``TerminalBusy``).

        Returns False, without the lock, if ``stop`` is set while waiting (an asyncio
        caller that was cancelled).
        """
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise JournalError(f"cannot create the terminal lock {self.path} ({exc})") from exc
        deadline = time.monotonic() + self.wait
        delay = 0.005
        while not _try_lock(fd):
            if stop is not None and stop.is_set():
                os.close(fd)
                return False
            if time.monotonic() >= deadline:
                os.close(fd)
                raise TerminalBusy(
                    f"{self.terminal}: another transaction is in progress on this terminal "
                    f"(waited {self.wait:g} s)"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
        self._fd = fd
        return True

    def release(self) -> None:
        """Give the lock back (closing the file releases it); harmless if not held."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> TerminalLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
