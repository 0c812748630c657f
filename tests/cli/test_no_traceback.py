"""No traceback ever reaches a cashier: bad arguments, URLs, ports and paths are one
line with their documented exit code (the runner re-raises anything uncaught)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecrlink.cli.exit_codes import ExitStatus

from .conftest import run

BAD = [
    (["sale", "1000", "-t", "http://127.0.0.1:99999"], ExitStatus.BAD_INPUT),
    (["sale", "1000", "-t", "http://127.0.0.1:abc"], ExitStatus.BAD_INPUT),
    (["sale", "1000", "-t", "http://[::1"], ExitStatus.BAD_INPUT),
    (["sale", "1000", "-t", "ftp://pos"], ExitStatus.BAD_INPUT),
    (["sale", "1000", "-t", "serial:"], ExitStatus.BAD_INPUT),
    (["sale", "1000", "-t", "socket://pos"], ExitStatus.BAD_INPUT),
    (["sale", "1.5", "-t", "http://127.0.0.1:1"], ExitStatus.BAD_INPUT),
    (["sale", "1000", "--invoice", "A|B", "-t", "http://127.0.0.1:1"], ExitStatus.BAD_INPUT),
    (["sale", "1000", "--timeout", "-1", "-t", "http://127.0.0.1:1"], ExitStatus.BAD_INPUT),
    (["void", "abc", "-t", "http://127.0.0.1:1"], ExitStatus.BAD_INPUT),
    (["journal", "show", "x"], ExitStatus.BAD_INPUT),
    (["journal", "list", "--since", "yesterday"], ExitStatus.BAD_INPUT),
    (["simulate", "--http", "127.0.0.1:0", "--statement", "/nonexistent/dir/b.csv"],
     ExitStatus.BAD_INPUT),
    (["simulate", "--http", "127.0.0.1:0", "--state", "/nonexistent/dir/s.json"],
     ExitStatus.BAD_INPUT),
    (["simulate", "--http", "not-a-host-port"], ExitStatus.BAD_INPUT),
    (["reconcile", "--bank", "/nonexistent/bank.csv"], ExitStatus.BAD_INPUT),
    (["nosuchcommand"], ExitStatus.BAD_INPUT),
]


@pytest.mark.parametrize(("args", "code"), BAD, ids=lambda v: " ".join(v)
                         if isinstance(v, list) else str(v))
def test_bad_input_is_one_line_with_its_exit_code(args: list[str], code: int) -> None:
    r = run(*args)
    assert r.exit_code == code, (r.exit_code, r.stderr)
    assert "Traceback" not in r.stderr and r.stderr.strip()


def test_a_config_file_that_is_not_text_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.toml"
    config.write_bytes(b"\x00\xff\xfe garbage \x81")
    monkeypatch.setenv("ECRLINK_CONFIG", str(config))
    r = run("sale", "1000")
    assert r.exit_code == ExitStatus.BAD_INPUT and len(r.stderr.strip().splitlines()) == 1


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(amount=st.text(max_size=14), url=st.one_of(
    st.text(max_size=30),
    # loopback only: a random host name would wait for a DNS answer, not test parsing
    st.builds(lambda p, tail: f"http://127.0.0.1:{p}{tail}", st.text(max_size=6),
              st.text(max_size=6)),
))
def test_any_amount_and_url_never_escapes_as_a_traceback(amount: str, url: str) -> None:
    if amount.startswith("-") and amount != "-":
        amount = " " + amount  # an option for Click, not an amount: not this test's business
    r = run("sale", amount, "-t", url or "x", "--no-journal")
    assert r.exit_code in {int(s) for s in ExitStatus}, r.exit_code
    assert "Traceback" not in r.stderr
