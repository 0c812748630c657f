"""``ecrlink journal sync`` as a real process: what it says, its exit codes, its config."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ecrlink.simulator import Simulator

from .chain import assert_same, local_state, open_pos, sell


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("store") / "store.sqlite3"
    with Simulator(http=("127.0.0.1", 0)) as sim, open_pos(sim.http_url, path, "QUAY1") as pos:
        sell(pos, 6)
    yield path


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "ECRLINK_CONFIG": str(tmp_path / "config.toml"),
            "ECRLINK_LANG": "en", "PYTHONIOENCODING": "utf-8"}


def ecrlink(
    env: dict[str, str], *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ecrlink", *args], capture_output=True, text=True,
        encoding="utf-8", timeout=timeout, env=env, stdin=subprocess.DEVNULL,
    )


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_sync_once_ships_and_says_how_far(
    journal: Path, central_url: str, env: dict[str, str]
) -> None:
    done = ecrlink(env, "journal", "sync", "--to", central_url, "--site", "STORE42",
                   "--journal", str(journal), "--batch", "4")
    assert done.returncode == 0, done.stderr
    changes = local_state(journal)[1]
    assert done.stdout.strip() == (
        f"Shipped {len(changes)} changes (6 entries) to head office for STORE42; "
        f"in sync up to change {changes[-1].id}."
    )
    assert_same(journal, central_url, "STORE42")
    again = ecrlink(env, "journal", "sync", "--to", central_url, "--site", "STORE42",
                    "--journal", str(journal), "--json")
    assert json.loads(again.stdout) == {"site": "STORE42", "changes": 0, "entries": 0,
                                        "batches": 0, "shipped": changes[-1].id}


def test_site_and_url_from_the_config_file(
    journal: Path, central_url: str, env: dict[str, str]
) -> None:
    Path(env["ECRLINK_CONFIG"]).write_text(
        f'site = "STORE7"\n\n[central]\nurl = "{central_url}"\n', encoding="utf-8"
    )
    done = ecrlink(env, "journal", "sync", "--journal", str(journal))
    assert done.returncode == 0, done.stderr
    assert_same(journal, central_url, "STORE7")


def test_unreachable_head_office_is_a_one_line_journal_error(
    journal: Path, env: dict[str, str]
) -> None:
    url = f"postgresql://store:s3cret@127.0.0.1:{_closed_port()}/ecrlink"
    done = ecrlink(env, "journal", "sync", "--to", url, "--site", "STORE42",
                   "--journal", str(journal))
    assert done.returncode == 8
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith("ecrlink: Journal error: central journal postgresql://store:***@")
    assert "cannot connect" in line and "s3cret" not in line


@pytest.mark.parametrize(("args", "field"), [
    (["--site", "STORE 42"], "--site"),
    (["--site", ""], "--site"),
    (["--to", "mysql://x/y"], "--to"),
])
def test_bad_site_or_url_is_bad_input(
    journal: Path, env: dict[str, str], args: list[str], field: str
) -> None:
    base = {"--to": "postgresql://127.0.0.1/x", "--site": "STORE42"}
    base.update(zip(args[::2], args[1::2], strict=True))
    done = ecrlink(env, "journal", "sync", *[x for kv in base.items() for x in kv],
                   "--journal", str(journal))
    assert done.returncode == 4, done.stderr
    assert len(done.stderr.splitlines()) == 1 and field in done.stderr


def test_follow_keeps_retrying_and_says_so(journal: Path, env: dict[str, str]) -> None:
    url = f"postgresql://store@127.0.0.1:{_closed_port()}/ecrlink"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ecrlink", "journal", "sync", "--to", url, "--site",
         "STORE42", "--journal", str(journal), "--follow", "--retry-max", "0.3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        stdin=subprocess.DEVNULL,
    )
    try:
        assert proc.stderr is not None
        lines = [proc.stderr.readline() for _ in range(4)]
        assert proc.poll() is None  # still trying
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert lines[0].startswith("ecrlink: Following ")
    retries = lines[1:]
    assert all("head office unreachable" in line and "retrying in" in line
               for line in retries), retries
    assert proc.returncode == 0 and out == ""  # SIGTERM: a clean stop


def test_a_sale_never_loads_psycopg() -> None:
    code = (
        "import sys, ecrlink, ecrlink.cli.app, ecrlink.journal.sync;"
        "print(sorted(m for m in sys.modules if m.startswith('psycopg')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.strip() == "[]"


def test_follow_stops_on_sigterm_within_its_interval(
    journal: Path, central_url: str, env: dict[str, str]
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ecrlink", "journal", "sync", "--to", central_url, "--site",
         "STORE42", "--journal", str(journal), "--follow", "--interval", "0.2", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        stdin=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        shipped = json.loads(proc.stdout.readline())
        assert shipped["site"] == "STORE42" and shipped["changes"] > 0
        assert_same(journal, central_url, "STORE42")
    finally:
        started = time.monotonic()
        proc.terminate()
        proc.communicate(timeout=10)
    assert proc.returncode == 0 and time.monotonic() - started < 5


def test_follow_waits_for_a_new_stores_first_payment(
    tmp_path: Path, central_url: str, env: dict[str, str]
) -> None:
    path = tmp_path / "new-store.sqlite3"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ecrlink", "journal", "sync", "--to", central_url, "--site",
         "STORE9", "--journal", str(path), "--follow", "--interval", "0.1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        stdin=subprocess.DEVNULL,
    )
    try:
        assert proc.stderr is not None and proc.stdout is not None
        assert proc.stderr.readline().startswith("ecrlink: Following ")
        assert "no journal yet" in proc.stderr.readline()
        with Simulator(http=("127.0.0.1", 0)) as sim, open_pos(sim.http_url, path, "Q") as pos:
            sell(pos, 2)
        assert "shipped" in proc.stdout.readline()
        deadline = time.monotonic() + 30
        while True:  # the second sale may come in the next poll
            try:
                assert_same(path, central_url, "STORE9")
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
