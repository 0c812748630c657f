"""The transport interface: one exchange of a request line for a reply, and close.

A transport knows its wire and nothing of the protocol beyond "a reply is one JSON
object". It raises only ecrlink's own errors: ``ConnectError``/``ConnectTimeout``
mean nothing reached the terminal; every other ``TransportError`` means the request
may have been received and the outcome is unknown.
"""

from __future__ import annotations

import abc

__all__ = ["AsyncTransport", "Transport"]


class Transport(abc.ABC):
    """A blocking link to one terminal."""

    @abc.abstractmethod
    def exchange(self, line: str, *, timeout: float) -> bytes:
        """Send ``line`` (the request line) and return the complete raw reply.

        ``timeout`` bounds the wait for the reply after the request was sent.
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Release the link; the transport may not be used afterwards."""


class AsyncTransport(abc.ABC):
    """The asyncio twin of ``Transport``."""

    @abc.abstractmethod
    async def exchange(self, line: str, *, timeout: float) -> bytes:
        """Send ``line`` and return the complete raw reply."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Release the link."""
