"""Without PostgreSQL's binaries the chain tests skip, saying why; under CI=true they fail."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ONE_TEST = "tests/pg/test_sync.py::test_head_office_reads_without_creating_anything"


def _pytest(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "CI"}
    environ.update(env, ECRLINK_PG_BINDIR=str(tmp_path / "no-postgres-here"))
    return subprocess.run(
        [sys.executable, "-m", "pytest", ONE_TEST, "-q", "-rs", "-p", "no:cacheprovider"],
        cwd=ROOT, env=environ, capture_output=True, text=True, timeout=120,
    )


def test_without_binaries_the_tests_skip_with_the_reason(tmp_path: Path) -> None:
    done = _pytest(tmp_path)
    assert done.returncode == 0, done.stdout
    assert "1 skipped" in done.stdout
    assert "PostgreSQL server binaries (initdb, pg_ctl) not found" in done.stdout


def test_under_ci_missing_binaries_fail(tmp_path: Path) -> None:
    done = _pytest(tmp_path, CI="true")
    assert done.returncode == 1, done.stdout
    assert "CI=true: these tests must run" in done.stdout
