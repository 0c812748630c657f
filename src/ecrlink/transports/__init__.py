"""Transports: the bytes of a request line out, the bytes of one reply back.

``open_transport(url)`` picks one by URL: ``http://`` and ``https://`` go over h11 on
our own sockets, ``serial:``, device paths, ``socket://`` and ``rfc2217://`` over
pyserial. The transports' modules load neither asyncio nor ssl nor pyserial (nor
httpx): the async transports import asyncio in their methods, https imports ssl and
a serial port pyserial, each when first used; a test keeps it so.
"""

from __future__ import annotations

from .._exceptions import ConfigError
from .base import AsyncTransport, OnSent, Transport
from .http import AsyncHttpTransport, HttpTransport, certificate_fingerprint
from .identity import check_scheme, is_serial_url, terminal_key
from .serial import AsyncSerialTransport, SerialTransport, serial_port_from_url

__all__ = [
    "AsyncHttpTransport",
    "AsyncSerialTransport",
    "AsyncTransport",
    "HttpTransport",
    "OnSent",
    "SerialTransport",
    "Transport",
    "certificate_fingerprint",
    "is_serial_url",
    "open_async_transport",
    "open_transport",
    "serial_port_from_url",
    "terminal_key",
]

def open_transport(
    url: str, *, connect_timeout: float = 5.0, tls_fingerprint: str | None = None
) -> Transport:
    """A blocking transport for ``url``."""
    check_scheme(url)
    if is_serial_url(url):
        if tls_fingerprint is not None:
            raise ConfigError("tls_fingerprint: only meaningful with an https:// URL")
        return SerialTransport(url, connect_timeout=connect_timeout)
    return HttpTransport(url, connect_timeout=connect_timeout, tls_fingerprint=tls_fingerprint)


def open_async_transport(
    url: str, *, connect_timeout: float = 5.0, tls_fingerprint: str | None = None
) -> AsyncTransport:
    """An asyncio transport for ``url``."""
    check_scheme(url)
    if is_serial_url(url):
        if tls_fingerprint is not None:
            raise ConfigError("tls_fingerprint: only meaningful with an https:// URL")
        return AsyncSerialTransport(url, connect_timeout=connect_timeout)
    return AsyncHttpTransport(
        url, connect_timeout=connect_timeout, tls_fingerprint=tls_fingerprint
    )
