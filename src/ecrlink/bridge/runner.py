"""One worker per configured terminal: carries out API commands with ``AsyncTerminal``.

Nothing here decides anything about a payment: the client's flow (journal, lock,
guards, recovery) does, exactly as for ``ecrlink sale``. The worker only

- runs one command at a time for this bridge (a second one is refused at once as
  ``terminal_busy``; another *program* holding the terminal's lock is waited for
  ``lock_timeout``, then refused the same way);
- tells the caller when the command has been written down in the journal (its
  admission: from then on it may reach the terminal) or why it was refused before
  (``InDoubtPending``, ``DuplicateInvoice``, ``TerminalBusy``): see :class:`Admission`;
- remembers what it saw of the terminal (reachable, last seen) for ``/v1/terminals``.

The journal hook: :class:`Admissions` observes the journal's ``begin`` (``Journal.
on_begin``: told after the command is committed), which is how the bridge learns the
entry of its command without a second implementation of the flow.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .._exceptions import ConnectError, ConnectTimeout
from ..journal import Journal
from ..protocol import Request, Result

if TYPE_CHECKING:
    from ..async_client import AsyncTerminal

__all__ = ["Admission", "Admissions", "TerminalWorker"]

log = logging.getLogger("ecrlink.bridge")


class Admissions:
    """Who waits to learn which journal entry a request became: the journal's
    ``on_begin`` observer, told in whatever thread wrote the entry (SQLite or
    PostgreSQL journal alike)."""

    def __init__(self, journal: Journal) -> None:
        self._hooks: dict[str, Callable[[int], None]] = {}
        self._hooks_lock = threading.Lock()
        journal.on_begin(self._begun)

    def watch(self, request_id: str, callback: Callable[[int], None]) -> None:
        """Call ``callback(entry_id)`` when the command ``request_id`` is written down."""
        with self._hooks_lock:
            self._hooks[request_id] = callback

    def unwatch(self, request_id: str) -> None:
        """Stop watching ``request_id``."""
        with self._hooks_lock:
            self._hooks.pop(request_id, None)

    def _begun(self, request_id: str, entry_id: int) -> None:
        with self._hooks_lock:
            callback = self._hooks.pop(request_id, None)
        if callback is not None:
            callback(entry_id)


@dataclass(slots=True)
class Admission:
    """How a command started: written down (``entry_id``) or refused (``error``)."""

    entry_id: int | None = None
    error: BaseException | None = None


Finisher = Callable[[Request, "Result | None", "BaseException | None"], Awaitable[None]]


class TerminalWorker:
    """Runs the bridge's commands on one terminal, one at a time."""

    def __init__(self, name: str, terminal: AsyncTerminal, admissions: Admissions) -> None:
        self.name = name
        self.terminal = terminal
        self.admissions = admissions
        self.current: str | None = None
        """The payment id being processed, if any."""
        self.recovering = False
        self.unreachable = False
        self.last_seen: datetime | None = None
        self._owner: str | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def busy(self) -> bool:
        """Whether a command (or the start-up recovery) runs on this terminal now."""
        return self._owner is not None

    def claim(self, owner: str) -> None:
        """Take the terminal for ``owner`` (no await between a check and this: the
        event loop runs one thing at a time)."""
        if self._owner is not None:
            raise RuntimeError(f"terminal {self.name} is taken by {self._owner}")
        self._owner = owner

    def release(self) -> None:
        """Give the terminal back."""
        self._owner = None

    async def start(
        self, payment_id: str | None, request: Request, finish: Finisher,
        *, allow_duplicate: bool = False,
    ) -> Admission:
        """Start ``request`` on the terminal ``claim``-ed for it; return once it is
        written down in the journal, refused, or over. ``finish(request, result,
        error)`` runs when the command ends; the command runs on even if the HTTP
        request that started it goes away. The claim is released when it ends."""
        loop = asyncio.get_running_loop()
        admitted: asyncio.Future[Admission] = loop.create_future()

        def admit(entry_id: int) -> None:
            if not admitted.done():
                admitted.set_result(Admission(entry_id=entry_id))

        def written(entry_id: int) -> None:
            loop.call_soon_threadsafe(admit, entry_id)

        self.admissions.watch(request.request_id, written)
        self.current = payment_id
        task = asyncio.create_task(
            self._run(payment_id, request, finish, admitted, allow_duplicate),
            name=f"ecrlink-bridge-{self.name}-{request.request_id}",
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return await asyncio.shield(admitted)

    async def _run(
        self, payment_id: str | None, request: Request, finish: Finisher,
        admitted: asyncio.Future[Admission], allow_duplicate: bool,
    ) -> None:
        result: Result | None = None
        error: BaseException | None = None
        try:
            result = await self.terminal.send(request, allow_duplicate=allow_duplicate)
            self._saw(result)
        except BaseException as exc:
            error = exc
            self.unreachable = isinstance(exc, ConnectError | ConnectTimeout)
            if not isinstance(exc, Exception):
                raise  # cancelled at shutdown: the journal keeps it for recovery
        finally:
            self.admissions.unwatch(request.request_id)
            if not admitted.done():
                admitted.set_result(Admission(error=error) if error is not None
                                    else Admission())
            # The terminal is free for the next command now; the payment stays this
            # worker's (``current``) until ``finish`` has stored its result, so the
            # journal sync never finalises it without one.
            self.release()
            try:
                await asyncio.shield(finish(request, result, error))
            except Exception:
                log.exception("bridge: recording the end of %s failed", request.request_id)
            finally:
                if self.current == payment_id:  # a next command may have started
                    self.current = None

    def _saw(self, result: Result) -> None:
        if result.status is not None:
            self.unreachable = False
            self.last_seen = datetime.now(UTC)

    async def exclusive(
        self, call: Callable[[], Awaitable[Any]], *, claimed: bool = False
    ) -> Any:
        """Run ``call`` (a recovery, a ``last trans``) as this terminal's one command
        (``claimed``: the caller has already claimed the terminal for it)."""
        if not claimed:
            self.claim("command")
        try:
            value = await call()
        except (ConnectError, ConnectTimeout):
            self.unreachable = True
            raise
        finally:
            self.release()
        if isinstance(value, Result):
            self._saw(value)
        elif isinstance(value, list) and any(isinstance(r, Result) and r.status
                                             for r in value):
            self.unreachable = False
            self.last_seen = datetime.now(UTC)
        return value

    def claim_for_recovery(self) -> None:
        """Take the terminal for the start-up recovery, before anything else can."""
        self.claim("recovery")
        self.recovering = True

    async def recover(self) -> list[Result]:
        """``Terminal.recover()`` on the terminal ``claim_for_recovery`` took: what a
        crash left pending or in doubt, resolved."""
        try:
            results: list[Result] = await self.exclusive(self.terminal.recover, claimed=True)
            return results
        finally:
            self.recovering = False

    async def stop(self, grace: float) -> None:
        """Let running commands finish for ``grace`` seconds, then cancel them (the
        journal keeps them; the next start recovers them), and close the link."""
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5)
        await self.terminal.aclose()
