"""A payment's exit code depends only on the payment: not on the console's code page,
nor on a reader that closes the pipe early. Real processes, real pipes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ecrlink.cli.exit_codes import ExitStatus
from ecrlink.journal import Journal, State, default_journal_path
from ecrlink.simulator import Simulator


def ecrlink(*args: str, encoding: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "ecrlink", *args], capture_output=True, timeout=60,
        env={**os.environ, "PYTHONIOENCODING": encoding, "PYTHONUTF8": "0"},
    )


@pytest.mark.parametrize("encoding", ["cp1258", "ascii", "latin-1"])
def test_json_output_is_ascii_and_the_sale_exits_0_on_any_code_page(
    sim: Simulator, encoding: str
) -> None:
    sale = ecrlink("sale", "1000", "--lang", "vi", "--json", "-t", sim.http_url,
                   encoding=encoding)
    assert sale.returncode == 0, sale.stderr
    assert sale.stdout.isascii()
    data = json.loads(sale.stdout)
    assert data["approved"] and data["message"] == "Giao dịch thành công"  # escaped, intact
    receipt = data["transaction"]["receipt_no"]
    void = ecrlink("void", receipt, "--json", "-t", sim.http_url, encoding=encoding)
    assert void.returncode == 0, void.stderr
    assert json.loads(void.stdout)["transaction"]["trans_name"] == "HỦY THANH TOÁN"


@pytest.mark.parametrize("encoding", ["cp1258", "ascii"])
def test_peoples_output_degrades_instead_of_failing(sim: Simulator, encoding: str) -> None:
    shown = ecrlink("sale", "2000", "--lang", "vi", "-t", sim.http_url, encoding=encoding)
    assert shown.returncode == 0, shown.stderr
    assert b"Traceback" not in shown.stderr
    assert b"GIAO D" in shown.stdout  # what the code page cannot show became "?"


def test_a_reader_that_closes_the_pipe_changes_nothing(sim: Simulator) -> None:
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first byte: `ecrlink sale ... | head -0`
    try:
        done = subprocess.run(
            [sys.executable, "-m", "ecrlink", "sale", "3000", "--invoice", "HD-PIPE",
             "-t", sim.http_url],
            stdout=write, stderr=subprocess.PIPE, timeout=60,
            env={**os.environ, "PYTHONIOENCODING": "utf-8"},
        )
    finally:
        os.close(write)
    assert done.returncode == ExitStatus.OK, done.stderr
    assert b"Traceback" not in done.stderr and b"Broken pipe" not in done.stderr
    [entry] = [e for e in Journal(default_journal_path()).entries() if e.invoice == "HD-PIPE"]
    assert entry.state is State.APPROVED
