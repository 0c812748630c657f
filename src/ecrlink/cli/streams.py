"""Console streams that never fail a command.

A Windows POS program reading ``ecrlink``'s output through a pipe gets the ANSI code
page (cp1258 on Vietnamese Windows), not UTF-8, and a script may close its end of the
pipe early (``| head``). Neither may turn an approved payment into a traceback or
another exit code: a character the console cannot show becomes ``?``, and a reader
that went away is ignored (the rest of the output goes nowhere). JSON never needs the
replacement: it is written ASCII-only, with ``\\u`` escapes.
"""

from __future__ import annotations

import contextlib
import errno
import os
from typing import IO, Any

__all__ = ["SafeStream"]

# EPIPE on POSIX; EINVAL is what Windows reports for a closed pipe.
_GONE = (errno.EPIPE, errno.EINVAL)


class SafeStream:
    """Wraps a text stream: unencodable characters become ``?``, a closed pipe is ignored."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._gone = False

    def write(self, text: str) -> int:
        """Write ``text`` as far as the stream can take it; never raise for either cause."""
        if self._gone:
            return len(text)
        try:
            return self._stream.write(text)
        except UnicodeEncodeError:
            encoding = getattr(self._stream, "encoding", None) or "ascii"
            return self.write(text.encode(encoding, "replace").decode(encoding))
        except OSError as exc:
            if exc.errno not in _GONE:
                raise
            self._went_away()
            return len(text)

    def write_bytes(self, data: bytes) -> None:
        """Write encoded ``data`` (ASCII, or UTF-8 for a UTF-8 stream) to the stream's
        byte layer when it has one: a large document (a million report rows) skips a
        decode and re-encode of every byte. Same rules as :meth:`write`."""
        buffer = getattr(self._stream, "buffer", None)
        if self._gone or buffer is None:
            self.write(data.decode("utf-8", "replace"))
            return
        try:
            self._stream.flush()  # text written before must come first
            buffer.write(data)
        except OSError as exc:
            if exc.errno not in _GONE:
                raise
            self._went_away()

    def flush(self) -> None:
        """Flush, unless the reader went away."""
        if self._gone:
            return
        try:
            self._stream.flush()
        except OSError as exc:
            if exc.errno not in _GONE:
                raise
            self._went_away()

    @property
    def gone(self) -> bool:
        """True once the reader closed the pipe (``| head``): nothing more is read."""
        return self._gone

    def _went_away(self) -> None:
        # Point the descriptor at the null device, so the interpreter's own flush at
        # exit does not fail on the closed pipe again.
        self._gone = True
        with contextlib.suppress(OSError, ValueError, AttributeError):
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, self._stream.fileno())
            os.close(null)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
