"""Every fault ends in the right final state, against the real simulator on both links."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ecrlink import AsyncTerminal, InDoubtPending, Outcome, Terminal
from ecrlink.journal import Journal, ResolvedBy, State
from ecrlink.simulator import RecordStatus, Simulator
from tests.conftest import RawServer


@pytest.fixture(scope="module", params=["v201", "echo"])
def sim(request: pytest.FixtureRequest) -> Iterator[Simulator]:
    """The documented firmware (no requestId echo in last trans), and the later one."""
    with Simulator(
        http=("127.0.0.1", 0), serial=True, no_answer_timeout=0.4, firmware=request.param
    ) as simulator:
        yield simulator


@pytest.fixture(params=["http", "serial"])
def pos(request: pytest.FixtureRequest, sim: Simulator, tmp_path: Path) -> Iterator[Terminal]:
    url = sim.http_url if request.param == "http" else sim.serial_url
    with Terminal(
        url, journal=tmp_path / "j.sqlite3", timeout=1.0, status_timeout=0.8,
        recovery_timeout=6.0,
    ) as terminal:
        assert terminal.sale(10_000).approved  # a known approval to compare against
        yield terminal


def entry_of(pos: Terminal, journal_id: int | None) -> tuple[State, ResolvedBy | None]:
    assert pos.journal is not None and journal_id is not None
    entry = pos.journal.get(journal_id)
    return entry.state, entry.resolved_by


def ledger_status(sim: Simulator, request_id: str | None) -> RecordStatus:
    assert request_id is not None
    (record,) = sim.ledger.find(request_id)
    return record.status


@pytest.mark.parametrize("amount", [25_996, 25_997])
def test_lost_or_truncated_reply_resolves_approved(
    pos: Terminal, sim: Simulator, amount: int
) -> None:
    result = pos.sale(amount, invoice="HD-LOST")
    assert result.outcome is Outcome.APPROVED, result.detail
    assert result.transaction is not None and result.transaction.amount == amount
    assert entry_of(pos, result.journal_id) == (State.APPROVED, ResolvedBy.LAST_TRANS)
    assert ledger_status(sim, result.request_id) is RecordStatus.APPROVED


def test_no_answer_resolves_not_approved(pos: Terminal, sim: Simulator) -> None:
    result = pos.sale(25_998)
    assert result.outcome is Outcome.DECLINED, result.detail
    assert "from before ours" in (result.detail or "")
    assert entry_of(pos, result.journal_id) == (State.DECLINED, ResolvedBy.LAST_TRANS)
    assert ledger_status(sim, result.request_id) is RecordStatus.NEVER_ANSWERED


def test_business_outcomes_come_from_the_reply(pos: Terminal) -> None:
    declined = pos.sale(25_051)
    assert (declined.outcome, declined.return_code) == (Outcome.DECLINED, "51")
    assert entry_of(pos, declined.journal_id) == (State.DECLINED, ResolvedBy.REPLY)
    canceled = pos.sale(25_999)
    assert canceled.outcome is Outcome.CANCELED
    assert entry_of(pos, canceled.journal_id) == (State.CANCELED, ResolvedBy.REPLY)


def test_first_sale_ever_with_no_answer_is_not_approved(tmp_path: Path) -> None:
    with Simulator(http=("127.0.0.1", 0)) as fresh, Terminal(
        fresh.http_url, journal=tmp_path / "j.sqlite3", timeout=0.5, recovery_timeout=5
    ) as pos:
        result = pos.sale(1_998)
        assert result.outcome is Outcome.DECLINED
        assert "no successful transaction" in (result.detail or "")


class CuttingProxy:
    """Forwards to the simulator but cuts a sale's reply after ``keep`` bytes."""

    def __init__(self, target: str, keep: int) -> None:
        host, port = target.removeprefix("http://").split(":")
        self.target = (host, int(port))
        self.keep = keep
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        with client, socket.create_connection(self.target) as upstream:
            head = b""
            while b"\r\n\r\n" not in head:
                head += client.recv(4096)
            upstream.sendall(head)
            reply = b""
            while chunk := upstream.recv(65536):
                reply += chunk
            cut = b"cmd=sale" in head.split(b"\r\n")[0]
            client.sendall(reply[: self.keep] if cut else reply)

    def close(self) -> None:
        self.sock.close()


def test_connection_cut_mid_reply_resolves_from_last_trans(
    sim: Simulator, tmp_path: Path
) -> None:
    proxy = CuttingProxy(sim.http_url, keep=200)
    try:
        with Terminal(proxy.url, journal=tmp_path / "j.sqlite3", recovery_timeout=5) as pos:
            result = pos.sale(31_000)
        assert result.outcome is Outcome.APPROVED, result.detail
        assert entry_of(pos, result.journal_id) == (State.APPROVED, ResolvedBy.LAST_TRANS)
        assert ledger_status(sim, result.request_id) is RecordStatus.APPROVED
    finally:
        proxy.close()


Start = Callable[[Callable[[socket.socket, bytes], None]], RawServer]


def test_unresolvable_doubt_blocks_new_sales_until_the_cashier_resolves(
    raw_server: Start, tmp_path: Path
) -> None:
    dead = raw_server(lambda conn, _req: None)  # takes every request, never answers
    journal = Journal(tmp_path / "j.sqlite3")
    with Terminal(dead.url, journal=journal, status_timeout=0.2, recovery_timeout=0.5) as pos:
        first = pos.sale(40_000)
        assert first.outcome is Outcome.UNKNOWN and not first.approved
        assert "do NOT charge again" in first.advice("en")
        assert journal.get(first.journal_id or 0).state is State.IN_DOUBT
        sent = len(dead.requests)
        with pytest.raises(InDoubtPending) as info:
            pos.sale(40_000)
        assert info.value.journal_ids == (first.journal_id,)
        assert journal.get(first.journal_id or 0).state is State.IN_DOUBT
        assert not any(b"cmd=sale" in r for r in dead.requests[sent:])  # no second charge
        forced = pos.sale(41_000, force=True)
        assert forced.outcome is Outcome.UNKNOWN
        for entry in journal.unresolved(pos.url):
            journal.resolve(entry.id, State.DECLINED, by=ResolvedBy.CASHIER, who="lan")
        assert journal.unresolved(pos.url) == []
        assert pos.sale(42_000).outcome is Outcome.UNKNOWN  # allowed again (and in doubt)


def test_async_terminal_runs_the_same_recovery(sim: Simulator, tmp_path: Path) -> None:
    async def day() -> tuple[Outcome, Outcome, list[Outcome]]:
        async with AsyncTerminal(
            sim.http_url, journal=tmp_path / "j.sqlite3", timeout=1.0, status_timeout=0.8,
            recovery_timeout=6.0,
        ) as pos:
            assert (await pos.sale(10_000)).approved
            lost = await pos.sale(26_997)
            silent = await pos.sale(26_998)
            return lost.outcome, silent.outcome, [r.outcome for r in await pos.recover()]

    assert asyncio.run(day()) == (Outcome.APPROVED, Outcome.DECLINED, [])
