"""The simulator on an existing serial port (``--serial-port``), over a real linked pair.

On Windows an integrator pairs COM5 <-> COM6 with com0com, the simulator serves on
COM5 and the register opens COM6. Here socat links two pseudo-terminals the same way
(``A`` <-> ``B``): the simulator opens ``A`` by name through pyserial, exactly as it
opens ``COM5``, and the project's client opens ``serial://B``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ecrlink import ConfigError, Outcome, ReadTimeout, Result
from ecrlink.cli.exit_codes import ExitStatus
from ecrlink.protocol import JsonFramer
from ecrlink.simulator import RecordStatus, Simulator
from ecrlink.simulator.serial_port import port_url
from ecrlink.transports import serial_port_from_url
from tests.simulator.conftest import StepClock, attempt, client, wait_until


class Pair:
    """Two pseudo-terminals linked by socat: what one is written, the other reads."""

    def __init__(self, folder: Path, name: str) -> None:
        self.a = folder / f"{name}-A"
        self.b = folder / f"{name}-B"
        self._log = folder / f"{name}-socat.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self._log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    "socat", "-d", "-d",
                    f"pty,raw,echo=0,link={self.a}", f"pty,raw,echo=0,link={self.b}",
                ],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
            )
        if not wait_until(lambda: self.a.is_symlink() and self.b.is_symlink(), 5.0):
            self.stop()
            pytest.fail(f"socat did not link the pair: {self._log.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=5)
        self.proc = None


@pytest.fixture
def make_pair(tmp_path: Path) -> Iterator[Callable[[], Pair]]:
    """Linked pairs, started on demand and stopped at the end of the test."""
    if sys.platform == "win32":
        pytest.skip("socat's pty pair is POSIX; on Windows the pair is com0com's")
    if shutil.which("socat") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("socat is missing: scripts/test must install it (Debian package socat)")
        pytest.skip("socat is not installed (apt-get install socat): no linked serial pair")
    pairs: list[Pair] = []

    def make() -> Pair:
        pair = Pair(tmp_path, f"pair{len(pairs) + 1}")
        pairs.append(pair)
        pair.start()
        return pair

    yield make
    for pair in pairs:
        pair.stop()


@pytest.fixture
def pair(make_pair: Callable[[], Pair]) -> Pair:
    return make_pair()


@pytest.fixture
def sim(pair: Pair) -> Iterator[Simulator]:
    """One terminal serving on ``A``, instant, with a short no-answer timer."""
    with Simulator(
        http=None, serial_port=str(pair.a), no_answer_timeout=0.5, clock=StepClock()
    ) as running:
        yield running


class RawPort:
    """The register's end of the pair, without the client: bytes in, replies out."""

    def __init__(self, path: Path) -> None:
        import serial

        self.port: Any = serial.serial_for_url(str(path), baudrate=115200, timeout=0.02)

    def write(self, data: bytes) -> None:
        self.port.write(data)

    def read_reply(self, timeout: float = 2.0) -> bytes | None:
        """The next complete JSON reply, or None if none comes within ``timeout``."""
        framer = JsonFramer()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            frames = framer.feed(self.port.read(4096))
            if frames:
                return frames[0]
        return None

    def close(self) -> None:
        self.port.close()


@pytest.fixture
def raw(pair: Pair, sim: Simulator) -> Iterator[RawPort]:
    port = RawPort(pair.b)
    yield port
    port.close()


# --- the project's client on the other end -------------------------------------------------


def test_sale_void_last_trans_settle_across_the_pair(pair: Pair, sim: Simulator) -> None:
    assert sim.serial_urls == [f"serial://{pair.a}"]  # the port served, not the register's
    assert sim.serial_devices == [str(pair.a)] and sim.serial_ports == [str(pair.a)]
    with client(f"serial://{pair.b}") as pos:
        sale = pos.sale(2000, invoice="HD9", reference="R9")
        assert sale.outcome is Outcome.APPROVED and sale.transaction is not None
        void = pos.void(sale.transaction.receipt_no or "")
        assert void.outcome is Outcome.APPROVED and void.transaction is not None
        last = pos.last_transaction()
        assert last.transaction is not None
        assert last.transaction.ref_no == void.transaction.ref_no  # the void itself
        assert pos.settle().outcome is Outcome.APPROVED
        assert pos.void(sale.transaction.receipt_no or "").return_code == "12"
    assert [r.status for r in sim.ledger.transactions] == [
        "voided", "approved", "approved", "declined",
    ]


def test_lost_reply_is_recovered_with_last_trans(pair: Pair) -> None:
    # echo firmware: last trans names the sale's requestId, so the client can place it.
    with Simulator(http=None, serial_port=str(pair.a), firmware="echo") as sim:
        with client(f"serial://{pair.b}", timeout=0.5) as pos:
            got = attempt(pos, 3_997, request_id="in-doubt")
            assert isinstance(got, Result) and got.outcome is Outcome.APPROVED
            assert got.transaction is not None
        record = sim.ledger.find("in-doubt")[0]
    assert record.status is RecordStatus.APPROVED and record.delivery == "lost"
    assert got.transaction.ref_no == record.ref_no and got.transaction.amount == 3_997


def test_lost_reply_on_v201_stays_unknown_never_declined(pair: Pair, sim: Simulator) -> None:
    with client(f"serial://{pair.b}", timeout=0.5) as pos:
        got = attempt(pos, 3_997, request_id="in-doubt")
        assert isinstance(got, ReadTimeout) or (
            isinstance(got, Result) and got.outcome in (Outcome.APPROVED, Outcome.UNKNOWN)
        )
        last = pos.last_transaction()
    record = sim.ledger.find("in-doubt")[0]
    assert last.transaction is not None and last.transaction.ref_no == record.ref_no


def test_two_terminals_on_two_pairs(make_pair: Callable[[], Pair]) -> None:
    first, second = make_pair(), make_pair()
    with Simulator(
        http=("127.0.0.1", 0), serial_port=[str(first.a), str(second.a)], terminals=2
    ) as sim:
        with client(f"serial://{second.b}") as pos:
            assert pos.sale(2000).outcome is Outcome.APPROVED
        with client(f"serial://{first.b}") as pos:
            assert pos.sale(1000).outcome is Outcome.APPROVED
        with client(sim.http_urls[1]) as pos:  # HTTP reaches the same second terminal
            assert pos.last_transaction().transaction is not None
        assert [r.amount for r in sim.terminal(0).ledger.transactions] == [1000]
        assert [r.amount for r in sim.terminal(1).ledger.transactions] == [2000]


# --- raw bytes: the same framing and dispatch as the pty ------------------------------------


def test_request_written_in_pieces_is_one_request(raw: RawPort) -> None:
    for piece in (b"/ecr?rqt=a|b", b"&cmd=sale|", b"4200"):
        raw.write(piece)
        time.sleep(0.01)  # shorter than the idle gap: still the same request
    reply = raw.read_reply()
    assert reply is not None and json.loads(reply)["transInfo"]["amount"] == "4200"


def test_overlong_request_is_refused_and_changes_nothing(sim: Simulator, raw: RawPort) -> None:
    raw.write(b"/ecr?rqt=a|b&cmd=sale|" + b"9" * 5000)  # read in many chunks by the thread
    reply = raw.read_reply()
    assert reply is not None and "longer than 1024" in json.loads(reply)["message"]
    assert sim.ledger.transactions == ()


@pytest.mark.parametrize("busy_last_trans", ["refuse", "answer"])
def test_request_during_a_sale(sim: Simulator, raw: RawPort, busy_last_trans: str) -> None:
    raw.write(b"/ecr?rqt=before|b&cmd=sale|1000")
    assert raw.read_reply() is not None
    sim.configure(card_delay=0.4, busy_last_trans=busy_last_trans)
    raw.write(b"/ecr?rqt=sale|b&cmd=sale|2000")
    assert wait_until(lambda: sim.terminal().busy)
    raw.write(b"/ecr?rqt=during|b&cmd=last trans")
    first = raw.read_reply()
    assert first is not None
    doc = json.loads(first)
    if busy_last_trans == "answer":  # answered at once, with the previous sale
        assert doc["requestId"] == "during" and doc["transInfo"]["amount"] == "1000"
        second = raw.read_reply()
        assert second is not None and json.loads(second)["requestId"] == "sale"
    else:  # the line stays quiet for the second request; the sale's reply comes
        assert doc["requestId"] == "sale"
        assert raw.read_reply(0.3) is None
    assert [r.request_id for r in sim.ledger.transactions] == ["before", "sale"]


def test_baud_pacing_takes_the_time_of_the_wire(pair: Pair) -> None:
    with Simulator(http=None, serial_port=str(pair.a), baud_pacing=True):
        port = RawPort(pair.b)
        try:
            port.write(b"/ecr?rqt=a|b&cmd=sale|2000")
            time.sleep(0.05)
            started = time.monotonic()
            reply = port.read_reply()
            took = time.monotonic() - started
        finally:
            port.close()
    assert reply is not None
    wire = len(reply) * 10 / 115200
    assert took >= wire * 0.8, (took, wire)


def test_port_that_fails_is_reopened_and_the_batch_kept(pair: Pair, sim: Simulator) -> None:
    with client(f"serial://{pair.b}") as pos:
        assert pos.sale(1000).outcome is Outcome.APPROVED
    pair.stop()  # the driver goes away: the simulator's reads fail
    pair.start()  # and comes back, the same names on new devices
    with client(f"serial://{pair.b}", timeout=0.5) as pos:

        def sells() -> bool:
            try:
                return pos.sale(2000).outcome is Outcome.APPROVED
            except ReadTimeout:
                return False

        assert wait_until(sells, 5.0)
    assert sim.ledger.transactions[0].amount == 1000
    assert sim.ledger.transactions[-1].amount == 2000


# --- the Python API and the command line ---------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"serial": "/tmp/x", "serial_port": "COM5"}, "not both"),
        ({"serial_port": ["COM5", "COM6"]}, "at most one port per terminal"),
        ({"serial_port": ["COM5", "com5"], "terminals": 2}, "given twice"),
        ({"serial_port": "COM5", "terminals": 2, "http": None}, "one port per terminal"),
        ({"serial_port": [""]}, "non-empty"),
        ({"http": None}, "serial_port=NAME"),
    ],
)
def test_bad_serial_port_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Simulator(**options)


def test_a_port_that_does_not_open_is_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-port"
    with pytest.raises(ConfigError, match=f"cannot open serial port {missing}"):
        Simulator(http=None, serial_port=str(missing)).start()


@given(
    st.one_of(
        st.from_regex(r"\A(COM|com)[1-9][0-9]{0,2}\Z"),
        st.from_regex(r"\A(/[A-Za-z0-9._-]{1,12}){1,4}\Z"),
        st.from_regex(r"\A(socket|rfc2217)://[a-z0-9.-]{1,20}:[1-9][0-9]{0,4}\Z"),
    )
)
def test_the_printed_url_opens_the_same_port(name: str) -> None:
    """What the startup line shows for a port is a URL the client reads back as it."""
    assert serial_port_from_url(port_url(name))[0] == name


def _cli(*args: str, code: str = "") -> list[str]:
    return [sys.executable, "-c", f"{code}from ecrlink.cli import main; main()", *args]


def test_cli_serves_on_a_named_port(pair: Pair) -> None:
    proc = subprocess.Popen(
        _cli("simulate", "--serial-port", str(pair.a), "--card-delay", "0", "--no-baud-pacing"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert f"serial://{pair.a} " in line and "other end of its pair" in line, line
        assert "http://" not in line  # every terminal has a serial line: no HTTP by default
        with client(f"serial://{pair.b}") as pos:
            assert pos.sale(1000).outcome is Outcome.APPROVED
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "<- /ecr?rqt=" in err and "-> reply {" in err


def _one_line_error(args: list[str]) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert done.returncode == ExitStatus.BAD_INPUT, done
    assert "Traceback" not in done.stderr and done.stdout == ""
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_serial_without_a_pty_names_the_windows_way(tmp_path: Path) -> None:
    # Windows as far as the simulator can tell: no os.openpty, no tty/termios/pty/fcntl.
    windows = (
        "import os, sys; del os.openpty; "
        "sys.modules.update(dict.fromkeys(('termios', 'tty', 'pty', 'fcntl'))); "
    )
    line = _one_line_error(_cli("simulate", "--serial", str(tmp_path / "ecr"), code=windows))
    for text in ("POSIX pseudo-terminal", "com0com", "--serial-port COM5", "serial:COM6", "HTTP"):
        assert text in line, line
    assert not (tmp_path / "ecr").exists()


def test_cli_port_that_does_not_open_is_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-port"
    line = _one_line_error(_cli("simulate", "--serial-port", str(missing)))
    assert f"cannot open serial port {missing}" in line


def test_cli_serial_and_serial_port_together_are_refused(tmp_path: Path) -> None:
    done = subprocess.run(
        _cli("simulate", "--serial", str(tmp_path / "ecr"), "--serial-port", "COM5"),
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == ExitStatus.BAD_INPUT and "Traceback" not in done.stderr
    assert "not both" in done.stderr
