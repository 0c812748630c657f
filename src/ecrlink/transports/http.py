"""Web ECR over HTTP: h11 over our own sockets.

The request target goes on the wire exactly as the protocol core wrote it, ``|`` and
``:`` raw, with only spaces as ``%20`` (the spec's samples never encode anything
else). One request per connection (``Connection: close``), as the terminals' small
web servers expect; replies with ``Content-Length``, chunked, or without either
(HTTP/1.0, read to close) are all fine. ``https://`` terminals with self-signed
certificates are pinned by SHA-256 fingerprint: the certificate is fetched and
checked first, then the real connection trusts exactly that certificate, so no
request byte reaches an impostor; without a fingerprint the certificate is verified
as usual (the system's CAs and certifi's).

What to send, how a reply ends, its size limit, what a status means and what each
failure is called are decided once, without I/O, in ``http11.HttpExchange``; the
blocking ``HttpTransport`` (``socket`` and ``ssl``) and ``AsyncHttpTransport``
(asyncio streams) only move the bytes. Both call ``on_sent`` on an established (for
https, verified or pinned) connection right before the first request byte is
written, and from that moment ``timeout`` bounds the whole exchange, not the gap
between two bytes, so a terminal or proxy trickling a byte a second cannot hold a
sale for hours. Connecting is bounded by ``connect_timeout``.

Imports are kept to what a blocking ``http://`` sale needs before its first byte
leaves (a cashier waits on them): ``ssl`` and ``certifi`` only for https,
``asyncio`` only in the async transport's methods, h11 only once the request is out.
"""

from __future__ import annotations

import socket
import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from .._exceptions import ConfigError, ConnectError, ConnectTimeout
from .base import AsyncTransport, OnSent, Transport
from .http11 import HttpExchange, connecting

if TYPE_CHECKING:
    import asyncio
    import ssl

__all__ = ["AsyncHttpTransport", "HttpTransport", "certificate_fingerprint"]

_READ_SIZE = 64 * 1024


def certificate_fingerprint(der: bytes) -> str:
    """SHA-256 of a DER certificate, as lowercase hex (the form ``tls_fingerprint`` takes)."""
    import hashlib  # https only: it loads OpenSSL

    return hashlib.sha256(der).hexdigest()


def _normalise_fingerprint(text: str) -> str:
    cleaned = text.lower().removeprefix("sha256:").replace(":", "").replace(" ", "")
    if len(cleaned) != 64 or any(c not in "0123456789abcdef" for c in cleaned):
        raise ConfigError("tls_fingerprint: must be a SHA-256 digest, 64 hex digits")
    return cleaned


class _Site:
    """Where a terminal is and how to trust it: what both transports share."""

    def __init__(
        self, url: str, *, connect_timeout: float, tls_fingerprint: str | None
    ) -> None:
        try:
            parts = urlsplit(url)
            explicit_port = parts.port
        except ValueError as exc:  # a port that is not a number, or past 65535
            raise ConfigError(f"terminal URL: {exc} in {url!r}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"terminal URL: expected http://host[:port], got {url!r}")
        if parts.path not in ("", "/") or parts.query:
            raise ConfigError(f"terminal URL: give only scheme, host and port, got {url!r}")
        if tls_fingerprint is not None and parts.scheme != "https":
            raise ConfigError("tls_fingerprint: only meaningful with an https:// URL")
        self.https = parts.scheme == "https"
        self.base_url = f"{parts.scheme}://{parts.netloc}"
        self.host = parts.hostname
        default_port = 443 if self.https else 80
        self.port = explicit_port or default_port
        self.host_header = _host_header(self.host, self.port, default_port, url)
        self.connect_timeout = connect_timeout
        self.fingerprint = _normalise_fingerprint(tls_fingerprint) if tls_fingerprint else None
        self._tls: ssl.SSLContext | None = None

    def exchange(self, line: str) -> HttpExchange:
        """A new exchange of ``line`` with this terminal."""
        return HttpExchange(self.base_url, self.host_header, line)

    def tls_context(self) -> ssl.SSLContext | None:
        """None for http; for https the context every connection uses, made once
        (the pinned certificate is fetched then). Blocks: loading CAs takes tens of ms."""
        if self.https and self._tls is None:
            self._tls = self._pinned_context() if self.fingerprint else _verifying_context()
        return self._tls

    def forget_tls(self) -> None:
        """A later connection fetches the pinned certificate again."""
        self._tls = None

    def _pinned_context(self) -> ssl.SSLContext:
        """Fetch the terminal's certificate, check its fingerprint, trust only it."""
        import ssl

        assert self.fingerprint is not None
        try:
            pem = ssl.get_server_certificate((self.host, self.port), timeout=self.connect_timeout)
        except (OSError, ssl.SSLError) as exc:
            if isinstance(exc, TimeoutError):
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


def _host_header(host: str, port: int, default_port: int, url: str) -> bytes:
    try:
        name = host.encode("ascii") if host.isascii() else host.encode("idna")
    except UnicodeError:
        name = b""
    if not name or any(not 0x21 <= byte <= 0x7E for byte in name):
        # Refused here: h11 would refuse such a Host header, but only once sent.
        raise ConfigError(f"terminal URL: host name not usable in {url!r}")
    if b":" in name:  # an IPv6 literal
        name = b"[" + name + b"]"
    return name if port == default_port else name + b":%d" % port


def _verifying_context() -> ssl.SSLContext:
    """Normal verification: the system's CAs, and certifi's where it is installed
    (as httpx did: a register PC's own store may be old)."""
    import ssl

    context = ssl.create_default_context()
    try:
        import certifi
    except ImportError:
        return context
    context.load_verify_locations(certifi.where())
    return context


# --- blocking ---------------------------------------------------------------------------


def _open_socket(site: _Site) -> socket.socket:
    """A connected socket to the terminal, TLS established (and verified) for https."""
    with connecting(site.base_url):
        context = site.tls_context()
        started = time.monotonic()
        sock = socket.create_connection((site.host, site.port), timeout=site.connect_timeout)
        try:
            # The request goes in one write; no waiting for an ACK to send it.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if context is not None:
                # connect_timeout bounds connecting and the handshake together.
                sock.settimeout(_left(started + site.connect_timeout))
                sock = context.wrap_socket(sock, server_hostname=site.host)
        except BaseException:
            sock.close()
            raise
    return sock


def _left(deadline: float) -> float:
    """Seconds until ``deadline``; ``TimeoutError`` if it has passed."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("deadline passed")
    return remaining


class HttpTransport(Transport):
    """Blocking HTTP transport: a fresh connection per request."""

    def __init__(
        self,
        url: str,
        *,
        connect_timeout: float = 5.0,
        tls_fingerprint: str | None = None,
    ) -> None:
        self._site = _Site(url, connect_timeout=connect_timeout, tls_fingerprint=tls_fingerprint)

    def exchange(self, line: str, *, timeout: float, on_sent: OnSent | None = None) -> bytes:
        """Send ``line``, return the raw reply; see ``Transport.exchange``."""
        exchange = self._site.exchange(line)
        with _open_socket(self._site) as sock:
            if on_sent is not None:
                on_sent()
            deadline = time.monotonic() + timeout
            # Every wait, for the write as for each read, ends at the one deadline.
            with exchange.io(timeout):
                sock.settimeout(_left(deadline))
                sock.sendall(exchange.request)
                exchange.written()
                while True:
                    sock.settimeout(_left(deadline))
                    if exchange.receive(sock.recv(_READ_SIZE)):
                        break
        return exchange.reply()

    def close(self) -> None:
        """Nothing stays open between exchanges; a pinned certificate is fetched again."""
        self._site.forget_tls()


# --- asyncio ----------------------------------------------------------------------------


class AsyncHttpTransport(AsyncTransport):
    """The asyncio HTTP transport: a fresh connection per request.

    asyncio is imported in the methods, not above: the blocking client imports this
    module and must not pay for asyncio."""

    def __init__(
        self,
        url: str,
        *,
        connect_timeout: float = 5.0,
        tls_fingerprint: str | None = None,
    ) -> None:
        self._site = _Site(url, connect_timeout=connect_timeout, tls_fingerprint=tls_fingerprint)

    async def exchange(
        self, line: str, *, timeout: float, on_sent: OnSent | None = None
    ) -> bytes:
        """Send ``line``, return the raw reply; see ``Transport.exchange``."""
        import asyncio

        exchange = self._site.exchange(line)
        reader, writer = await self._open()
        try:
            if on_sent is not None:
                on_sent()
            with exchange.io(timeout):
                async with asyncio.timeout(timeout):
                    writer.write(exchange.request)
                    await writer.drain()
                    exchange.written()
                    while not exchange.receive(await reader.read(_READ_SIZE)):
                        pass
        finally:
            # One request per connection, and the reply is in (or given up on): no
            # graceful TLS shutdown to wait for.
            writer.transport.abort()
        return exchange.reply()

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        import asyncio

        site = self._site
        with connecting(site.base_url):
            # In a worker thread: loading CAs or fetching the pinned certificate blocks.
            context = await asyncio.to_thread(site.tls_context) if site.https else None
            async with asyncio.timeout(site.connect_timeout):
                # asyncio sets TCP_NODELAY on every TCP connection it opens.
                return await asyncio.open_connection(
                    site.host, site.port, ssl=context,
                    server_hostname=site.host if context is not None else None,
                )

    async def aclose(self) -> None:
        """Nothing stays open between exchanges; a pinned certificate is fetched again."""
        self._site.forget_tls()
