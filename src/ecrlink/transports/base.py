"""The transport interface: one exchange of a request line for a reply, and close.

A transport knows its wire and nothing of the protocol beyond "a reply is one JSON
object". It raises only ecrlink's own errors, and says through ``on_sent`` whether
anything can have reached the terminal:

- before ``on_sent`` is called (opening the port, DNS, TCP, TLS and the certificate
  pin), every failure is ``ConnectError`` or ``ConnectTimeout``: nothing was sent;
- after it, a failure is ``ReadError``, ``ReadTimeout``, ``WriteError`` or a
  ``RemoteProtocolError``: the request may have been received and the outcome is
  unknown, except ``NotTerminalReply`` and ``TerminalBusy``, answers that something
  refused the request.

``timeout`` bounds the whole exchange once the link is up, from the first byte of
the request to the last byte of the reply, however slowly the reply trickles;
connecting is bounded on its own by the transport's ``connect_timeout``.
"""

from __future__ import annotations

import abc
from collections.abc import Callable

__all__ = ["AsyncTransport", "OnSent", "Transport"]

OnSent = Callable[[], None]
"""Called once, just before the first byte of the request is written onto an
established link. If it raises, nothing is written and the exception propagates."""


class Transport(abc.ABC):
    """A blocking link to one terminal."""

    @abc.abstractmethod
    def exchange(self, line: str, *, timeout: float, on_sent: OnSent | None = None) -> bytes:
        """Send ``line`` (the request line) and return the complete raw reply.

        ``timeout`` bounds the exchange from the first byte of the request to the last
        byte of the reply (``ReadTimeout``). ``on_sent`` is called exactly once, right
        before the first byte is written; if the exchange fails and it was not called,
        nothing reached the terminal.
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Release the link; the transport may not be used afterwards."""


class AsyncTransport(abc.ABC):
    """The asyncio twin of ``Transport``."""

    @abc.abstractmethod
    async def exchange(
        self, line: str, *, timeout: float, on_sent: OnSent | None = None
    ) -> bytes:
        """Send ``line`` and return the complete raw reply; as ``Transport.exchange``.

        ``on_sent`` is a plain function, called on the event loop's thread.
        """

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Release the link."""
