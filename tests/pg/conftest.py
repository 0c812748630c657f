"""The chain tests' databases, on the session's PostgreSQL server (``pg_server``,
``tests/conftest.py``: skipped without PostgreSQL's binaries, failed under CI=true)."""

from __future__ import annotations

import pytest

from tests.pgserver import PgServer


@pytest.fixture
def central_url(pg_server: PgServer) -> str:
    """A fresh, empty database on the session's server (restarted if a test stopped it)."""
    pg_server.start()
    return pg_server.create_database()
