"""Simulators started in-process on free ports, and a raw view of their serial port."""

from __future__ import annotations

import os
import select
import time
import tty
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from ecrlink import EcrError, ReadError, ReadTimeout, RemoteProtocolError, Result, Terminal
from ecrlink.protocol import VIETNAM_TIME, JsonFramer
from ecrlink.simulator import Simulator

START = datetime(2025, 3, 5, 15, 22, 36, tzinfo=VIETNAM_TIME)


class StepClock:
    """A clock that moves one second per reading: deterministic reply times."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Simulator]:
    """One terminal over HTTP and a pty, instant, with a short no-answer timer."""
    with Simulator(
        http=("127.0.0.1", 0),
        serial=tmp_path / "ecr",
        no_answer_timeout=0.5,
        head_timeout=0.5,
        clock=StepClock(),
    ) as running:
        yield running


class RawSerial:
    """The ECR's end of the simulator's pty, without the client: bytes in, bytes out."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.fd)

    def write(self, data: bytes) -> None:
        os.write(self.fd, data)

    def read_reply(self, timeout: float = 2.0) -> bytes | None:
        """The next complete JSON reply, or None if none comes within ``timeout``."""
        framer = JsonFramer()
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                frames = framer.feed(os.read(self.fd, 4096))
                if frames:
                    return frames[0]
        return None

    def close(self) -> None:
        os.close(self.fd)


@pytest.fixture
def raw_serial(sim: Simulator) -> Iterator[RawSerial]:
    port = RawSerial(sim.serial_url.removeprefix("serial://"))
    yield port
    port.close()


def wait_until(condition: object, timeout: float = 2.0) -> bool:
    """Poll ``condition()`` until true or ``timeout``; return its last value."""
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return bool(condition())


def client(url: str, timeout: float = 2.0) -> Terminal:
    """The project's client with short timeouts and no journal (each test is alone)."""
    return Terminal(
        url, timeout=timeout, status_timeout=1.0, recovery_timeout=3.0, journal=False
    )


def attempt(pos: Terminal, amount: int, **options: str) -> Result | EcrError:
    """A sale whose reply may go wrong: the result, or the transport/protocol error.

    The client either raises (a reply lost or unreadable) or resolves the outcome
    itself with ``last trans``; tests accept both and check the ledger.
    """
    try:
        return pos.sale(amount, **options)
    except (ReadTimeout, ReadError, RemoteProtocolError) as exc:
        return exc
