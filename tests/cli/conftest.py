"""A simulator shared by the CLI tests, and helpers to run ``ecrlink`` two ways."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from ecrlink.cli import cli
from ecrlink.simulator import Simulator


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    """One instant terminal over HTTP and a serial pty, for a whole test module."""
    with Simulator(
        http=("127.0.0.1", 0), serial=True, no_answer_timeout=0.5, head_timeout=2.0
    ) as running:
        yield running


@pytest.fixture(autouse=True)
def home(private_data_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """ECRLINK_HOME (from the root conftest), no config file, English, no ambient terminal."""
    monkeypatch.setenv("ECRLINK_CONFIG", str(tmp_path / "absent.toml"))
    for name in ("ECRLINK_TERMINAL", "ECRLINK_LANG", "LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LANG", "C.UTF-8")
    return private_data_dir


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    """``ecrlink ARGS`` through Click's runner (stdout and stderr kept apart)."""
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


@dataclass
class Proc:
    """What a real ``python -m ecrlink`` process did."""

    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        """stdout parsed as one JSON document."""
        return json.loads(self.stdout)


def run_process(*args: str, timeout: float = 30) -> Proc:
    """``python -m ecrlink ARGS`` as a real subprocess, in this test's environment."""
    done = subprocess.run(
        [sys.executable, "-m", "ecrlink", *args],
        capture_output=True, text=True, encoding="utf-8", timeout=timeout,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
    )
    return Proc(done.returncode, done.stdout, done.stderr)
