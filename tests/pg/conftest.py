"""A real PostgreSQL server for the chain tests, started once per session.

Without PostgreSQL's server binaries (or psycopg) these tests skip, saying why; under
``CI=true`` they fail instead: CI must run them (``.ci/run`` installs the binaries).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator

import pytest

from tests.pgserver import PgServer, find_bindir


def _missing(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: these tests must run)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One throwaway server for the session; stopped and removed afterwards."""
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


@pytest.fixture
def central_url(pg_server: PgServer) -> str:
    """A fresh, empty database on the session's server (restarted if a test stopped it)."""
    pg_server.start()
    return pg_server.create_database()
