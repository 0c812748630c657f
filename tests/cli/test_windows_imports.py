"""Every ``ecrlink`` command works where there are no POSIX terminal modules (Windows).

Windows has no ``termios``, ``tty`` or ``pty``; these tests run the CLI in a child
process where importing them fails, so a module-level import of any of them (or of
something that needs them, like pyserial's POSIX backend) anywhere on the way to a
command shows up here as a crash. ``fcntl`` is deliberately left importable: the
journal lock uses ``fcntl`` on POSIX and ``msvcrt`` on Windows, and with ``fcntl``
blocked on Linux it would take the ``msvcrt`` branch, which cannot import here either.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ecrlink.cli.exit_codes import ExitStatus
from ecrlink.simulator import Simulator

# Installs an import blocker first, then runs the CLI with the child's arguments.
_BOOTSTRAP = """
import sys

class _NoPosixTerminal:
    BLOCKED = frozenset({"termios", "tty", "pty"})

    def find_spec(self, name, path=None, target=None):
        if name in self.BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

for _name in _NoPosixTerminal.BLOCKED:
    sys.modules.pop(_name, None)
sys.meta_path.insert(0, _NoPosixTerminal())
sys.argv = ["ecrlink", *sys.argv[1:]]
from ecrlink.cli import main
main()
"""


@pytest.fixture(scope="module")
def http_sim() -> Iterator[Simulator]:
    """A terminal over HTTP only: the child cannot reach a pty anyway."""
    with Simulator(http=("127.0.0.1", 0), no_answer_timeout=0.5, head_timeout=2.0) as running:
        yield running


def _ecrlink(home: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``ecrlink ARGS`` in a child without termios/tty/pty, with its own ECRLINK_HOME."""
    env = {
        **os.environ, "ECRLINK_HOME": str(home), "ECRLINK_CONFIG": str(home / "absent.toml"),
        "PYTHONIOENCODING": "utf-8", "LANG": "C.UTF-8",
    }
    for name in ("ECRLINK_TERMINAL", "ECRLINK_LANG", "LC_ALL", "LC_MESSAGES"):
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-c", _BOOTSTRAP, *args], capture_output=True, text=True,
        encoding="utf-8", timeout=timeout, env=env,
    )


def test_bootstrap_really_blocks_termios(tmp_path: Path) -> None:
    # Otherwise the other tests here would prove nothing.
    done = subprocess.run(
        [sys.executable, "-c", _BOOTSTRAP.replace("from ecrlink.cli import main\nmain()",
                                                  "import termios")],
        capture_output=True, text=True,
    )
    assert done.returncode != 0 and "No module named 'termios'" in done.stderr


def test_commands_run_without_posix_terminal_modules(
    http_sim: Simulator, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    url = http_sim.http_url
    help_ = _ecrlink(home, "--help")
    assert help_.returncode == 0, help_.stderr
    sale = _ecrlink(home, "sale", "1000", "-t", url, "--json")
    assert sale.returncode == 0, sale.stderr
    receipt = json.loads(sale.stdout)["transaction"]["receipt_no"]
    for args in (
        ("last", "-t", url),
        ("void", receipt, "-t", url),
        ("settle", "-t", url),
        ("journal", "list"),
        ("reconcile", "--help"),
    ):
        done = _ecrlink(home, *args)
        assert done.returncode == 0, (args, done.stderr)
        assert "Traceback" not in done.stderr


def test_demo_falls_back_to_http(tmp_path: Path) -> None:
    done = _ecrlink(tmp_path / "home", "demo", "--lang", "en")
    assert done.returncode == 0, done.stdout + done.stderr
    # No pty could be opened, so the "serial" client is the HTTP one, and it says so.
    assert "No simulated serial port on this platform; HTTP is used instead." in done.stdout
    assert "serial://" not in done.stdout


def test_simulate_serial_says_no_pty(tmp_path: Path) -> None:
    done = _ecrlink(tmp_path / "home", "simulate", "--serial", str(tmp_path / "ecr"))
    assert done.returncode == ExitStatus.BAD_INPUT == 4
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "serial simulation needs a POSIX pseudo-terminal" in lines[0]
    assert "com0com" in lines[0] and "Traceback" not in done.stderr
    assert not (tmp_path / "ecr").exists()
