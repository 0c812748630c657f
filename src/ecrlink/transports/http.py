"""Web ECR over HTTP, with httpx.

The request target goes on the wire exactly as the protocol core wrote it, ``|`` and
``:`` raw, with only spaces as ``%20`` (the spec's samples never encode anything
else). One request per connection (``Connection: close``), as the terminals' small
web servers expect; replies without ``Content-Length`` (HTTP/1.0, read to close) are
fine. ``https://`` terminals with self-signed certificates are pinned by SHA-256
fingerprint: the certificate is fetched and checked first, then the real connection
trusts exactly that certificate, so no request byte reaches an impostor.

``timeout`` bounds the whole exchange, not the gap between two bytes (httpx's read
timeout), so a terminal or proxy trickling a byte a second cannot hold a sale for
hours. httpx's ``trace`` extension tells the moment the request starts to leave: the
caller's ``on_sent`` runs then, the deadline starts then, and whether it has happened
decides how a failure is named (``ConnectError`` before, ``ReadError`` after).
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import html
import re
import socket
import ssl
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from .._exceptions import (
    ConfigError,
    ConnectError,
    ConnectTimeout,
    NotTerminalReply,
    ReadError,
    ReadTimeout,
    RemoteProtocolError,
    ReplyTooLarge,
    TerminalBusy,
    TransportError,
    WriteError,
)
from ..protocol import MAX_REPLY_BYTES
from .base import AsyncTransport, OnSent, Transport

__all__ = ["AsyncHttpTransport", "HttpTransport", "certificate_fingerprint"]

_HEADERS = {
    "Accept": "application/json",
    "Accept-Encoding": "identity",
    "Connection": "close",
    "User-Agent": "ecrlink",
}

# httpcore's trace event fired on an established (and, for https, verified)
# connection just before the request head is written: the last moment at which
# nothing has reached the terminal.
_LEAVING = "http11.send_request_headers.started"
# ... and the one fired when the last byte of the body has arrived.
_ALL_IN = "http11.receive_response_body.complete"

# An error page only decorates a message; a captive portal's page can be large.
_ERROR_BODY_BYTES = 16 * 1024
_FIRST_LINE_CHARS = 120


def certificate_fingerprint(der: bytes) -> str:
    """SHA-256 of a DER certificate, as lowercase hex (the form ``tls_fingerprint`` takes)."""
    return hashlib.sha256(der).hexdigest()


def _normalise_fingerprint(text: str) -> str:
    cleaned = text.lower().removeprefix("sha256:").replace(":", "").replace(" ", "")
    if len(cleaned) != 64 or any(c not in "0123456789abcdef" for c in cleaned):
        raise ConfigError("tls_fingerprint: must be a SHA-256 digest, 64 hex digits")
    return cleaned


# --- whether the request left -----------------------------------------------------------


class _Sent:
    """The caller's ``on_sent``, called at most once, and whether it was."""

    __slots__ = ("_callback", "fired")

    def __init__(self, callback: OnSent | None) -> None:
        self._callback = callback
        self.fired = False

    def fire(self) -> None:
        if self.fired:
            return
        # Marked first: if the callback raises, that exception (not a translated
        # httpx error) reaches the caller, and it must not be called again.
        self.fired = True
        if self._callback is not None:
            self._callback()


def _before_sending(url: str, exc: httpx.HTTPError) -> TransportError:
    """Any failure before the first request byte: nothing reached the terminal."""
    if isinstance(exc, httpx.TimeoutException):
        return ConnectTimeout(f"{url}: terminal did not accept the connection in time")
    return ConnectError(f"{url}: cannot connect to the terminal ({exc}); nothing was sent")


def _after_sending(url: str, exc: httpx.HTTPError, timeout: float) -> TransportError:
    """A failure once the request may have reached the terminal: outcome unknown."""
    if isinstance(exc, httpx.TimeoutException):
        return ReadTimeout(f"{url}: no complete reply within {timeout:g} s")
    if isinstance(exc, httpx.WriteError):
        return WriteError(f"{url}: sending the request failed ({exc})")
    if isinstance(exc, httpx.ReadError | httpx.RemoteProtocolError | httpx.ConnectError):
        return ReadError(f"{url}: connection closed without a complete reply ({exc})")
    return TransportError(f"{url}: {exc}")


@contextmanager
def _translated(url: str, sent: _Sent, timeout: float) -> Iterator[None]:
    """Turn httpx's errors into ecrlink's, at this one boundary, by whether the
    request had started to leave (not by httpx's class alone: what matters to the
    caller is whether the terminal can have seen the request)."""
    try:
        yield
    except httpx.HTTPError as exc:
        if sent.fired:
            raise _after_sending(url, exc, timeout) from exc
        raise _before_sending(url, exc) from exc


# --- the deadline of a blocking exchange ------------------------------------------------


class _Deadline:
    """The end of one exchange, set when the request starts to leave."""

    __slots__ = ("at",)

    def __init__(self) -> None:
        self.at: float | None = None

    def start(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds

    def bound(self, timeout: float | None, error: type[Exception]) -> float | None:
        """``timeout`` shortened to what is left; ``error`` if nothing is."""
        if self.at is None:
            return timeout
        remaining = self.at - time.monotonic()
        if remaining <= 0:
            raise error("the exchange's deadline has passed")
        return remaining if timeout is None else min(timeout, remaining)


# The deadline of the exchange running in this thread; the network backend, which
# httpx gives no per-request context, finds it here.
_DEADLINE: contextvars.ContextVar[_Deadline | None] = contextvars.ContextVar(
    "ecrlink_http_deadline", default=None
)


class _BoundedStream(httpcore.NetworkStream):
    """A socket stream whose every read and write ends at the exchange's deadline,
    so the deadline holds between chunks and inside each wait for one."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: _Deadline) -> None:
        self._inner = inner
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._deadline.bound(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._deadline.bound(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        tls = self._inner.start_tls(ssl_context, server_hostname, timeout)
        return _BoundedStream(tls, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _BoundedBackend(httpcore.NetworkBackend):
    """httpcore's blocking sockets, wrapped in ``_BoundedStream``."""

    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        deadline = _DEADLINE.get()
        return stream if deadline is None else _BoundedStream(stream, deadline)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def _bounded_http_transport(pinned: ssl.SSLContext | None) -> httpx.HTTPTransport:
    """httpx's transport, on a pool that uses ``_BoundedBackend``.

    httpx offers no way to choose the network backend, so the pool it built is
    replaced by one that has it: no keep-alive (one request per connection), and
    ``pinned`` or else httpcore's default verification (system CAs and certifi).
    Checked, so that an httpx which renamed the attribute fails here rather than
    silently losing the deadline.
    """
    transport = httpx.HTTPTransport(trust_env=False)
    if not isinstance(getattr(transport, "_pool", None), httpcore.ConnectionPool):
        raise RuntimeError("ecrlink: unsupported httpx version (no HTTPTransport._pool)")
    transport._pool = httpcore.ConnectionPool(
        ssl_context=pinned, max_keepalive_connections=0, network_backend=_BoundedBackend()
    )
    return transport


# --- what came back ---------------------------------------------------------------------

_MARKUP = re.compile(
    r"<!--.*?(?:-->|\Z)|<(script|style)\b.*?(?:</\1\s*>|\Z)|<[^>]*(?:>|\Z)",
    re.DOTALL | re.IGNORECASE,
)


def _first_line(body: bytes) -> str:
    """The first non-empty line of ``body`` as text: tags, scripts and styles removed,
    entities decoded, whitespace collapsed, at most 120 characters."""
    text = html.unescape(_MARKUP.sub(" ", body.decode("utf-8", "replace")))
    for line in text.splitlines():
        words = " ".join("".join(c if c.isprintable() else " " for c in line).split())
        if words:
            if len(words) > _FIRST_LINE_CHARS:
                words = words[: _FIRST_LINE_CHARS - 3] + "..."
            return words
    return ""


class _Reply:
    """The status and the body as they arrive: a terminal's body up to the reply limit
    (beyond it, ``ReplyTooLarge``), an error page's only as far as its first line can
    need."""

    __slots__ = ("data", "status")

    def __init__(self) -> None:
        self.status: int | None = None
        self.data = bytearray()

    @property
    def is_error_page(self) -> bool:
        """A status came and it is not 2xx: the status alone says what answered."""
        return self.status is not None and not 200 <= self.status < 300

    def add(self, chunk: bytes) -> bool:
        """Take ``chunk``; True once no more is wanted."""
        self.data += chunk
        if self.is_error_page:
            return len(self.data) >= _ERROR_BODY_BYTES
        if len(self.data) > MAX_REPLY_BYTES:
            raise ReplyTooLarge(
                f"reply exceeds {MAX_REPLY_BYTES} bytes ({len(self.data)} so far)",
                bytes(self.data[:256]),
            )
        return False


class _HttpCommon:
    """What the sync and async HTTP transports share: everything but the sending."""

    def __init__(
        self,
        url: str,
        *,
        connect_timeout: float = 5.0,
        tls_fingerprint: str | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"terminal URL: expected http://host[:port], got {url!r}")
        if parts.path not in ("", "/") or parts.query:
            raise ConfigError(f"terminal URL: give only scheme, host and port, got {url!r}")
        if tls_fingerprint is not None and parts.scheme != "https":
            raise ConfigError("tls_fingerprint: only meaningful with an https:// URL")
        self.base_url = f"{parts.scheme}://{parts.netloc}"
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.connect_timeout = connect_timeout
        self.fingerprint = _normalise_fingerprint(tls_fingerprint) if tls_fingerprint else None

    def target(self, line: str) -> bytes:
        """The request target as it goes on the wire."""
        return line.replace(" ", "%20").encode("ascii")

    def request(
        self, client: httpx.Client | httpx.AsyncClient, line: str, timeout: float, trace: Any
    ) -> httpx.Request:
        """The GET for ``line``; ``trace`` is httpx's trace callback (a coroutine
        function for the async client)."""
        target = self.target(line)
        return client.build_request(
            "GET", target.decode("ascii"),
            # httpx's own timeouts stay as outer bounds: connecting has its own, and no
            # single wait may outlast the whole exchange.
            timeout=httpx.Timeout(
                connect=self.connect_timeout, read=timeout, write=timeout, pool=timeout
            ),
            # httpx would re-encode the URL; the terminal gets our bytes as they are.
            extensions={"target": target, "trace": trace},
        )

    def pinned_context(self) -> ssl.SSLContext:
        """Fetch the terminal's certificate, check its fingerprint, trust only it."""
        assert self.fingerprint is not None
        try:
            pem = ssl.get_server_certificate((self.host, self.port), timeout=self.connect_timeout)
        except (OSError, ssl.SSLError) as exc:
            if isinstance(exc, socket.timeout | TimeoutError):
                raise ConnectTimeout(f"{self.base_url}: TLS handshake timed out") from exc
            raise ConnectError(f"{self.base_url}: cannot fetch the certificate ({exc})") from exc
        seen = certificate_fingerprint(ssl.PEM_cert_to_DER_cert(pem))
        if seen != self.fingerprint:
            raise ConnectError(
                f"{self.base_url}: certificate fingerprint {seen} does not match the pinned "
                f"{self.fingerprint}; nothing was sent"
            )
        context = ssl.create_default_context(cadata=pem)
        context.check_hostname = False
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        return context

    def check_status(self, reply: _Reply) -> bytes:
        """The body of a 2xx reply; otherwise the error the status means."""
        status, body = reply.status, bytes(reply.data)
        assert status is not None, "check_status before any reply"
        if 200 <= status < 300:
            return body
        if status == 503:
            raise TerminalBusy(f"{self.base_url}: terminal is busy with another transaction")
        first_line = _first_line(body)
        if 400 <= status < 500:
            raise NotTerminalReply(status, self.base_url, first_line)
        # A 5xx may come from a terminal that failed halfway: the caller keeps it in doubt.
        raise RemoteProtocolError(f"HTTP {status} from {self.base_url}: {first_line}", body)


class HttpTransport(Transport):
    """Blocking HTTP transport (one ``httpx.Client``, a fresh connection per request)."""

    def __init__(
        self,
        url: str,
        *,
        connect_timeout: float = 5.0,
        tls_fingerprint: str | None = None,
    ) -> None:
        self._common = _HttpCommon(
            url, connect_timeout=connect_timeout, tls_fingerprint=tls_fingerprint
        )
        self._client: httpx.Client | None = None

    def _get_client(self) -> httpx.Client:
        if self._client is None:
            pinned = self._common.pinned_context() if self._common.fingerprint else None
            self._client = httpx.Client(
                base_url=self._common.base_url,
                headers=_HEADERS,
                transport=_bounded_http_transport(pinned),
                trust_env=False,
            )
        return self._client

    def exchange(self, line: str, *, timeout: float, on_sent: OnSent | None = None) -> bytes:
        """Send ``line``, return the raw reply; see ``Transport.exchange``."""
        client = self._get_client()
        sent, deadline, reply = _Sent(on_sent), _Deadline(), _Reply()

        def trace(event: str, _info: dict[str, Any]) -> None:
            if event == _LEAVING:
                sent.fire()
                deadline.start(timeout)

        token = _DEADLINE.set(deadline)
        try:
            with _translated(self._common.base_url, sent, timeout):
                request = self._common.request(client, line, timeout, trace)
                self._send(client, request, reply)
        finally:
            _DEADLINE.reset(token)
        return self._common.check_status(reply)

    @staticmethod
    def _send(client: httpx.Client, request: httpx.Request, reply: _Reply) -> None:
        # Every read below, of the head as of the body, ends at the deadline
        # (_BoundedStream), so a trickle cannot stretch it.
        response = client.send(request, stream=True)
        reply.status = response.status_code
        try:
            for chunk in response.iter_raw():
                if reply.add(chunk):
                    break
        except httpx.HTTPError:
            if not reply.is_error_page:
                raise
            # The status already said what answered; the page is only decoration.
        finally:
            response.close()

    def close(self) -> None:
        """Close the HTTP client; a later exchange opens a new one."""
        if self._client is not None:
            self._client.close()
            self._client = None


class AsyncHttpTransport(AsyncTransport):
    """The asyncio HTTP transport (``httpx.AsyncClient``)."""

    def __init__(
        self,
        url: str,
        *,
        connect_timeout: float = 5.0,
        tls_fingerprint: str | None = None,
    ) -> None:
        self._common = _HttpCommon(
            url, connect_timeout=connect_timeout, tls_fingerprint=tls_fingerprint
        )
        self._client: httpx.AsyncClient | None = None

    async def _get_client(self) -> httpx.AsyncClient:
        if self._client is None:
            # Built in a worker thread: loading the CA bundle (even for http://) blocks
            # for tens of milliseconds, and far longer on a busy register PC.
            self._client = await asyncio.to_thread(self._new_client)
        return self._client

    def _new_client(self) -> httpx.AsyncClient:
        verify: ssl.SSLContext | bool = True
        if self._common.fingerprint:
            verify = self._common.pinned_context()
        return httpx.AsyncClient(
            base_url=self._common.base_url,
            headers=_HEADERS,
            verify=verify,
            limits=httpx.Limits(max_keepalive_connections=0),
            trust_env=False,
        )

    async def exchange(
        self, line: str, *, timeout: float, on_sent: OnSent | None = None
    ) -> bytes:
        """Send ``line``, return the raw reply; see ``Transport.exchange``."""
        client = await self._get_client()
        sent, reply = _Sent(on_sent), _Reply()
        try:
            # No deadline while connecting (connect_timeout bounds that): the trace sets
            # it when the request starts to leave and lifts it once the last byte is in;
            # in between, reaching it cancels whatever is being awaited.
            async with asyncio.timeout(None) as scope:

                async def trace(event: str, _info: dict[str, Any]) -> None:
                    if event == _LEAVING:
                        sent.fire()
                        scope.reschedule(asyncio.get_running_loop().time() + timeout)
                    elif event == _ALL_IN:
                        scope.reschedule(None)

                with _translated(self._common.base_url, sent, timeout):
                    request = self._common.request(client, line, timeout, trace)
                    await self._send(client, request, reply)
        except TimeoutError as exc:
            if not scope.expired():
                raise  # ecrlink's own ConnectTimeout or ReadTimeout
            if not reply.is_error_page:
                raise ReadTimeout(
                    f"{self._common.base_url}: no complete reply within {timeout:g} s"
                ) from exc
        return self._common.check_status(reply)

    @staticmethod
    async def _send(client: httpx.AsyncClient, request: httpx.Request, reply: _Reply) -> None:
        response = await client.send(request, stream=True)
        reply.status = response.status_code
        try:
            async for chunk in response.aiter_raw():
                if reply.add(chunk):
                    break
        except httpx.HTTPError:
            if not reply.is_error_page:
                raise
            # The status already said what answered; the page is only decoration.
        finally:
            await response.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client; a later exchange opens a new one."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None
