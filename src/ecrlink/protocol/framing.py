"""Find where a JSON reply ends in a byte stream that has no framing.

The serial line carries no STX/ETX, length or newline (spec §3), so the end of a
reply is the ``}`` that balances the first ``{``, outside strings. ``JsonFramer``
is fed chunks as they arrive and hands back each complete reply the moment its last
byte is fed, whatever the chunking (a chunk may end inside a string or right after a
backslash).
"""

from __future__ import annotations

import re

from .._exceptions import ReplyTooLarge
from .replies import MAX_REPLY_BYTES

__all__ = ["JsonFramer"]

_OUTSIDE = re.compile(rb'[{}"]')
_INSIDE = re.compile(rb'["\\]')


class JsonFramer:
    """Incremental splitter of a byte stream into JSON objects.

    Bytes before the first ``{`` (line noise, whitespace) are dropped and counted in
    ``discarded``. A reply that grows past ``max_size`` without ending raises
    ``ReplyTooLarge`` and the framer starts afresh.
    """

    __slots__ = ("_buf", "_depth", "_escape", "_in_string", "_pos", "discarded", "max_size")

    def __init__(self, max_size: int = MAX_REPLY_BYTES) -> None:
        self.max_size = max_size
        self.discarded = 0
        self._reset()

    def _reset(self) -> None:
        self._buf = bytearray()
        self._pos = 0
        self._depth = 0
        self._in_string = False
        self._escape = False

    @property
    def pending(self) -> bytes:
        """Bytes of an unfinished reply (for error messages)."""
        return bytes(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        """Add ``data``; return every reply completed by it, in order."""
        frames: list[bytes] = []
        buf = self._buf
        buf += data
        pos = self._pos
        while True:
            if self._depth == 0:
                start = buf.find(b"{", pos)
                if start < 0:
                    self.discarded += len(buf)
                    buf.clear()
                    pos = 0
                    break
                if start:
                    self.discarded += start
                    del buf[:start]
                self._depth = 1
                pos = 1
            if self._escape:
                if pos >= len(buf):
                    break
                self._escape = False
                pos += 1
            if self._in_string:
                m = _INSIDE.search(buf, pos)
                if m is None:
                    pos = len(buf)
                    break
                pos = m.end()
                if m.group() == b"\\":
                    self._escape = True
                else:
                    self._in_string = False
                continue
            m = _OUTSIDE.search(buf, pos)
            if m is None:
                pos = len(buf)
                break
            pos = m.end()
            token = m.group()
            if token == b'"':
                self._in_string = True
            elif token == b"{":
                self._depth += 1
            else:
                self._depth -= 1
                if self._depth == 0:
                    frames.append(bytes(buf[:pos]))
                    del buf[:pos]
                    pos = 0
        self._pos = pos
        if len(buf) > self.max_size:
            size = len(buf)
            head = bytes(buf[:256])
            self._reset()
            raise ReplyTooLarge(f"reply exceeds {self.max_size} bytes ({size} so far)", head)
        return frames
