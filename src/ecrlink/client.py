"""``Terminal`` and ``AsyncTerminal``: drive one card terminal.

Both share ``_TerminalBase``, which holds every decision (request ids, validation,
timeouts, checking that a reply answers its request); only the sending is written
twice.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import threading
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Self

from ._exceptions import ConfigError
from .protocol import (
    LastTrans,
    Request,
    Result,
    Sale,
    Settle,
    Void,
    check_answers,
    check_field,
    mask_card_numbers,
    parse_reply,
)
from .transports import (
    AsyncTransport,
    Transport,
    open_async_transport,
    open_transport,
)

__all__ = ["AsyncTerminal", "Terminal"]

wire_log = logging.getLogger("ecrlink.wire")
log = logging.getLogger("ecrlink")

DEFAULT_CLIENT_ID = "ECRLINK"


def _positive_seconds(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{name}: must be a number of seconds")
    if not (value > 0 and math.isfinite(value)):
        raise ConfigError(f"{name}: must be a positive, finite number of seconds")
    return float(value)


class _RequestIds:
    """Unique request ids of at most 20 characters, across processes and restarts.

    Milliseconds since the epoch (11 hex digits) and 6 random hex digits; the
    random part is redrawn if a process asks twice in the same millisecond.
    """

    def __init__(self) -> None:
        self._last = ""
        self._lock = threading.Lock()

    def next(self) -> str:
        with self._lock:
            while True:
                candidate = f"{time.time_ns() // 1_000_000:011x}{secrets.randbits(24):06x}"
                if candidate != self._last:
                    self._last = candidate
                    return candidate


class _TerminalBase:
    """Everything a terminal client decides, without any I/O."""

    def __init__(
        self,
        url: str,
        *,
        client_id: str = DEFAULT_CLIENT_ID,
        timeout: float = 180.0,
        connect_timeout: float = 5.0,
        status_timeout: float = 30.0,
        transliterate: bool = False,
    ) -> None:
        self.url = url
        self.client_id = check_field("client_id", client_id, allow_empty=False)
        self.timeout = _positive_seconds("timeout", timeout)
        self.connect_timeout = _positive_seconds("connect_timeout", connect_timeout)
        self.status_timeout = _positive_seconds("status_timeout", status_timeout)
        self.transliterate = transliterate
        self._ids = _RequestIds()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url} client_id={self.client_id!r}>"

    def _request_id(self, given: str | None) -> str:
        return self._ids.next() if given is None else given

    def _sale(
        self,
        amount: int,
        invoice: str | None,
        reference: str | None,
        fields: Mapping[int, str] | Sequence[str] | None,
        request_id: str | None,
    ) -> Sale:
        return Sale.build(
            amount,
            request_id=self._request_id(request_id),
            client_id=self.client_id,
            invoice=invoice,
            reference=reference,
            fields=fields,
            transliterate=self.transliterate,
        )

    def _void(self, receipt_no: int | str, request_id: str | None) -> Void:
        return Void(
            request_id=self._request_id(request_id),
            client_id=self.client_id,
            receipt_no=receipt_no,  # type: ignore[arg-type]  # normalised by Void itself
        )

    def _settle(self, confirm: bool, request_id: str | None) -> Settle:
        return Settle(
            request_id=self._request_id(request_id), client_id=self.client_id, confirm=confirm
        )

    def _last(self, request_id: str | None) -> LastTrans:
        return LastTrans(request_id=self._request_id(request_id), client_id=self.client_id)

    def _timeout_for(self, request: Request) -> float:
        # last trans is answered from the terminal's memory; no customer in the loop.
        return self.status_timeout if isinstance(request, LastTrans) else self.timeout

    def _interpret(self, request: Request, raw: bytes) -> Result:
        if wire_log.isEnabledFor(logging.DEBUG):
            wire_log.debug("<<< %s", mask_card_numbers(raw)[0].decode("utf-8", "replace"))
        result = check_answers(parse_reply(raw), request)
        if result.transaction is not None and result.transaction.card_no_was_unmasked:
            log.warning(
                "terminal %s sent an unmasked card number; it was masked (%s)",
                self.url, result.transaction.card_no,
            )
        return result

    def _log_request(self, request: Request) -> None:
        if wire_log.isEnabledFor(logging.DEBUG):
            wire_log.debug(">>> %s [pid %d]", request.line(), os.getpid())


class Terminal(_TerminalBase):
    """A blocking client for one terminal.

    ``url`` is ``http://host[:port]``, ``https://…``, ``serial:///dev/ttyUSB0``,
    ``serial:COM3``, ``socket://host:port`` or ``rfc2217://host:port``. ``timeout``
    is how long a sale or void may wait for the customer; ``connect_timeout`` bounds
    reaching the terminal; ``status_timeout`` bounds ``last trans``.

    >>> with Terminal("http://192.168.1.50") as pos:          # doctest: +SKIP
    ...     result = pos.sale(150_000, invoice="HD0001")
    ...     print(result.outcome, result.transaction.approval_code)
    """

    def __init__(
        self,
        url: str,
        *,
        client_id: str = DEFAULT_CLIENT_ID,
        timeout: float = 180.0,
        connect_timeout: float = 5.0,
        status_timeout: float = 30.0,
        transliterate: bool = False,
        tls_fingerprint: str | None = None,
        transport: Transport | None = None,
    ) -> None:
        super().__init__(
            url,
            client_id=client_id,
            timeout=timeout,
            connect_timeout=connect_timeout,
            status_timeout=status_timeout,
            transliterate=transliterate,
        )
        self._transport = transport or open_transport(
            url, connect_timeout=self.connect_timeout, tls_fingerprint=tls_fingerprint
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the link to the terminal."""
        self._transport.close()

    def send(self, request: Request) -> Result:
        """Send one prepared request and return its checked result."""
        self._log_request(request)
        raw = self._transport.exchange(request.line(), timeout=self._timeout_for(request))
        return self._interpret(request, raw)

    def sale(
        self,
        amount: int,
        *,
        invoice: str | None = None,
        reference: str | None = None,
        fields: Mapping[int, str] | Sequence[str] | None = None,
        request_id: str | None = None,
    ) -> Result:
        """Charge ``amount`` VND; ``invoice`` travels as F3, ``reference`` as F5."""
        return self.send(self._sale(amount, invoice, reference, fields, request_id))

    def void(self, receipt_no: int | str, *, request_id: str | None = None) -> Result:
        """Cancel the sale with this receipt number in the current batch."""
        return self.send(self._void(receipt_no, request_id))

    def settle(self, *, confirm: bool = True, request_id: str | None = None) -> Result:
        """Close the current batch (``settle|YES``; ``confirm=False`` sends ``NO``)."""
        return self.send(self._settle(confirm, request_id))

    def last_transaction(self, *, request_id: str | None = None) -> Result:
        """The terminal's most recent successful transaction (``last trans``)."""
        return self.send(self._last(request_id))


class AsyncTerminal(_TerminalBase):
    """The asyncio twin of :class:`Terminal`, with the same methods as coroutines."""

    def __init__(
        self,
        url: str,
        *,
        client_id: str = DEFAULT_CLIENT_ID,
        timeout: float = 180.0,
        connect_timeout: float = 5.0,
        status_timeout: float = 30.0,
        transliterate: bool = False,
        tls_fingerprint: str | None = None,
        transport: AsyncTransport | None = None,
    ) -> None:
        super().__init__(
            url,
            client_id=client_id,
            timeout=timeout,
            connect_timeout=connect_timeout,
            status_timeout=status_timeout,
            transliterate=transliterate,
        )
        self._transport = transport or open_async_transport(
            url, connect_timeout=self.connect_timeout, tls_fingerprint=tls_fingerprint
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the link to the terminal."""
        await self._transport.aclose()

    async def send(self, request: Request) -> Result:
        """Send one prepared request and return its checked result."""
        self._log_request(request)
        raw = await self._transport.exchange(request.line(), timeout=self._timeout_for(request))
        return self._interpret(request, raw)

    async def sale(
        self,
        amount: int,
        *,
        invoice: str | None = None,
        reference: str | None = None,
        fields: Mapping[int, str] | Sequence[str] | None = None,
        request_id: str | None = None,
    ) -> Result:
        """Charge ``amount`` VND; ``invoice`` travels as F3, ``reference`` as F5."""
        return await self.send(self._sale(amount, invoice, reference, fields, request_id))

    async def void(self, receipt_no: int | str, *, request_id: str | None = None) -> Result:
        """Cancel the sale with this receipt number in the current batch."""
        return await self.send(self._void(receipt_no, request_id))

    async def settle(self, *, confirm: bool = True, request_id: str | None = None) -> Result:
        """Close the current batch."""
        return await self.send(self._settle(confirm, request_id))

    async def last_transaction(self, *, request_id: str | None = None) -> Result:
        """The terminal's most recent successful transaction (``last trans``)."""
        return await self.send(self._last(request_id))
