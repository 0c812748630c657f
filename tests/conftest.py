"""Shared test helpers: the real-terminal fixtures and a scripted raw TCP server."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.pgserver import PgServer, find_bindir

FIXTURES = Path(__file__).parent / "fixtures"


# --- the user's own data must not change -------------------------------------------------

def _snapshot(directory: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``directory`` with its size and modification time."""
    if not directory.is_dir():
        return {}
    return {str(p.relative_to(directory)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in directory.rglob("*") if p.is_file()}


def pytest_sessionstart(session: pytest.Session) -> None:
    """Note the real data directory (the journal the user's cash register writes)."""
    from ecrlink.journal import default_data_dir

    real = default_data_dir()
    session.config.stash[_REAL_DATA] = (real, _snapshot(real))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if any test wrote into the real data directory."""
    real, before = session.config.stash[_REAL_DATA]
    after = _snapshot(real)
    if after != before:
        changed = sorted(set(before.items()) ^ set(after.items()))
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(
                f"FAILED: the tests changed the user's data directory {real}: "
                f"{[name for name, _ in changed][:10]}", red=True)


_REAL_DATA = pytest.StashKey[tuple[Path, dict[str, tuple[int, int]]]]()


def fixture_bytes(name: str) -> bytes:
    """The exact bytes of one fixture file."""
    return (FIXTURES / name).read_bytes()


class RawServer:
    """A real TCP server on loopback whose reply is scripted per connection.

    ``handler(conn, request_bytes)`` gets the accepted socket after the request head
    was read, and does whatever a misbehaving terminal would. Requests are recorded.
    """

    def __init__(self, handler: Callable[[socket.socket, bytes], None]) -> None:
        self.handler = handler
        self.requests: list[bytes] = []
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            data = b""
            try:
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    data += chunk
            except OSError:
                return
            self.requests.append(data)
            with contextlib.suppress(OSError):
                self.handler(conn, data)

    def close(self) -> None:
        self._stop.set()
        self._sock.close()
        self._thread.join(timeout=2)


def http_reply(body: bytes, status: str = "200 OK", version: str = "HTTP/1.1") -> bytes:
    """A well-formed HTTP reply carrying ``body``."""
    head = (
        f"{version} {status}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


@pytest.fixture
def raw_server() -> Iterator[Callable[[Callable[[socket.socket, bytes], None]], RawServer]]:
    servers: list[RawServer] = []

    def start(handler: Callable[[socket.socket, bytes], None]) -> RawServer:
        server = RawServer(handler)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


@pytest.fixture(scope="session", autouse=True)
def private_session_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A data directory for what module-scoped fixtures open before any test runs
    (their terminals' lock files): never the user's."""
    home = tmp_path_factory.mktemp("ecrlink-session-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ECRLINK_HOME", str(home))
        yield home


@pytest.fixture(autouse=True)
def private_data_dir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Every test gets its own journal and lock directory, never the user's."""
    home = tmp_path_factory.mktemp("ecrlink-home")
    monkeypatch.setenv("ECRLINK_HOME", str(home))
    monkeypatch.delenv("ECRLINK_JOURNAL", raising=False)  # the user's journal, if named
    return home


# --- a real PostgreSQL server, for the chain tests and the PostgreSQL journal ------------

def _missing(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: these tests must run)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One throwaway server for the session; stopped and removed afterwards.

    Without PostgreSQL's server binaries (or psycopg) the tests using it skip, saying
    why; under ``CI=true`` they fail instead: CI must run them (``.ci/run`` installs
    the binaries).
    """
    if importlib.util.find_spec("psycopg") is None:
        _missing("psycopg is not installed: pip install -e '.[dev]'")
    bindir = find_bindir()
    if bindir is None:
        _missing(
            "PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install "
            "postgresql, or set ECRLINK_PG_BINDIR"
        )
        raise AssertionError("unreachable")
    server = PgServer(bindir)
    try:
        server.start()
        yield server
    finally:
        server.destroy()
