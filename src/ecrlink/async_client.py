"""``AsyncTerminal``: the asyncio driver of the same flows ``Terminal`` drives blocking.

In a module of its own so that importing ``ecrlink`` or ``ecrlink.client`` for the
blocking client never imports asyncio (the command line starts faster).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar

from .client import DEFAULT_CLIENT_ID, JournalOption, OnRecovered, _TerminalBase
from .payment.flow import Exchange, Flow, Pause, Recovered, Store
from .protocol import Request, Result
from .transports import AsyncTransport, open_async_transport

__all__ = ["AsyncTerminal"]

T = TypeVar("T")


class AsyncTerminal(_TerminalBase):
    """The asyncio twin of :class:`Terminal`, with the same methods as coroutines.

    The lock is waited for in a worker thread so the event loop never blocks on it.
    """

    def __init__(
        self,
        url: str,
        *,
        client_id: str = DEFAULT_CLIENT_ID,
        timeout: float = 180.0,
        connect_timeout: float = 5.0,
        status_timeout: float = 30.0,
        recovery_timeout: float = 60.0,
        lock_timeout: float = 30.0,
        transliterate: bool = False,
        journal: JournalOption = True,
        duplicate_window: float | None = None,
        tls_fingerprint: str | None = None,
        transport: AsyncTransport | None = None,
        on_recovered: OnRecovered | None = None,
    ) -> None:
        super().__init__(
            url, client_id=client_id, timeout=timeout, connect_timeout=connect_timeout,
            status_timeout=status_timeout, recovery_timeout=recovery_timeout,
            lock_timeout=lock_timeout, transliterate=transliterate, journal=journal,
            duplicate_window=duplicate_window, on_recovered=on_recovered,
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
        """Close the link to the terminal; a journal it opened gives back its server
        connections (``Journal.release``) and stays readable."""
        await self._transport.aclose()
        if self._owns_journal and self.journal is not None:
            await asyncio.to_thread(self.journal.release)  # a server's goodbye may wait

    async def _drive(self, flow: Flow[T]) -> T:
        """Run a flow: carry out the effects it yields, awaiting.

        A cancellation that arrives while a journal call runs is held until the call
        has finished and its result is in the flow, then thrown in at the flow's next
        step (or raised, if that call was the last): the flow always knows what it
        wrote (a pending row it does not know of would be left in doubt for nothing).
        """
        cancelled: BaseException | None = None
        try:
            step = next(flow)
            while True:
                if cancelled is not None:
                    exc, cancelled = cancelled, None
                    step = flow.throw(exc)
                    continue
                try:
                    value: Any = None
                    if isinstance(step, Exchange):
                        value = await self._transport.exchange(
                            step.line, timeout=step.timeout, on_sent=step.progress.mark_sent
                        )
                    elif isinstance(step, Store):
                        value, cancelled = await _in_thread(step.call, self.journal)
                    elif isinstance(step, Pause):
                        await asyncio.sleep(step.seconds)
                    elif isinstance(step, Recovered) and self.on_recovered is not None:
                        self.on_recovered(step.results)
                except BaseException as exc:
                    step = flow.throw(exc)
                else:
                    step = flow.send(value)
        except StopIteration as done:
            if cancelled is not None:
                raise cancelled from None  # the flow ended on that journal call
            result: T = done.value
            return result

    async def _locked(self, flow: Flow[T]) -> T:
        """Run ``flow`` holding the terminal's lock; cancel-safe.

        The lock is waited for in a worker thread. If the call is cancelled while
        waiting, the worker is told to stop; had it just got the lock, it is freed.
        """
        lock = self._lock()
        stop = threading.Event()
        waiting = asyncio.ensure_future(asyncio.to_thread(lock.acquire, stop))
        try:
            await asyncio.shield(waiting)
        except asyncio.CancelledError:
            stop.set()
            await _until_done(waiting)
            if not waiting.exception() and waiting.result():
                lock.release()
            raise
        try:
            return await self._drive(flow)
        finally:
            lock.release()

    async def send(
        self, request: Request, *, force: bool = False, allow_duplicate: bool = False
    ) -> Result:
        """Send one prepared request under the terminal's lock, journaled."""
        return await self._locked(self._flows().send(request, force, allow_duplicate))

    async def recover(self) -> list[Result]:
        """Resolve this terminal's pending and in-doubt payments with ``last trans``."""
        if self.journal is None:
            return []
        return await self._locked(self._flows().recover())

    async def sale(
        self,
        amount: int,
        *,
        invoice: str | None = None,
        reference: str | None = None,
        fields: Mapping[int, str] | Sequence[str] | None = None,
        request_id: str | None = None,
        force: bool = False,
        allow_duplicate: bool = False,
    ) -> Result:
        """Charge ``amount`` VND; ``invoice`` travels as F3, ``reference`` as F5."""
        return await self.send(
            self._sale(amount, invoice, reference, fields, request_id), force=force,
            allow_duplicate=allow_duplicate,
        )

    async def void(self, receipt_no: int | str, *, request_id: str | None = None) -> Result:
        """Cancel the sale with this receipt number in the current batch."""
        return await self.send(self._void(receipt_no, request_id))

    async def settle(self, *, confirm: bool = True, request_id: str | None = None) -> Result:
        """Close the current batch."""
        return await self.send(self._settle(confirm, request_id))

    async def last_transaction(self, *, request_id: str | None = None) -> Result:
        """The terminal's most recent successful transaction (``last trans``)."""
        return await self.send(self._last(request_id))




async def _in_thread(
    call: Callable[..., T], *args: Any
) -> tuple[T, asyncio.CancelledError | None]:
    """``call(*args)`` in a worker thread, carried through to its end even if cancelled.

    A journal write cannot be abandoned half-way: on cancellation the call is still
    awaited to its end; its result comes back with the cancellation, for the caller
    to deliver once the result is safe.
    """
    future = asyncio.ensure_future(asyncio.to_thread(call, *args))
    try:
        return await asyncio.shield(future), None
    except asyncio.CancelledError as cancel:
        await _until_done(future)
        if future.exception() is not None:
            raise
        return future.result(), cancel


async def _until_done(future: asyncio.Future[Any]) -> None:
    """Wait for ``future`` to finish, through any number of cancellations."""
    while not future.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(future)
