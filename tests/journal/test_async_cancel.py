"""``AsyncTerminal`` is cancel-safe: a cancelled call never leaks the terminal's lock,
never loses a payment that may have been charged, and never blocks the event loop.

Real simulator, real sockets, a real journal and real flock files. Each test runs its
own event loop (``asyncio.run``) and is bounded in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from ecrlink import AsyncTerminal, InDoubtPending, Outcome, Result
from ecrlink.journal import Entry, Journal, ResolvedBy, State, TerminalLock
from ecrlink.simulator import RecordStatus, Simulator
from ecrlink.transports import terminal_key
from tests.conftest import RawServer

T = TypeVar("T")

Start = Callable[[Callable[[socket.socket, bytes], None]], RawServer]


# --- helpers -------------------------------------------------------------------------------


def run(coro: Coroutine[Any, Any, T], *, limit: float = 9.0) -> T:
    """``asyncio.run`` with a hard bound, so that no test can hang."""

    async def bounded() -> T:
        return await asyncio.wait_for(coro, limit)

    return asyncio.run(bounded())


def lock_dir(journal_path: Path) -> Path:
    """Where ``AsyncTerminal`` keeps its flock files: next to the journal."""
    return journal_path.parent / "locks"


def terminal_lock(journal_path: Path, url: str, *, wait: float) -> TerminalLock:
    """The lock ``AsyncTerminal(url, journal=journal_path)`` takes (keyed on the terminal's
    one name, ``terminal_key(url)``), as another register would take it."""
    return TerminalLock(lock_dir(journal_path), terminal_key(url), wait=wait)


def assert_lock_free(journal_path: Path, url: str, *, wait: float) -> None:
    """A fresh ``TerminalLock`` on the terminal is granted at once (well within ``wait``)."""
    probe = terminal_lock(journal_path, url, wait=wait)
    started = time.monotonic()
    try:
        assert probe.acquire() is True  # TerminalBusy after ``wait`` if leaked
    finally:
        probe.release()
    assert time.monotonic() - started < wait


def flock_taken(path: Path) -> bool:
    """Someone holds the flock on ``path`` (probed past ``TerminalLock``'s queue)."""
    fcntl = pytest.importorskip("fcntl")
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also drops the flock if the probe got it
    return False


async def until(condition: Callable[[], Awaitable[bool]], *, limit: float, what: str) -> None:
    """Poll ``condition`` every 10 ms, at most ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def cancelled(task: asyncio.Task[Any], *, limit: float = 3.0) -> float:
    """Cancel ``task``, check it ends with ``CancelledError``; return how long that took."""
    started = time.monotonic()
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=limit)
    assert done, f"the cancelled task did not end within {limit} s"
    with pytest.raises(asyncio.CancelledError):
        task.result()
    return time.monotonic() - started


def entries_for(journal: Journal, request_id: str) -> list[Entry]:
    return [e for e in journal.entries() if e.request_id == request_id]


class Ticker:
    """Counts ``asyncio.sleep(0.01)`` ticks and the longest gap between two of them."""

    def __init__(self) -> None:
        self.ticks = 0
        self.max_gap = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(0.01)
            now = loop.time()
            self.max_gap = max(self.max_gap, now - last)
            self.ticks += 1
            last = now

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


# --- 1. cancelled while waiting for the lock ------------------------------------------------


def test_cancel_while_waiting_for_the_lock_leaks_nothing(tmp_path: Path) -> None:
    journal_path = tmp_path / "j.sqlite3"
    with Simulator(http=("127.0.0.1", 0)) as sim:
        url = sim.http_url

        async def scenario() -> tuple[float, Result]:
            async with AsyncTerminal(url, journal=journal_path, lock_timeout=5) as pos:
                held = terminal_lock(journal_path, url, wait=1)
                assert held.acquire()  # another register is in a transaction
                try:
                    task = asyncio.create_task(pos.sale(1_000, request_id="LOCKWAIT0001"))
                    await asyncio.sleep(0.2)
                    assert not task.done()  # really waiting for our lock
                    took = await cancelled(task)
                finally:
                    held.release()
                # The worker was stopped, not left polling: had it been, it would take
                # the lock now that it is released, and keep it.
                await asyncio.sleep(0.3)
                assert_lock_free(journal_path, url, wait=0.5)
                after = await asyncio.wait_for(pos.sale(2_000), 2.0)
                return took, after

        took, after = run(scenario())

        # The lock-waiting worker noticed the stop within its polling step (≤ 0.1 s).
        assert took < 1.0
        assert after.outcome is Outcome.APPROVED, after.detail
        # Nothing left for the cancelled sale: the terminal only ever saw the later one.
        assert [(r.request_id, r.amount) for r in sim.ledger.transactions] == [
            (after.request_id, 2_000)
        ]
    journal = Journal(journal_path)
    try:
        assert all(e.state is State.FAILED for e in entries_for(journal, "LOCKWAIT0001"))
        assert [e.state for e in journal.entries(commands=["sale"])] == [State.APPROVED]
    finally:
        journal.close()


def test_cancel_just_as_the_lock_is_won_frees_it(tmp_path: Path) -> None:
    """The worker got the lock but the task is cancelled before it resumes: freed."""
    journal_path = tmp_path / "j.sqlite3"
    with Simulator(http=("127.0.0.1", 0)) as sim:
        url = sim.http_url

        async def scenario() -> Result:
            async with AsyncTerminal(url, journal=journal_path, lock_timeout=5) as pos:
                held = terminal_lock(journal_path, url, wait=1)
                assert held.acquire()
                task = asyncio.create_task(pos.sale(1_000, request_id="RACE00000001"))
                await asyncio.sleep(0.2)
                assert not task.done()
                # Release, then keep the event loop blocked (deliberately, for this test)
                # until the worker has taken the lock: the task learns of it only after
                # it has been cancelled.
                held.release()
                deadline = time.monotonic() + 3
                while not flock_taken(held.path):
                    assert time.monotonic() < deadline, "the worker never took the lock"
                    time.sleep(0.01)
                await cancelled(task)
                assert_lock_free(journal_path, url, wait=0.5)
                return await asyncio.wait_for(pos.sale(3_000), 2.0)

        after = run(scenario())
        assert after.outcome is Outcome.APPROVED, after.detail
        assert [r.request_id for r in sim.ledger.transactions] == [after.request_id]


# --- 2. cancelled while the customer is at the card reader -----------------------------------


def test_cancel_at_the_card_reader_leaves_the_sale_in_doubt_then_recover_proves_it(
    tmp_path: Path,
) -> None:
    journal_path = tmp_path / "j.sqlite3"
    amount = 12_345
    request_id = "CARDWAIT0001"
    # on_hangup="finish" (the default): the terminal completes the sale anyway.
    with Simulator(http=("127.0.0.1", 0), card_delay=1.5) as sim:
        url = sim.http_url
        terminal = sim.terminal(0)

        async def scenario() -> tuple[Entry, list[Result]]:
            async with AsyncTerminal(url, journal=journal_path, lock_timeout=5) as pos:
                journal = pos.journal
                assert journal is not None

                async def at_the_card_reader() -> bool:
                    # Written down (so the pre-send last trans is over) and the terminal
                    # is busy: the sale itself is at the terminal.
                    written = await asyncio.to_thread(entries_for, journal, request_id)
                    return bool(written) and terminal.busy

                started = time.monotonic()
                task = asyncio.create_task(pos.sale(amount, request_id=request_id))
                await until(at_the_card_reader, limit=5, what="the sale to reach the terminal")
                await asyncio.sleep(max(0.0, 0.3 - (time.monotonic() - started)))
                assert not task.done() and terminal.busy
                await cancelled(task)

                (entry,) = await asyncio.to_thread(entries_for, journal, request_id)
                assert_lock_free(journal_path, url, wait=0.2)

                async def terminal_finished() -> bool:
                    return not terminal.busy

                await until(terminal_finished, limit=5, what="the terminal to finish the sale")
                return entry, await pos.recover()

        entry, recovered = run(scenario())

        # Cancelled with the request at the terminal: it may have been charged.
        assert entry.state is State.IN_DOUBT, entry
        assert entry.state not in (State.FAILED, State.DECLINED)
        assert entry.amount == amount

        (result,) = recovered
        assert result.outcome is Outcome.APPROVED, result.detail
        assert result.request_id == request_id and result.journal_id == entry.id
        assert result.transaction is not None and result.transaction.amount == amount

        (record,) = sim.ledger.find(request_id)
        assert record.status is RecordStatus.APPROVED and record.amount == amount
        assert record.delivery == "lost"  # the cancel hung up: the terminal's reply was lost
        assert [r.request_id for r in sim.ledger.transactions] == [request_id]

    journal = Journal(journal_path)
    try:
        final = journal.get(entry.id)
        assert (final.state, final.resolved_by) == (State.APPROVED, ResolvedBy.LAST_TRANS)
        assert final.charged_amount == amount
    finally:
        journal.close()


# --- 3. cancelled during the pre-send last trans, or during recovery ---------------------------


def test_cancel_during_the_pre_send_last_trans_leaks_nothing(
    raw_server: Start, tmp_path: Path
) -> None:
    journal_path = tmp_path / "j.sqlite3"
    release = threading.Event()

    def never_answers(_conn: socket.socket, _request: bytes) -> None:
        release.wait(8)  # holds the connection open, answers nothing

    server = raw_server(never_answers)

    async def scenario() -> None:
        async with AsyncTerminal(
            server.url, journal=journal_path, lock_timeout=5, status_timeout=5
        ) as pos:
            task = asyncio.create_task(pos.sale(1_000, request_id="LASTTRANS001"))

            async def asked() -> bool:
                return bool(server.requests)

            await until(asked, limit=5, what="the pre-send last trans")
            await asyncio.sleep(0.2)
            assert not task.done()
            await cancelled(task)
            assert_lock_free(journal_path, server.url, wait=0.5)

    try:
        run(scenario())
    finally:
        release.set()

    assert server.requests and all(b"cmd=last" in r for r in server.requests)
    assert not any(b"cmd=sale" in r for r in server.requests)  # the sale never left
    journal = Journal(journal_path)
    try:
        assert list(journal.entries()) == []  # nothing written: nothing to resolve
    finally:
        journal.close()


def test_cancel_during_recovery_leaks_nothing_and_keeps_the_doubt(tmp_path: Path) -> None:
    journal_path = tmp_path / "j.sqlite3"
    amount = 23_456
    request_id = "RECOVER00001"
    with Simulator(http=("127.0.0.1", 0), card_delay=2.5) as sim:
        url = sim.http_url
        terminal = sim.terminal(0)

        async def scenario() -> tuple[State, list[Result]]:
            async with AsyncTerminal(
                url, journal=journal_path, lock_timeout=5, status_timeout=1,
                recovery_timeout=6,
            ) as pos:
                journal = pos.journal
                assert journal is not None

                async def at_the_card_reader() -> bool:
                    written = await asyncio.to_thread(entries_for, journal, request_id)
                    return bool(written) and terminal.busy

                sale = asyncio.create_task(pos.sale(amount, request_id=request_id))
                await until(at_the_card_reader, limit=5, what="the sale to reach the terminal")
                await cancelled(sale)

                # The terminal is still at the card reader: recovery hears "busy" and
                # waits to ask again. Cancel it there.
                recovery = asyncio.create_task(pos.recover())
                await asyncio.sleep(0.4)
                assert not recovery.done() and terminal.busy
                await cancelled(recovery)
                assert_lock_free(journal_path, url, wait=0.2)
                (entry,) = await asyncio.to_thread(entries_for, journal, request_id)

                async def terminal_finished() -> bool:
                    return not terminal.busy

                await until(terminal_finished, limit=5, what="the terminal to finish the sale")
                return entry.state, await pos.recover()

        state, recovered = run(scenario())
        assert state is State.IN_DOUBT  # the cancelled recovery changed nothing
        (result,) = recovered
        assert result.outcome is Outcome.APPROVED, result.detail
        assert result.transaction is not None and result.transaction.amount == amount
        (record,) = sim.ledger.find(request_id)
        assert record.status is RecordStatus.APPROVED


# --- 4. the event loop never waits on the lock or the journal ----------------------------------


def test_the_event_loop_keeps_running_through_lock_waits_and_journal_writes(
    tmp_path: Path,
) -> None:
    journal_path = tmp_path / "j.sqlite3"
    with Simulator(http=("127.0.0.1", 0)) as sim:
        url = sim.http_url

        async def scenario() -> tuple[Ticker, list[Result], float]:
            ticker = Ticker()
            async with AsyncTerminal(url, journal=journal_path, lock_timeout=5) as pos:
                # Warm up first: the transport's first exchange builds its httpx client
                # (and with it a TLS context from the CA bundle) on the loop, a one-time
                # stall that is not journal or lock work (~40 ms idle, 0.4-0.6 s on a
                # loaded 2-core box).
                assert (await pos.sale(5_000)).approved
                ticker.start()
                try:
                    held = terminal_lock(journal_path, url, wait=1)
                    assert held.acquire()
                    asyncio.get_running_loop().call_later(0.5, held.release)
                    started = time.monotonic()
                    results = [await pos.sale(1_000 * (i + 1)) for i in range(5)]
                    took = time.monotonic() - started
                finally:
                    await ticker.stop()
            return ticker, results, took

        ticker, results, took = run(scenario())
        assert all(r.outcome is Outcome.APPROVED for r in results)
        assert took >= 0.45  # the first sale did wait for the lock
        # Half a second of lock wait and five sales' journal reads and (fsynced) writes
        # went by while the loop kept ticking: no single stretch blocked it.
        assert ticker.ticks >= 10
        assert ticker.max_gap < 0.5, ticker.max_gap


# --- cancellations that land during a journal write ------------------------------------------


def wire_logged(caplog: pytest.LogCaptureFixture, arrow: str, request_id: str) -> bool:
    """``ecrlink.wire`` logged ``arrow`` (``>>>`` a request, ``<<<`` a reply) for it."""
    return any(
        arrow in r.getMessage() and request_id in r.getMessage() for r in caplog.records
    )


def test_cancel_during_the_pending_write_ends_failed_not_in_doubt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Another writer (a second register, ``ecrlink journal resolve``) holds the journal's
    write lock while our sale writes its pending row; the sale is cancelled meanwhile.
    The write is carried to its end, then the cancellation stops the sale before it is
    sent: failed (it never left), and the next sale is not blocked by a false doubt."""
    caplog.set_level(logging.DEBUG, logger="ecrlink.wire")
    journal_path = tmp_path / "j.sqlite3"
    request_id = "BEGIN0000001"
    with Simulator(http=("127.0.0.1", 0)) as sim:
        url = sim.http_url

        async def scenario() -> tuple[list[Entry], Result | None, InDoubtPending | None]:
            async with AsyncTerminal(url, journal=journal_path, lock_timeout=5) as pos:
                journal = pos.journal
                assert journal is not None
                other = sqlite3.connect(journal_path, isolation_level=None)
                try:
                    other.execute("BEGIN IMMEDIATE")  # the other writer's transaction
                    task = asyncio.create_task(pos.sale(1_000, request_id=request_id))

                    async def writing_pending() -> bool:
                        # Logged just before the pending row is written (then sent).
                        return wire_logged(caplog, ">>>", request_id)

                    await until(writing_pending, limit=5, what="the sale's pending write")
                    await asyncio.sleep(0.1)
                    assert not task.done()
                    asyncio.get_running_loop().call_later(0.3, other.execute, "COMMIT")
                    await cancelled(task, limit=5)  # the write is carried to its end
                finally:
                    other.close()
                assert_lock_free(journal_path, url, wait=0.5)
                left = await asyncio.to_thread(entries_for, journal, request_id)
                try:
                    return left, await pos.sale(2_000), None
                except InDoubtPending as exc:
                    return left, None, exc

        left, after, refused = run(scenario())
        assert sim.ledger.find(request_id) == []  # the cancelled sale never left
        # Provably never sent: failed (or absent), not a payment left pending/in doubt...
        assert all(e.state is State.FAILED for e in left), [e.state for e in left]
        # ...so the next sale goes through instead of being refused.
        assert refused is None, refused
        assert after is not None and after.outcome is Outcome.APPROVED


def test_cancel_while_the_answer_is_being_recorded_is_not_swallowed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The terminal approved and answered; the answer's journal write is held up by
    another writer and the sale is cancelled meanwhile. The approval ends in the
    journal, and the cancellation still reaches the caller afterwards (it used to be
    dropped: the task returned normally although ``task.cancel()`` had said True)."""
    caplog.set_level(logging.DEBUG, logger="ecrlink.wire")
    journal_path = tmp_path / "j.sqlite3"
    request_id = "ANSWER000001"
    with Simulator(http=("127.0.0.1", 0), card_delay=0.3) as sim:
        url = sim.http_url

        async def scenario() -> tuple[asyncio.CancelledError | Result, list[Entry]]:
            async with AsyncTerminal(url, journal=journal_path, lock_timeout=5) as pos:
                journal = pos.journal
                assert journal is not None
                task = asyncio.create_task(pos.sale(4_000, request_id=request_id))

                async def sent() -> bool:
                    return wire_logged(caplog, ">>>", request_id) and bool(
                        await asyncio.to_thread(entries_for, journal, request_id)
                    )

                await until(sent, limit=5, what="the sale's pending row")
                other = sqlite3.connect(journal_path, isolation_level=None)
                try:
                    other.execute("BEGIN IMMEDIATE")  # taken while the customer pays

                    async def answered() -> bool:
                        # Logged as the reply is read, just before it is recorded.
                        return wire_logged(caplog, "<<<", request_id)

                    await until(answered, limit=5, what="the terminal's answer")
                    await asyncio.sleep(0.1)
                    assert not task.done()  # the answer's write waits for the other writer
                    asyncio.get_running_loop().call_later(0.3, other.execute, "COMMIT")
                    task.cancel()
                    done, _ = await asyncio.wait({task}, timeout=5)
                    assert done
                finally:
                    other.close()
                assert_lock_free(journal_path, url, wait=0.5)
                outcome = asyncio.CancelledError() if task.cancelled() else task.result()
                return outcome, await asyncio.to_thread(entries_for, journal, request_id)

        outcome, (entry,) = run(scenario())
        # The payment is written down as what the terminal answered...
        assert (entry.state, entry.resolved_by) == (State.APPROVED, ResolvedBy.REPLY)
        (record,) = sim.ledger.find(request_id)
        assert record.status is RecordStatus.APPROVED
        # ...and the cancellation is delivered, not dropped.
        assert isinstance(outcome, asyncio.CancelledError), (
            f"returned {outcome.outcome} after cancel()"
        )
