"""One HTTP/1.1 exchange with a terminal, without any I/O (h11's sans-IO way).

``HttpExchange`` holds the request bytes to write and takes the reply's bytes as
they arrive, in chunks of any size; the blocking and the asyncio transports
(``http.py``) only move bytes between it and a socket. Everything else is decided
here, once: the request's exact bytes, how a reply ends (``Content-Length``,
chunked, or the connection closing, as HTTP/1.0 terminals do), the reply-size
limit, what a status means, and what each failure is called.

The request is written by ``request_bytes``, not by h11, so that h11 (about 15 ms
to import, a tenth of a sale's start-up budget) is imported only once the request
has left; h11 then parses the reply. A test checks that h11 would have written the
very same bytes.

Failures are named by whether the terminal can have seen the request:
``connecting()`` (nothing sent: ``ConnectError``, ``ConnectTimeout``) and
``HttpExchange.io()`` (in doubt: ``WriteError``, ``ReadError``, ``ReadTimeout``).
A non-2xx status answers the question by itself: once one has come, a broken or
endless error page changes nothing (``NotTerminalReply`` for 4xx, ``TerminalBusy``
for 503, ``RemoteProtocolError`` for other statuses, which stay in doubt).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from .._exceptions import (
    ConnectError,
    ConnectTimeout,
    EcrError,
    LocalProtocolError,
    NotTerminalReply,
    ReadError,
    ReadTimeout,
    RemoteProtocolError,
    ReplyTooLarge,
    TerminalBusy,
    WriteError,
)
from ..protocol import MAX_REPLY_BYTES

if TYPE_CHECKING:
    import h11

__all__ = ["HEADERS", "HttpExchange", "connecting", "first_line", "request_bytes"]

HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"Accept", b"application/json"),
    (b"Accept-Encoding", b"identity"),
    (b"Connection", b"close"),
    (b"User-Agent", b"ecrlink"),
)
"""Sent after ``Host``, in this order. One request per connection: the terminals'
small web servers expect ``Connection: close``."""

# An error page only decorates a message; a captive portal's page can be large.
ERROR_BODY_BYTES = 16 * 1024
_FIRST_LINE_CHARS = 120
# The longest reply head h11 will buffer (its default); a terminal's is ~100 bytes.
_MAX_HEAD_BYTES = 16 * 1024


def request_target(line: str) -> bytes:
    """The request target as it goes on the wire: the protocol core's line with only
    spaces as ``%20`` (``|`` and ``:`` raw, as in the spec's samples).

    ``LocalProtocolError`` for anything HTTP cannot carry (the protocol core never
    writes it): checked here, before a byte leaves, not by h11 after."""
    target = line.replace(" ", "%20").encode("utf-8", "surrogatepass")
    if not target or any(not 0x21 <= byte <= 0x7E for byte in target):
        raise LocalProtocolError(f"request line: must be printable ASCII, got {line!r}")
    return target


def request_bytes(target: bytes, host: bytes) -> bytes:
    """The whole GET request for ``target``, as h11 would write it."""
    lines = [b"GET " + target + b" HTTP/1.1", b"Host: " + host]
    lines += [name + b": " + value for name, value in HEADERS]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def first_line(body: bytes) -> str:
    """The first non-empty line of ``body`` as text: tags, scripts and styles removed,
    entities decoded, whitespace collapsed, at most 120 characters."""
    import html  # only error pages come here
    import re

    markup = re.compile(
        r"<!--.*?(?:-->|\Z)|<(script|style)\b.*?(?:</\1\s*>|\Z)|<[^>]*(?:>|\Z)",
        re.DOTALL | re.IGNORECASE,
    )
    text = html.unescape(markup.sub(" ", body.decode("utf-8", "replace")))
    for line in text.splitlines():
        words = " ".join("".join(c if c.isprintable() else " " for c in line).split())
        if words:
            if len(words) > _FIRST_LINE_CHARS:
                words = words[: _FIRST_LINE_CHARS - 3] + "..."
            return words
    return ""


@contextmanager
def connecting(base_url: str) -> Iterator[None]:
    """Name a failure while connecting (DNS, TCP, TLS, the certificate): nothing was
    sent. ``TimeoutError`` (a socket's or asyncio's) is ``ConnectTimeout``."""
    try:
        yield
    except TimeoutError as exc:
        raise ConnectTimeout(
            f"{base_url}: terminal did not accept the connection in time; nothing was sent"
        ) from exc
    except (OSError, UnicodeError) as exc:  # UnicodeError: a host name IDNA refuses
        raise ConnectError(
            f"{base_url}: cannot connect to the terminal ({exc}); nothing was sent"
        ) from exc


class HttpExchange:
    """One request and its reply, as bytes; see the module docstring.

    The driver writes ``request``, calls ``written()``, then feeds every chunk it
    reads to ``receive()`` (``b""`` when the peer closed) until that returns True,
    all inside ``io()``; then ``reply()`` gives the body or raises what the status
    means.
    """

    __slots__ = ("_body", "_conn", "_target", "_written", "base_url", "host", "request",
                 "status")

    def __init__(self, base_url: str, host: bytes, line: str) -> None:
        self.base_url = base_url
        self.host = host
        self._target = request_target(line)
        self.request = request_bytes(self._target, host)
        self.status: int | None = None
        self._body = bytearray()
        self._conn: h11.Connection | None = None
        self._written = False

    # --- the reply, as it arrives ---------------------------------------------------------

    def written(self) -> None:
        """The whole request was handed to the link."""
        self._written = True

    def receive(self, data: bytes) -> bool:
        """Take bytes that arrived (``b""``: the peer closed); True once the reply is
        complete, or for an error page once enough of it is in.

        ``ReadError`` if the bytes are not an HTTP reply or stop before its end,
        ``ReplyTooLarge`` if a 2xx body passes ``MAX_REPLY_BYTES``."""
        import h11  # here, once the request has left (see the module docstring)

        conn = self._conn or self._start()
        try:
            conn.receive_data(data)
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    if not data:  # closed, and h11 still wants more: never coming
                        raise h11.RemoteProtocolError("closed before the reply ended")
                    return False
                if isinstance(event, h11.Response):
                    self.status = event.status_code
                elif isinstance(event, h11.Data):
                    if self._add(event.data):
                        return True
                elif isinstance(event, h11.EndOfMessage) or event is h11.PAUSED:
                    return True
                elif isinstance(event, h11.ConnectionClosed):
                    raise h11.RemoteProtocolError("closed before any reply")
                # an InformationalResponse (1xx): the real status is still to come
        except h11.RemoteProtocolError as exc:
            raise ReadError(
                f"{self.base_url}: connection closed without a complete reply ({exc})"
            ) from exc

    def _start(self) -> h11.Connection:
        """h11, told of the request that left, so that it expects the reply to a GET."""
        import h11

        conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=_MAX_HEAD_BYTES)
        headers = [(b"Host", self.host), *HEADERS]
        conn.send(h11.Request(method=b"GET", target=self._target, headers=headers))
        conn.send(h11.EndOfMessage())
        self._conn = conn
        return conn

    @property
    def is_error_page(self) -> bool:
        """A status came and it is not 2xx: the status alone says what answered."""
        return self.status is not None and not 200 <= self.status < 300

    def _add(self, chunk: bytes) -> bool:
        """Take a piece of the body; True once no more is wanted."""
        self._body += chunk
        if self.is_error_page:
            return len(self._body) >= ERROR_BODY_BYTES
        if len(self._body) > MAX_REPLY_BYTES:
            raise ReplyTooLarge(
                f"reply exceeds {MAX_REPLY_BYTES} bytes ({len(self._body)} so far)",
                bytes(self._body[:256]),
            )
        return False

    # --- what it means --------------------------------------------------------------------

    def reply(self) -> bytes:
        """The body of a 2xx reply; otherwise the error its status means."""
        assert self.status is not None, "reply() before the reply"
        if 200 <= self.status < 300:
            return bytes(self._body)
        raise self._status_error()

    def _status_error(self) -> EcrError:
        assert self.status is not None
        if self.status == 503:
            return TerminalBusy(f"{self.base_url}: terminal is busy with another transaction")
        body = bytes(self._body)
        line = first_line(body)
        if 400 <= self.status < 500:
            return NotTerminalReply(self.status, self.base_url, line)
        # A 5xx may come from a terminal that failed halfway: the caller keeps it in doubt.
        return RemoteProtocolError(f"HTTP {self.status} from {self.base_url}: {line}", body)

    @contextmanager
    def io(self, timeout: float) -> Iterator[None]:
        """Name a failure once the request may have left: in doubt, unless an error
        status already came (then the page was only decoration). ``TimeoutError``
        means the exchange's ``timeout`` passed."""
        try:
            yield
        except (OSError, ReadError) as exc:  # TimeoutError is an OSError
            if self.is_error_page:
                raise self._status_error() from exc
            if isinstance(exc, ReadError):
                raise
            if isinstance(exc, TimeoutError):
                raise ReadTimeout(
                    f"{self.base_url}: no complete reply within {timeout:g} s"
                ) from exc
            if not self._written:
                raise WriteError(f"{self.base_url}: sending the request failed ({exc})") from exc
            raise ReadError(
                f"{self.base_url}: connection closed without a complete reply ({exc})"
            ) from exc
