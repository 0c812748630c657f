"""One name per terminal, however its URL is spelled.

The terminal lock and the in-doubt guard key on :func:`terminal_key`: two spellings of
one address must never be two terminals (one register configured twice would charge
twice). The rule:

- ``http`` / ``https``: scheme and host lowercased (a trailing dot dropped), every
  loopback spelling (``localhost``, ``127.x.y.z``, ``::1``) written ``127.0.0.1``, the
  default port filled in (80, 443); path, query and a trailing slash ignored:
  ``http://LocalHost:8080/`` → ``http://127.0.0.1:8080``;
- serial: the device path with symbolic links resolved (``/dev/serial/by-id/…`` →
  ``/dev/ttyUSB0``), Windows ports upper-cased (``com3``, ``\\\\.\\COM3`` →
  ``COM3``), the baud rate ignored: ``serial:///dev/ttyUSB0``, ``serial:COM3``;
- ``socket://`` and ``rfc2217://``: host and port as for HTTP.

The key is itself a URL that reaches the terminal. Once a terminal has answered, the
journal also knows its TID and serial number, and two keys that answer with the same
ones share the in-doubt guard (see ``ecrlink.journal``).
"""

from __future__ import annotations

import ipaddress
import os
import re
from urllib.parse import urlsplit

from .._exceptions import ConfigError
from .serial import serial_port_from_url

__all__ = ["check_scheme", "is_serial_url", "terminal_key"]

_SERIAL_PREFIXES = ("serial:", "socket://", "rfc2217://", "loop://", "/dev/")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_LOOPBACK = "127.0.0.1"
_COM = re.compile(r"^(?:\\\\\.\\)?(com\d+)$", re.IGNORECASE)


def is_serial_url(url: str) -> bool:
    """True for URLs that name a serial line rather than an HTTP terminal."""
    return url.startswith(_SERIAL_PREFIXES) or url.upper().startswith("COM")


def check_scheme(url: str) -> None:
    """``ConfigError`` unless ``url`` names a terminal ecrlink can reach."""
    if not isinstance(url, str) or not url:
        raise ConfigError("terminal URL: must be a non-empty string")
    if url.lower().startswith(("http://", "https://")) or is_serial_url(url):
        return
    scheme = url.split(":", 1)[0] if ":" in url else url
    raise ConfigError(
        f"terminal URL: unknown scheme {scheme!r}; use http://, https://, serial:, "
        "socket:// or rfc2217://"
    )


def terminal_key(url: str) -> str:
    """The canonical name of the terminal ``url`` reaches (see the module docstring)."""
    check_scheme(url)
    lowered = url.strip()
    scheme = lowered.split(":", 1)[0].lower()
    if scheme in ("http", "https", "socket", "rfc2217"):
        return _network_key(lowered, scheme)
    if lowered.startswith("loop://"):
        return "loop://"
    device, _ = serial_port_from_url(lowered)
    com = _COM.match(device)
    if com:
        return f"serial:{com.group(1).upper()}"
    if device.startswith("/"):
        return f"serial://{os.path.realpath(device)}"
    return f"serial:{device}"


def _network_key(url: str, scheme: str) -> str:
    try:
        parts = urlsplit(url)
        port = parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError as exc:
        raise ConfigError(f"terminal URL: {exc}") from None
    host = (parts.hostname or "").rstrip(".").lower()
    if not host or port is None:
        raise ConfigError(f"terminal URL: {url!r} needs a host" + (
            "" if scheme in _DEFAULT_PORTS else " and a port"))
    host = _LOOPBACK if _is_loopback(host) else host
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}:{port}"


def _is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain") or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or bool(mapped and mapped.is_loopback)
