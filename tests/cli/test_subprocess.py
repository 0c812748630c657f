"""``python -m ecrlink`` as a real process against the in-process simulator."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from ecrlink.cli.exit_codes import ExitStatus
from ecrlink.journal import Journal, State, default_journal_path
from ecrlink.simulator import Simulator

from .conftest import run_process


def test_sale_over_http_json(sim: Simulator) -> None:
    p = run_process("sale", "150000", "--invoice", "HD0001", "--json", "-t", sim.http_url)
    assert p.exit_code == 0, p.stderr
    data = p.json()
    assert data["outcome"] == "approved" and data["transaction"]["amount"] == 150_000
    assert p.stderr == ""


def test_sale_over_serial_in_vietnamese(sim: Simulator) -> None:
    p = run_process("sale", "85000", "--lang", "vi", "-t", sim.serial_url)
    assert p.exit_code == 0, p.stderr
    assert "GIAO DỊCH THÀNH CÔNG" in p.stdout and "85.000 VND" in p.stdout
    assert "Mã chuẩn chi" in p.stdout


def test_decline_and_cancel_exit_codes(sim: Simulator) -> None:
    declined = run_process("sale", "120051", "--json", "-t", sim.serial_url)
    assert declined.exit_code == ExitStatus.DECLINED
    assert declined.json()["return_code"] == "51"
    canceled = run_process("sale", "50999", "-t", sim.http_url, "--lang", "vi")
    assert canceled.exit_code == ExitStatus.CANCELED
    assert "GIAO DỊCH ĐÃ HỦY" in canceled.stdout


def test_bad_input_one_line_on_stderr(sim: Simulator) -> None:
    p = run_process("sale", "-5", "-t", sim.http_url)
    assert p.exit_code == ExitStatus.BAD_INPUT
    assert p.stdout == ""
    assert p.stderr.strip().splitlines() == [
        "ecrlink: Bad input, nothing sent: amount: must be greater than 0"
    ]


def test_void_settle_last_journal(sim: Simulator) -> None:
    sale = run_process("sale", "64000", "--json", "-t", sim.http_url).json()
    receipt = sale["transaction"]["receipt_no"]
    assert run_process("void", receipt, "--json", "-t", sim.http_url).exit_code == 0
    assert run_process("last", "--json", "-t", sim.serial_url).exit_code == 0
    assert run_process("settle", "--json", "-t", sim.http_url).json()["outcome"] == "approved"
    rows = run_process("journal", "list", "--json").json()
    assert [r["command"] for r in rows] == ["sale", "void", "last trans", "settle"]


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process")
def test_ctrl_c_during_a_sale_leaves_it_in_doubt(sim: Simulator) -> None:
    # …998: the terminal never answers, so the process is waiting when Ctrl-C comes.
    child = subprocess.Popen(
        [sys.executable, "-m", "ecrlink", "sale", "30998", "--lang", "en", "-t", sim.http_url],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8",
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
    )
    journal = Journal(default_journal_path())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # wait until the sale is journaled (so, sent)
        if default_journal_path().exists() and list(journal.entries()):
            break
        time.sleep(0.05)
    time.sleep(0.2)
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=10)
    assert child.returncode == ExitStatus.UNKNOWN, err
    assert "IN DOUBT" in err and "ecrlink journal recover" in err
    [entry] = journal.entries()
    assert entry.state is State.IN_DOUBT


def test_demo_passes() -> None:
    p = run_process("demo", "--lang", "en")
    assert p.exit_code == 0, p.stdout + p.stderr
    assert "Summary" in p.stdout and "did what they should" in p.stdout
    assert "✗" not in p.stdout


def test_demo_json_in_vietnamese() -> None:
    p = run_process("demo", "--json", "--lang", "vi")
    assert p.exit_code == 0, p.stderr
    steps = p.json()
    assert all(s["ok"] for s in steps) and len(steps) >= 8
    assert any("cổng nối tiếp" in s["step"] for s in steps)
    assert json.dumps(steps, ensure_ascii=False).count("approved") >= 4
