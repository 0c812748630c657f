"""A stand-in for Windows' ``msvcrt`` byte locks, so ecrlink's Windows lock code runs on Linux.

It behaves as Microsoft documents ``_locking`` (which ``msvcrt.locking`` calls), as far as
a lock can tell:

* ``locking(fd, mode, nbytes)`` locks ``nbytes`` bytes from the file's *current position*;
* locks belong to the handle: another descriptor, in this process or another, is refused,
  and a handle cannot lock again a byte it already holds;
* ``LK_NBLCK``/``LK_NBRLCK`` refuse at once with ``EACCES`` (Python: ``PermissionError``);
  ``LK_LOCK``/``LK_RLCK`` try ten times, a second apart, then fail with ``EDEADLOCK``;
* ``LK_UNLCK`` unlocks a region this handle locked, and fails with ``EACCES`` otherwise;
* the locks go when the handle is closed or its process dies (by the kernel).

The locks are real kernel byte-range locks: Linux open-file-description locks
(``F_OFD_SETLK``), owned by the open file as Windows' are by the handle. Plain POSIX
``lockf`` locks would not do: they belong to the process (two threads' descriptors would
not exclude each other) and closing any descriptor of the file drops all of them.

``install()`` also makes ``os.unlink``/``os.remove`` refuse, as Windows does, to delete a
file that any process has open (``msvcrt`` opens files without ``FILE_SHARE_DELETE``).
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
import sys
import threading
import time
from typing import Any

LK_UNLCK, LK_LOCK, LK_NBLCK, LK_RLCK, LK_NBRLCK = 0, 1, 2, 3, 4  # msvcrt's values

# struct flock on 64-bit Linux: l_type, l_whence, l_start, l_len, l_pid (0 for OFD locks).
_FLOCK = "hhqqi4x"

# (fd, device, inode) -> the (start, length) regions that handle holds.
_held: dict[tuple[int, int, int], set[tuple[int, int]]] = {}
_held_lock = threading.Lock()

_real_unlink = os.unlink


def _flock(kind: int, start: int, length: int) -> bytes:
    return struct.pack(_FLOCK, kind, os.SEEK_SET, start, length, 0)


def _holder(fd: int, start: int, length: int) -> int:
    """``F_UNLCK`` if nobody else could hold [start, start+length), else the lock's type.

    Asked through a fresh open of the same file, so this process's own locks count too.
    """
    probe = os.open(f"/proc/self/fd/{fd}", os.O_RDWR)
    try:
        answer = fcntl.fcntl(probe, fcntl.F_OFD_GETLK, _flock(fcntl.F_WRLCK, start, length))
    finally:
        os.close(probe)
    kind: int = struct.unpack(_FLOCK, answer)[0]
    return kind


def locking(fd: int, mode: int, nbytes: int) -> None:
    """``msvcrt.locking``: lock, or unlock, ``nbytes`` bytes from ``fd``'s position."""
    if nbytes <= 0:
        raise OSError(errno.EINVAL, "Invalid argument")
    start = os.lseek(fd, 0, os.SEEK_CUR)
    info = os.fstat(fd)
    key = (fd, info.st_dev, info.st_ino)
    region = (start, nbytes)
    with _held_lock:
        regions = _held.setdefault(key, set())
        if region in regions and _holder(fd, start, nbytes) == fcntl.F_UNLCK:
            regions.discard(region)  # a handle closed without unlocking, its number reused
        if mode == LK_UNLCK:
            if region not in regions:
                raise PermissionError(errno.EACCES, "Permission denied")
            fcntl.fcntl(fd, fcntl.F_OFD_SETLK, _flock(fcntl.F_UNLCK, start, nbytes))
            regions.discard(region)
            return
    if mode not in (LK_LOCK, LK_NBLCK, LK_RLCK, LK_NBRLCK):
        raise OSError(errno.EINVAL, "Invalid argument")
    kind = fcntl.F_RDLCK if mode in (LK_RLCK, LK_NBRLCK) else fcntl.F_WRLCK
    tries = 10 if mode in (LK_LOCK, LK_RLCK) else 1
    for attempt in range(tries):
        if attempt:
            time.sleep(1)
        with _held_lock:
            if region in _held.setdefault(key, set()):
                continue  # a handle cannot lock a byte it holds already
            try:
                fcntl.fcntl(fd, fcntl.F_OFD_SETLK, _flock(kind, start, nbytes))
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                continue
            _held[key].add(region)
            return
    if tries == 1:
        raise PermissionError(errno.EACCES, "Permission denied")
    raise OSError(errno.EDEADLOCK, "Resource deadlock avoided")


def is_locked(path: str | os.PathLike[str]) -> bool:
    """Whether anyone holds a byte lock on byte 0 of ``path`` (for tests to wait on)."""
    fd = os.open(path, os.O_RDWR)
    try:
        return _holder(fd, 0, 1) != fcntl.F_UNLCK
    finally:
        os.close(fd)


def held_here(path: str | os.PathLike[str]) -> set[tuple[int, int]]:
    """The regions of ``path`` this process locked and has not unlocked with ``LK_UNLCK``
    (a handle closed while locked leaves them here)."""
    info = os.stat(path)
    with _held_lock:
        return {
            region for (_, dev, ino), regions in _held.items()
            if (dev, ino) == (info.st_dev, info.st_ino) for region in regions
        }


def _open_anywhere(path: str | os.PathLike[str]) -> bool:
    """Whether any process has ``path`` open (what makes Windows refuse to delete it)."""
    try:
        target = os.stat(path)
    except OSError:
        return False
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for name in fds:
            try:
                found = os.stat(f"/proc/{pid}/fd/{name}")
            except OSError:
                continue
            if (found.st_dev, found.st_ino) == (target.st_dev, target.st_ino):
                return True
    return False


def unlink(path: str | os.PathLike[str], *, dir_fd: Any = None) -> None:
    """``os.unlink`` as on Windows: a file some process has open cannot be deleted."""
    if dir_fd is None and _open_anywhere(path):
        raise PermissionError(
            errno.EACCES, "The process cannot access the file because it is being used by "
            "another process", os.fspath(path),
        )
    _real_unlink(path, dir_fd=dir_fd)


def install() -> None:
    """Become ``msvcrt`` and make ``os.unlink``/``os.remove`` Windows-like, for good
    (child processes); tests in the pytest process patch the same names with monkeypatch."""
    sys.modules["msvcrt"] = sys.modules[__name__]
    os.unlink = unlink
    os.remove = unlink
