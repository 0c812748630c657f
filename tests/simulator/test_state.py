"""The terminal's flash: restarts continue the batch; the file is never half-written."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ecrlink import ConfigError, Outcome
from ecrlink.simulator import RecordStatus, Simulator
from ecrlink.simulator import state as state_module
from ecrlink.simulator.state import StateStore
from tests.simulator.conftest import StepClock, attempt, client


def test_restart_continues_the_batch(tmp_path: Path) -> None:
    state = tmp_path / "terminal.json"
    with Simulator(state_file=state, clock=StepClock()) as sim, client(sim.http_url) as pos:
        first = pos.sale(1000, invoice="A1")
        pos.void(first.transaction.receipt_no if first.transaction else "")
        pos.settle()
        kept = pos.sale(2000, invoice="B2")
        attempt(pos, 3_997, request_id="lost-before-stop")  # approved, reply lost
        before = sim.ledger.last_stan, sim.ledger.last_receipt, sim.ledger.batch_no
    assert kept.transaction is not None
    with Simulator(state_file=state, clock=StepClock()) as sim, client(sim.http_url) as pos:
        assert (sim.ledger.last_stan, sim.ledger.last_receipt, sim.ledger.batch_no) == before
        last = pos.last_transaction()
        lost = sim.ledger.find("lost-before-stop")[0]
        assert last.transaction is not None and last.transaction.ref_no == lost.ref_no
        nxt = pos.sale(4000)
        assert nxt.transaction is not None
        assert int(nxt.transaction.receipt_no or 0) == before[1] + 1
        assert int(nxt.transaction.stan or 0) > before[0]
        assert nxt.transaction.batch_number == 2
        # The open batch came back: its receipts can still be voided, once.
        assert pos.void(kept.transaction.receipt_no or "").outcome is Outcome.APPROVED
        assert pos.void(kept.transaction.receipt_no or "").return_code == "12"
        # The batch settled before the restart is still the bank's.
        assert len(sim.ledger.settled) == 3 and sim.ledger.settlements[0].batch_no == 1
        rows = sim.write_statement(tmp_path / "statement.csv")
        assert rows == 2  # sale A1 and its void, from batch 1


def test_state_is_on_disk_before_the_reply(tmp_path: Path) -> None:
    state = tmp_path / "terminal.json"
    with Simulator(state_file=state) as sim, client(sim.http_url) as pos:
        identity = sim.ledger.identity
        for amount in (1000, 2000, 3000):
            result = pos.sale(amount)
            # What a power cut right now would leave: snapshot + change log.
            saved = StateStore(state).load([identity])[0].ledger
            assert saved.open_batch[-1].request_id == result.request_id
            assert saved.last_success == saved.open_batch[-1]
        void = pos.void(1)
        saved = StateStore(state).load([identity])[0].ledger
        assert saved.open_batch[0].status is RecordStatus.VOIDED
        assert saved.last_success is not None
        assert saved.last_success.request_id == void.request_id
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o600
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["terminal.json", "terminal.json.log"]  # no temp files left
    assert (tmp_path / "terminal.json.log").stat().st_size == 0  # folded in at stop


def test_change_log_is_replayed_and_survives_a_torn_line(tmp_path: Path) -> None:
    state = tmp_path / "terminal.json"
    log = tmp_path / "terminal.json.log"
    with Simulator(state_file=state) as sim, client(sim.http_url) as pos:
        for amount in (1000, 2000, 3000):
            pos.sale(amount)
        snapshot, lines = state.read_bytes(), log.read_bytes()  # as a SIGKILL leaves them
    state.write_bytes(snapshot)
    log.write_bytes(lines + b'{"g":1,"t":0,"e":0,"batch_no":1,"last_rec')  # cut mid-append
    with Simulator(state_file=state) as sim:
        assert [r.amount for r in sim.ledger.open_batch] == [1000, 2000, 3000]
        assert sim.ledger.last_receipt == 3
    # Lines of an older generation (crash between rename and truncation) are ignored.
    state.write_bytes(snapshot.replace(b'"generation":1', b'"generation":7'))
    log.write_bytes(lines)
    with Simulator(state_file=state) as sim:
        assert sim.ledger.open_batch == ()


def test_log_is_folded_into_a_snapshot_now_and_then(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(state_module, "COMPACT_AFTER", 5)
    state = tmp_path / "terminal.json"
    with Simulator(state_file=state) as sim, client(sim.http_url) as pos:
        for i in range(12):
            pos.sale(1000 + i)
            lines = (tmp_path / "terminal.json.log").read_bytes().count(b"\n")
            assert lines <= 5
        identity = sim.ledger.identity
        assert len(StateStore(state).load([identity])[0].ledger.open_batch) == 12


def test_unreadable_state_file_is_refused_and_left_alone(tmp_path: Path) -> None:
    state = tmp_path / "terminal.json"
    state.write_text('{"version": 1, "terminals": [{"batch_no": ', encoding="utf-8")
    with pytest.raises(ConfigError, match="cannot be read"):
        Simulator(state_file=state).start()
    assert state.read_text(encoding="utf-8").endswith('"batch_no": ')


def test_settlement_cut_short_by_a_crash_settles_again(tmp_path: Path) -> None:
    state = tmp_path / "terminal.json"
    with Simulator(state_file=state) as sim, client(sim.http_url) as pos:
        pos.sale(1000)
        pos.settle()
        pos.sale(2000)
    saved = state.read_bytes()
    with Simulator(state_file=state) as sim, client(sim.http_url) as pos:
        pos.settle()  # appends batch 2 to the sidecar ...
    state.write_bytes(saved)  # ... but the state file lost the write (power cut)
    with Simulator(state_file=state) as sim, client(sim.http_url) as pos:
        assert sim.ledger.batch_no == 2 and [r.amount for r in sim.ledger.open_batch] == [2000]
        assert [r.amount for r in sim.ledger.settled if r.command == "sale"] == [1000]
        pos.settle()
        assert [s.batch_no for s in sim.ledger.settlements] == [1, 2]
    with Simulator(state_file=state) as sim:
        sales = [r.amount for r in sim.ledger.settled if r.command == "sale"]
        assert sales == [1000, 2000]  # batch 2 once, not twice


def test_reset_is_not_undone_by_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "terminal.json"
    with Simulator(state_file=state) as sim, client(sim.http_url) as pos:
        pos.sale(1000)
        pos.settle()
        sim.reset()
    with Simulator(state_file=state) as sim:
        assert sim.ledger.transactions == () and sim.ledger.last_success is None
        assert sim.ledger.batch_no == 1


def test_many_terminals_share_one_state_file(tmp_path: Path) -> None:
    state = tmp_path / "terminals.json"
    with Simulator(state_file=state, terminals=3) as sim:
        for i, url in enumerate(sim.http_urls):
            with client(url) as pos:
                for _ in range(i + 1):
                    pos.sale(1000)
    with Simulator(state_file=state, terminals=3) as sim:
        assert [t.ledger.last_receipt for t in sim.terminals] == [1, 2, 3]
