"""``ecrlink serve`` on a PostgreSQL journal, and ``ecrlink serve`` shipping to head office.

Real parts only: ``ecrlink serve`` as a process (``tests/bridge/conftest.py``'s
``BridgeProcess``), the real simulator, the session's PostgreSQL server (stopped and
started again for the outage), an ``ecrlink sale`` process as the second register.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from ecrlink.journal import State, open_journal
from ecrlink.simulator import Simulator

# The bridge suite's fixtures, used here as they are (each test names them: F811).
from tests.bridge.conftest import BridgeProcess, make_bridge, sim  # noqa: F401
from tests.bridge.test_api import error, final, pay, sales
from tests.bridge.test_faults import kill_at_the_card_and_retry
from tests.pg.chain import assert_same
from tests.pgserver import PgServer

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def journal_url(pg_server: PgServer) -> str:
    """A fresh database for the shop's journal (the server restarted if a test stopped it)."""
    pg_server.start()
    return pg_server.create_database()


def test_a_sale_through_the_bridge_is_written_to_the_postgresql_journal(
    make_bridge: Callable[..., BridgeProcess], sim: Simulator, journal_url: str  # noqa: F811
) -> None:
    password_url = journal_url.replace("postgres@", "postgres:s3cret@")  # trust: ignored
    bridge = make_bridge(head=f'journal = "{password_url}"')
    with bridge.client() as register:
        created = pay(register, 120_000, "pg-1", invoice="HD-PG1")
        assert created.status_code == 201, created.text
        done = final(register, created.json()["id"])
        again = pay(register, 120_000, "pg-1", invoice="HD-PG1")
    assert done["state"] == "approved"
    assert again.status_code == 200 and again.json()["id"] == done["id"]  # nothing sent again
    [sale] = sales(sim)
    assert sale.approved and sale.amount == 120_000
    with open_journal(journal_url, create=False) as journal:
        [entry] = journal.entries(commands=["sale"])
    assert (entry.state, entry.amount, entry.invoice) == (State.APPROVED, 120_000, "HD-PG1")
    assert entry.request_id == sale.request_id
    assert done["receipt_no"] == entry.receipt_no
    # Its own tables live in a file of its own on this PC, fsynced at each commit.
    assert (bridge.home / "bridge.sqlite3").is_file()
    assert not bridge.journal.exists()
    log = bridge.log()
    assert "journal: postgresql://postgres:***@" in log and "s3cret" not in log
    assert "Traceback" not in log


def test_sigkill_at_the_card_then_restart_on_the_same_journal_charges_once(
    make_bridge: Callable[..., BridgeProcess], sim: Simulator, journal_url: str  # noqa: F811
) -> None:
    bridge = make_bridge(environ={"ECRLINK_JOURNAL": journal_url})
    sim.configure(card_delay=3.0, on_hangup="finish")
    with bridge.client() as register:
        _, seen, done = kill_at_the_card_and_retry(bridge, register, "crash-pg", at_card=0.8)
    assert seen[-1] == "approved" and seen.count("approved") == 1
    assert set(seen) <= {"processing", "in_doubt", "approved"}
    [sale] = sales(sim)  # the terminal charged once, and that is what the bridge says
    assert sale.approved and sale.amount == 250_000
    assert done["state"] == "approved" and done["receipt_no"] == f"{sale.receipt_no:06d}"
    with open_journal(journal_url, create=False) as journal:
        [entry] = journal.entries(commands=["sale"])
    assert entry.state is State.APPROVED and entry.request_id == sale.request_id
    assert "Traceback" not in bridge.log()


def _cli_sale(
    terminal: Simulator, journal_url: str, home: Path, amount: int
) -> subprocess.Popen[str]:
    env = {**os.environ, "ECRLINK_HOME": str(home), "ECRLINK_CONFIG": str(home / "none.toml")}
    return subprocess.Popen(
        [sys.executable, "-m", "ecrlink", "sale", str(amount), "--json", "-t", terminal.http_url,
         "--journal", journal_url], env=env, cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)


def _wait_for_entry(journal_url: str, amount: int) -> None:
    deadline = time.monotonic() + 15
    with open_journal(journal_url, create=False) as journal:
        while not any(e.amount == amount for e in journal.entries(commands=["sale"])):
            assert time.monotonic() < deadline, "the register's sale never began"
            time.sleep(0.05)


def test_a_bridge_and_a_register_on_another_pc_never_overlap_at_the_terminal(
    make_bridge: Callable[..., BridgeProcess], sim: Simulator, journal_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    bridge = make_bridge(head=f'journal = "{journal_url}"')
    sim.configure(card_delay=3.5)
    with bridge.client() as register:
        # The register on the other PC is at the card: the bridge waits lock_timeout
        # (2 s here) in PostgreSQL's lock queue, then refuses; nothing reaches the terminal.
        other = _cli_sale(sim, journal_url, tmp_path / "pc2", 31_000)
        _wait_for_entry(journal_url, 31_000)
        error(pay(register, 32_000, "overlap-1"), 409, "terminal_busy")
        _, err = other.communicate(timeout=30)
        assert other.returncode == 0, err
        # And the other way round: the bridge's customer is at the card, the register
        # waits for the terminal, then sells.
        sim.configure(card_delay=1.5)
        mine = pay(register, 33_000, "overlap-2").json()
        other = _cli_sale(sim, journal_url, tmp_path / "pc2", 34_000)
        assert final(register, mine["id"])["state"] == "approved"
        _, err = other.communicate(timeout=30)
        assert other.returncode == 0, err
    assert [(s.amount, s.approved) for s in sales(sim)] == [
        (31_000, True), (33_000, True), (34_000, True)]
    with open_journal(journal_url, create=False) as journal:
        entries = list(journal.entries(commands=["sale"]))
    assert [e.amount for e in entries] == [31_000, 33_000, 34_000]
    for before, after in itertools.pairwise(entries):
        # Each written down only once the one before had its answer: one at a time.
        assert after.created_at >= before.updated_at


def _sync(bridge: BridgeProcess) -> dict[str, Any]:
    with bridge.client("manager") as manager:
        reply = manager.get("/v1/sync")
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def _wait_sync(bridge: BridgeProcess, check: Callable[[dict[str, Any]], bool],
               timeout: float = 15) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while not check(status := _sync(bridge)):
        assert time.monotonic() < deadline, status
        time.sleep(0.1)
    return status


def test_serve_ships_to_head_office_and_catches_up_after_an_outage(
    make_bridge: Callable[..., BridgeProcess], sim: Simulator, pg_server: PgServer,  # noqa: F811
    central_url: str,
) -> None:
    secret_url = central_url.replace("postgres@", "postgres:s3cret@")  # trust: ignored
    bridge = make_bridge(head=f'site = "STORE7"\n[central]\nurl = "{secret_url}"',
                         tuning="ship_interval = 0.1\nship_retry_max = 0.5")

    def sell(key: str, amount: int) -> dict[str, Any]:
        with bridge.client() as register:
            created = pay(register, amount, key, invoice=key.upper())
            assert created.status_code == 201, created.text
            return final(register, created.json()["id"])

    in_sync: Callable[[dict[str, Any]], bool] = lambda s: (  # noqa: E731
        s["state"] == "in_sync" and s["shipped"] == s["latest"] and s["latest"] > 0)
    assert sell("ho-1", 41_000)["state"] == "approved"
    assert sell("ho-2", 42_051)["state"] == "declined"
    status = _wait_sync(bridge, in_sync)
    assert (status["enabled"], status["site"], status["reachable"]) == (True, "STORE7", True)
    assert status["central"].startswith("postgresql://postgres:***@")
    assert assert_same(bridge.journal, central_url, "STORE7") == 2

    pg_server.stop()
    try:
        # Head office is gone: sales go on, and the bridge says it cannot ship.
        assert sell("ho-3", 43_000)["state"] == "approved"
        down = _wait_sync(bridge, lambda s: s["state"] == "unreachable")
        assert down["reachable"] is False and down["last_error"]
        assert down["shipped"] < down["latest"]
        assert sell("ho-4", 44_000)["state"] == "approved"
    finally:
        pg_server.start()
    _wait_sync(bridge, in_sync)
    assert assert_same(bridge.journal, central_url, "STORE7") == 4
    log = bridge.log()
    assert "unreachable" in log and "caught up" in log
    assert "s3cret" not in log and "s3cret" not in str(_sync(bridge))
    assert "Traceback" not in log


def test_serve_refuses_to_ship_a_database_journal(
    tmp_path: Path, sim: Simulator, journal_url: str, central_url: str  # noqa: F811
) -> None:
    bridge = BridgeProcess(tmp_path / "b", {"lane1": sim.http_url},
                           head=f'journal = "{journal_url}"\nsite = "STORE7"\n'
                                f'[central]\nurl = "{central_url}"')
    bridge.start(wait=False)
    assert bridge.process is not None
    assert bridge.process.wait(30) == 4
    said = bridge.log().strip().splitlines()
    assert len(said) == 1 and "already a database server" in said[0], said


def test_without_head_office_sync_says_off(
    make_bridge: Callable[..., BridgeProcess], journal_url: str  # noqa: F811
) -> None:
    bridge = make_bridge(environ={"ECRLINK_JOURNAL": journal_url})
    status = _sync(bridge)
    assert (status["enabled"], status["state"]) == (False, "off")
    assert "database server" in status["reason"]
    with bridge.client("register") as register:
        assert register.get("/v1/sync").status_code == 403  # a manager's view
    with httpx.Client(base_url=bridge.url) as anonymous:
        assert anonymous.get("/v1/sync").status_code == 401


def test_a_refusal_by_head_office_shows_as_an_error_and_sales_go_on(
    make_bridge: Callable[..., BridgeProcess], sim: Simulator, central_url: str,  # noqa: F811
) -> None:
    head = f'site = "STORE8"\n[central]\nurl = "{central_url}"'
    tuning = "ship_interval = 0.1\nship_retry_max = 0.5"
    first, second = (make_bridge(head=head, tuning=tuning) for _ in range(2))
    with first.client() as register:
        assert final(register, pay(register, 51_000, "a-1").json()["id"])["state"] == "approved"
    _wait_sync(first, lambda s: s["state"] == "in_sync" and s["shipped"] == s["latest"] > 0)
    # Another journal under the same site name: head office refuses it, the bridge
    # says so (and tries again later), and its sales are not held up.
    with second.client() as register:
        assert final(register, pay(register, 52_000, "b-1").json()["id"])["state"] == "approved"
    refused = _wait_sync(second, lambda s: s["state"] == "error")
    assert "another journal" in refused["last_error"]
    assert refused["shipped"] in (None, 0)  # nothing of this journal reached head office
    assert "another journal" in second.log() and "Traceback" not in second.log()
    with second.client() as register:
        assert final(register, pay(register, 53_000, "b-2").json()["id"])["state"] == "approved"
    assert assert_same(first.journal, central_url, "STORE8") == 1  # head office kept the first
