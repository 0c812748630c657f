"""Recovery on the terminals shops have: no requestId echo, no notice of a hang-up,
and (adversarial) ``last trans`` answered while the customer is still paying.

A register "dies" during the card wait exactly as the client would leave it: the
request is written down as pending with the terminal's high-water mark and deadline,
sent on a real socket, and the socket is closed while the customer is at the reader.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ecrlink import Outcome, Terminal
from ecrlink.journal import ResolvedBy, State
from ecrlink.protocol import Sale
from ecrlink.simulator import RecordStatus, Simulator

CARD = 1.0
"""Seconds the customer takes at the card reader."""


Make = Callable[..., tuple[Simulator, Terminal]]


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Make]:
    opened: list[tuple[Simulator, Terminal]] = []

    def start(timeout: float = 3.0, **profile: str) -> tuple[Simulator, Terminal]:
        sim = Simulator(http=("127.0.0.1", 0), card_delay=0.0, **profile).start()
        pos = Terminal(sim.http_url, journal=tmp_path / "j.sqlite3", timeout=timeout,
                       status_timeout=0.5, recovery_timeout=0.6)
        opened.append((sim, pos))
        assert pos.sale(10_000).approved  # the terminal's last transaction before ours
        sim.configure(card_delay=CARD)
        return sim, pos

    yield start
    for sim, pos in opened:
        pos.close()
        sim.stop()


def die_at_the_card_reader(pos: Terminal, amount: int) -> tuple[int, str]:
    """Write the sale down as the client does, send it, hang up while the customer pays."""
    assert pos.journal is not None
    profile = pos.journal.profile(pos.url)
    assert profile.mark_valid
    sale = Sale.build(amount, request_id=f"dead{amount}", client_id="ECRLINK")
    entry_id = pos.journal.begin(
        pos.url, sale, mark=profile.mark, mark_at=profile.mark_at,
        deadline=datetime.now(UTC) + timedelta(seconds=pos.timeout),
    )
    host, port = pos.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as link:
        target = sale.line().replace(" ", "%20")
        link.sendall(f"GET {target} HTTP/1.1\r\nHost: pos\r\n\r\n".encode())
        time.sleep(CARD / 4)
    return entry_id, sale.request_id


def ledger_status(sim: Simulator, request_id: str) -> RecordStatus:
    (record,) = sim.ledger.find(request_id)
    return record.status


@pytest.mark.parametrize("firmware", ["v201", "echo"])
def test_register_killed_at_the_card_reader_recovers_exactly_one_approval(
    make: Make, firmware: str
) -> None:
    sim, pos = make(firmware=firmware)  # on_hangup=finish: the customer still pays
    entry_id, request_id = die_at_the_card_reader(pos, 123_000)
    time.sleep(CARD)  # the terminal finishes; the reply goes nowhere
    [result] = pos.recover()
    assert result.outcome is Outcome.APPROVED, result.detail
    assert result.transaction is not None and result.transaction.amount == 123_000
    assert pos.journal is not None
    entry = pos.journal.get(entry_id)
    assert (entry.state, entry.resolved_by, entry.charged_amount) == (
        State.APPROVED, ResolvedBy.LAST_TRANS, 123_000)
    assert ledger_status(sim, request_id) is RecordStatus.APPROVED
    approved = [r for r in sim.ledger.transactions if r.approved and r.amount == 123_000]
    assert len(approved) == 1
    # the lane is free again, and the next sale is not confused by the recovered one
    assert pos.sale(5_000).approved


def test_lost_reply_after_an_approval_ends_approved_without_a_cashier(make: Make) -> None:
    _, pos = make()  # v201: no requestId in last trans
    result = pos.sale(25_997)  # approved by the bank, then the reply is lost
    assert result.outcome is Outcome.APPROVED, result.detail
    assert "no requestId echo" in (result.detail or "")
    assert result.transaction is not None and result.transaction.amount == 25_997


def test_lost_decline_is_not_approved_once_the_terminal_says_busy_then_idle(make: Make) -> None:
    sim, pos = make()  # busy_last_trans=refuse
    entry_id, request_id = die_at_the_card_reader(pos, 120_051)
    pos.recovery_timeout = CARD * 3
    [result] = pos.recover()  # asks while the customer is paying: busy, then idle
    assert result.outcome is Outcome.DECLINED, result.detail
    assert ledger_status(sim, request_id) is RecordStatus.DECLINED
    assert pos.journal is not None and pos.journal.get(entry_id).state is State.DECLINED


def test_lost_decline_is_never_concluded_before_the_terminal_is_idle(make: Make) -> None:
    # The adversarial terminal answers last trans with the old transaction while the
    # customer is still paying; the only proof of idleness left is our deadline.
    _, pos = make(timeout=2.5, busy_last_trans="answer")
    entry_id, _ = die_at_the_card_reader(pos, 120_051)
    [early] = pos.recover()  # customer at the reader: must not say "not approved"
    assert early.outcome is Outcome.UNKNOWN, early.detail
    time.sleep(CARD)
    [finished] = pos.recover()  # declined by now, but the deadline has not passed
    assert finished.outcome is Outcome.UNKNOWN, finished.detail
    assert pos.journal is not None and pos.journal.get(entry_id).state is State.IN_DOUBT
    time.sleep(1.6)  # past the sale's deadline: the terminal cannot be in it any more
    [late] = pos.recover()
    assert late.outcome is Outcome.DECLINED, late.detail


def test_answering_last_trans_while_paying_never_turns_into_a_lost_payment(make: Make) -> None:
    sim, pos = make(busy_last_trans="answer")
    _, request_id = die_at_the_card_reader(pos, 77_000)
    [early] = pos.recover()
    assert early.outcome is Outcome.UNKNOWN, early.detail  # never "declined"
    time.sleep(CARD)
    [late] = pos.recover()
    assert late.outcome is Outcome.APPROVED, late.detail
    assert ledger_status(sim, request_id) is RecordStatus.APPROVED


@pytest.mark.parametrize(("firmware", "echoes"), [("v201", False), ("echo", True)])
def test_the_journal_learns_what_the_terminal_is(
    make: Make, firmware: str, echoes: bool
) -> None:
    sim, pos = make(firmware=firmware)
    assert pos.journal is not None
    profile = pos.journal.profile(pos.terminal)
    identity = sim.state()
    assert (profile.echoes, profile.tid, profile.pos_serial) == (
        echoes, identity["tid"], identity["pos_serial"])
    assert profile.clock_offset is not None and abs(profile.clock_offset) < 5
    assert profile.mark_valid and profile.mark is not None
