"""``ecrlink simulate`` as a user runs it: a process that prints where it listens."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from ecrlink.cli import cli
from ecrlink.cli.exit_codes import ExitStatus
from tests.simulator.conftest import client


def test_simulate_serves_until_sigterm(tmp_path: Path) -> None:
    statement = tmp_path / "bank.csv"
    proc = subprocess.Popen(
        [
            sys.executable, "-c", "from ecrlink.cli import main; main()", "simulate",
            "--http", "127.0.0.1:0", "--serial", str(tmp_path / "ecr"), "--terminals", "2",
            "--card-delay", "0", "--no-baud-pacing", "--state", str(tmp_path / "state.json"),
            "--statement", str(statement), "--script", "decline:05",
        ],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(2)]
        urls = [re.search(r"http://\S+", line) for line in lines]
        assert all(urls), lines
        assert f"serial://{tmp_path}/ecr " in lines[0] and f"serial://{tmp_path}/ecr-2" in lines[1]
        assert "TID 31002095" in lines[0] and "TID 31002096" in lines[1]
        with client(urls[0].group() if urls[0] else "") as pos:
            assert pos.sale(1000).return_code == "05"  # --script
            assert pos.sale(2000).return_code == "00"
            pos.settle()
        with client(f"serial://{tmp_path}/ecr-2") as pos:
            assert pos.sale(3000).return_code == "05"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "<- /ecr?rqt=" in err and "-> reply {" in err  # each request and reply logged
    assert statement.read_text(encoding="utf-8-sig").count("\n") == 2  # header + one sale
    assert not (tmp_path / "ecr").exists()


def test_bad_options_are_refused() -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["simulate", "--http", "localhost:http"])
    assert result.exit_code == ExitStatus.BAD_INPUT and "HOST:PORT" in result.output
    result = runner.invoke(cli, ["simulate", "--terminals", "0"])
    assert result.exit_code == ExitStatus.BAD_INPUT
    result = runner.invoke(cli, ["simulate", "--script", "explode"])
    assert result.exit_code == ExitStatus.BAD_INPUT and "unknown outcome" in result.output


def test_port_in_use_is_bad_input() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(cli, ["simulate", "--http", f"127.0.0.1:{port}"])
    assert result.exit_code == ExitStatus.BAD_INPUT
    assert "cannot listen" in result.output


def test_help_documents_the_magic_amounts() -> None:
    result = CliRunner().invoke(cli, ["simulate", "--help"])
    assert result.exit_code == 0
    for text in ("…051 decline:51", "…998 no_answer", "…997 lost_reply", "/_sim/script"):
        assert text in result.output


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ([], {"firmware": "v201", "on_hangup": "finish", "busy_last_trans": "refuse"}),
        (
            ["--firmware", "echo", "--on-hangup", "cancel", "--busy-last-trans", "answer"],
            {"firmware": "echo", "on_hangup": "cancel", "busy_last_trans": "answer"},
        ),
    ],
)
def test_behaviour_flags_reach_every_terminal(flags: list[str], expected: dict[str, str]) -> None:
    proc = subprocess.Popen(
        [
            sys.executable, "-c", "from ecrlink.cli import main; main()", "simulate",
            "--http", "127.0.0.1:0", "--terminals", "2", "-q", *flags,
        ],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(2)]
        for line in lines:
            url = re.search(r"http://\S+", line)
            assert url is not None, lines
            settings = httpx.get(url.group() + "/_sim/config").json()["settings"]
            assert expected.items() <= settings.items()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err


@pytest.mark.parametrize(
    ("flag", "value", "allowed"),
    [
        ("--firmware", "v202", "'v201', 'echo'"),
        ("--on-hangup", "ignore", "'finish', 'cancel'"),
        ("--busy-last-trans", "maybe", "'refuse', 'answer'"),
    ],
)
def test_bad_behaviour_flags_are_refused(flag: str, value: str, allowed: str) -> None:
    result = CliRunner().invoke(cli, ["simulate", flag, value])
    assert result.exit_code == ExitStatus.BAD_INPUT
    assert flag in result.output and allowed in result.output
