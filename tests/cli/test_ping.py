"""``ecrlink ping``: the terminal answers, says who it is, and nothing is charged."""

from __future__ import annotations

import json

from ecrlink.cli.exit_codes import ExitStatus
from ecrlink.journal import default_journal_path
from ecrlink.simulator import Simulator

from .conftest import run


def test_ping_shows_who_the_terminal_is_and_charges_nothing(sim: Simulator) -> None:
    before = len(sim.ledger.transactions)
    r = run("ping", "--json", "-t", sim.http_url)
    assert r.exit_code == 0, r.stderr
    report = json.loads(r.stdout)
    identity = sim.state()
    assert report["answered"] and report["round_trip_ms"] > 0
    if report["last_transaction"] is not None:
        assert (report["tid"], report["pos_serial"]) == (identity["tid"], identity["pos_serial"])
    assert len(sim.ledger.transactions) == before  # nothing was sold
    assert not default_journal_path().exists()  # nothing written down
    assert run("sale", "5000", "-t", sim.http_url).exit_code == 0
    after = json.loads(run("ping", "--json", "-t", sim.serial_url).stdout)
    assert after["tid"] == identity["tid"] and after["last_transaction"]["amount"] == 5000
    shown = run("ping", "-t", sim.http_url, "--lang", "vi")
    assert "MÁY POS ĐÃ TRẢ LỜI" in shown.stdout and identity["tid"] in shown.stdout


def test_ping_an_absent_terminal_exits_5() -> None:
    r = run("ping", "-t", "http://127.0.0.1:1", "--json")
    assert r.exit_code == ExitStatus.UNREACHABLE
    assert json.loads(r.stdout)["error"]["code"] == "unreachable"
