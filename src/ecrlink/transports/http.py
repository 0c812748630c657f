"""Web ECR over HTTP, with httpx.

The request target goes on the wire exactly as the protocol core wrote it, ``|`` and
``:`` raw, with only spaces as ``%20`` (the spec's samples never encode anything
else). One request per connection (``Connection: close``), as the terminals' small
web servers expect; replies without ``Content-Length`` (HTTP/1.0, read to close) are
fine. ``https://`` terminals with self-signed certificates are pinned by SHA-256
fingerprint: the certificate is fetched and checked first, then the real connection
trusts exactly that certificate, so no request byte reaches an impostor.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import httpx

from .._exceptions import (
    ConfigError,
    ConnectError,
    ConnectTimeout,
    ReadError,
    ReadTimeout,
    RemoteProtocolError,
    ReplyTooLarge,
    TerminalBusy,
    TransportError,
    WriteError,
)
from ..protocol import MAX_REPLY_BYTES
from .base import AsyncTransport, Transport

__all__ = ["AsyncHttpTransport", "HttpTransport", "certificate_fingerprint"]

_HEADERS = {
    "Accept": "application/json",
    "Accept-Encoding": "identity",
    "Connection": "close",
    "User-Agent": "ecrlink",
}


def certificate_fingerprint(der: bytes) -> str:
    """SHA-256 of a DER certificate, as lowercase hex (the form ``tls_fingerprint`` takes)."""
    return hashlib.sha256(der).hexdigest()


def _normalise_fingerprint(text: str) -> str:
    cleaned = text.lower().removeprefix("sha256:").replace(":", "").replace(" ", "")
    if len(cleaned) != 64 or any(c not in "0123456789abcdef" for c in cleaned):
        raise ConfigError("tls_fingerprint: must be a SHA-256 digest, 64 hex digits")
    return cleaned


@contextmanager
def _translated(url: str) -> Iterator[None]:
    """Turn httpx's errors into ecrlink's, at this one boundary."""
    try:
        yield
    except httpx.ConnectTimeout as exc:
        raise ConnectTimeout(f"{url}: terminal did not accept the connection in time") from exc
    except httpx.ConnectError as exc:
        raise ConnectError(f"{url}: cannot connect to the terminal ({exc})") from exc
    except (httpx.ReadTimeout, httpx.WriteTimeout, httpx.PoolTimeout) as exc:
        raise ReadTimeout(f"{url}: no complete reply in time") from exc
    except httpx.WriteError as exc:
        raise WriteError(f"{url}: sending the request failed ({exc})") from exc
    except (httpx.ReadError, httpx.RemoteProtocolError) as exc:
        raise ReadError(f"{url}: connection closed without a complete reply ({exc})") from exc
    except httpx.HTTPError as exc:
        raise TransportError(f"{url}: {exc}") from exc


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

    def timeout(self, read: float) -> httpx.Timeout:
        return httpx.Timeout(connect=self.connect_timeout, read=read, write=read, pool=read)

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

    def check_status(self, status: int, body: bytes) -> bytes:
        if status == 503:
            raise TerminalBusy(f"{self.base_url}: terminal is busy with another transaction")
        if not 200 <= status < 300:
            raise RemoteProtocolError(
                f"{self.base_url}: HTTP {status}: {body[:200].decode('utf-8', 'replace')}", body
            )
        return body


def _too_large(size: int, head: bytes) -> ReplyTooLarge:
    return ReplyTooLarge(f"reply exceeds {MAX_REPLY_BYTES} bytes ({size} so far)", head)


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
            verify: ssl.SSLContext | bool = True
            if self._common.fingerprint:
                verify = self._common.pinned_context()
            self._client = httpx.Client(
                base_url=self._common.base_url,
                headers=_HEADERS,
                verify=verify,
                limits=httpx.Limits(max_keepalive_connections=0),
                trust_env=False,
            )
        return self._client

    def exchange(self, line: str, *, timeout: float) -> bytes:
        common = self._common
        client = self._get_client()
        with _translated(common.base_url):
            target = common.target(line)
            request = client.build_request(
                "GET", target.decode("ascii"),
                timeout=common.timeout(timeout),
                # httpx would re-encode the URL; the terminal gets our bytes as they are.
                extensions={"target": target},
            )
            response = client.send(request, stream=True)
            try:
                body = bytearray()
                for chunk in response.iter_raw():
                    body += chunk
                    if len(body) > MAX_REPLY_BYTES:
                        raise _too_large(len(body), bytes(body[:256]))
            finally:
                response.close()
        return common.check_status(response.status_code, bytes(body))

    def close(self) -> None:
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
            verify: ssl.SSLContext | bool = True
            if self._common.fingerprint:
                verify = await asyncio.to_thread(self._common.pinned_context)
            self._client = httpx.AsyncClient(
                base_url=self._common.base_url,
                headers=_HEADERS,
                verify=verify,
                limits=httpx.Limits(max_keepalive_connections=0),
                trust_env=False,
            )
        return self._client

    async def exchange(self, line: str, *, timeout: float) -> bytes:
        common = self._common
        client = await self._get_client()
        with _translated(common.base_url):
            target = common.target(line)
            request = client.build_request(
                "GET", target.decode("ascii"),
                timeout=common.timeout(timeout),
                # httpx would re-encode the URL; the terminal gets our bytes as they are.
                extensions={"target": target},
            )
            response = await client.send(request, stream=True)
            try:
                body = bytearray()
                async for chunk in response.aiter_raw():
                    body += chunk
                    if len(body) > MAX_REPLY_BYTES:
                        raise _too_large(len(body), bytes(body[:256]))
            finally:
                await response.aclose()
        return common.check_status(response.status_code, bytes(body))

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
