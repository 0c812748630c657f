"""The configuration file, the choice of terminal and language, and the exit-code table."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import click
import pytest
from rich.console import Console

from ecrlink import (
    ConfigError,
    ConnectError,
    FieldError,
    InDoubtPending,
    JournalError,
    ReadTimeout,
    RemoteProtocolError,
    TerminalBusy,
)
from ecrlink.cli.config import Config, config_path, load_config, resolve_terminal
from ecrlink.cli.exit_codes import ExitStatus, exit_status_for
from ecrlink.cli.messages import MESSAGES, default_lang
from ecrlink.cli.options import Environment, Session
from ecrlink.simulator import Simulator

from .conftest import run


def _config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(body, encoding="utf-8")
    monkeypatch.setenv("ECRLINK_CONFIG", str(path))
    return path


def test_named_terminal_from_the_config_file(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _config(tmp_path, monkeypatch, f'''
default_terminal = "lane2"

[terminals.lane1]
url = "{sim.http_url}"
client_id = "QUAY1"
timeout = 30

[terminals.lane2]
url = "{sim.serial_url}"
''')
    r = run("sale", "1000", "--json", "--terminal", "lane1")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["client_id"] == "QUAY1"
    assert sim.ledger.transactions[-1].client_id == "QUAY1"
    r = run("last", "--json")  # default_terminal: lane2, over serial
    assert r.exit_code == 0, r.stderr
    r = run("sale", "1000", "--json", env={"ECRLINK_TERMINAL": "lane1"})
    assert json.loads(r.stdout)["client_id"] == "QUAY1"


def test_unknown_terminal_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _config(tmp_path, monkeypatch, '[terminals.lane1]\nurl = "http://192.0.2.1"\n')
    r = run("sale", "1000", "-t", "lane7")
    assert r.exit_code == ExitStatus.BAD_INPUT
    assert "lane7" in r.stderr and "lane1" in r.stderr


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("[terminals.lane1\n", "not valid TOML"),
        ('[terminals.lane1]\nurl = 5\n', "url"),
        ('[terminals.lane1]\nurl = "http://x"\ntimeuot = 3\n', "timeuot"),
        ('[terminals.lane1]\nurl = "http://x"\ntimeout = -1\n', "timeout"),
        ('default_terminal = 3\n', "default_terminal"),
        ('terminal = "x"\n', "terminal"),
    ],
)
def test_broken_config_is_bad_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str, words: str
) -> None:
    path = _config(tmp_path, monkeypatch, body)
    r = run("sale", "1000", "-t", "http://192.0.2.1")
    assert r.exit_code == ExitStatus.BAD_INPUT
    assert str(path) in r.stderr and words in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_config_path_per_platform() -> None:
    assert config_path({"ECRLINK_CONFIG": "/x/c.toml"}) == Path("/x/c.toml")
    assert config_path({"HOME": "/h"}, "linux") == Path("/h/.config/ecrlink/config.toml")
    assert config_path({"XDG_CONFIG_HOME": "/x", "HOME": "/h"}, "linux") == Path(
        "/x/ecrlink/config.toml"
    )
    assert config_path({"APPDATA": "C:/AD", "HOME": "/h"}, "win32") == Path(
        "C:/AD/ecrlink/config.toml"
    )
    assert config_path({"HOME": "/h"}, "darwin") == Path(
        "/h/Library/Application Support/ecrlink/config.toml"
    )


def test_resolve_terminal_precedence(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('default_terminal = "a"\n[terminals.a]\nurl = "http://a"\n'
                    '[terminals.b]\nurl = "serial:///dev/ttyUSB0"\n')
    config = load_config(path)
    assert resolve_terminal(None, {}, config).url == "http://a"
    assert resolve_terminal(None, {"ECRLINK_TERMINAL": "b"}, config).url.startswith("serial")
    assert resolve_terminal("http://c", {"ECRLINK_TERMINAL": "b"}, config).url == "http://c"
    assert resolve_terminal("COM3", {}, config).url == "COM3"
    with pytest.raises(ConfigError, match="ecrlink simulate"):
        resolve_terminal(None, {}, Config(path))


def test_default_language() -> None:
    assert default_lang({}) == "en"
    assert default_lang({"LANG": "vi_VN.UTF-8"}) == "vi"
    assert default_lang({"LC_ALL": "en_US.UTF-8", "LANG": "vi_VN"}) == "en"
    assert default_lang({"ECRLINK_LANG": "vi", "LANG": "en_US"}) == "vi"


def test_every_message_has_both_languages() -> None:
    for key, (vi, en) in MESSAGES.items():
        assert vi and en, key


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (FieldError("amount", "must be greater than 0"), ExitStatus.BAD_INPUT),
        (ConfigError("x"), ExitStatus.BAD_INPUT),
        (click.UsageError("x"), ExitStatus.BAD_INPUT),
        (ConnectError("x"), ExitStatus.UNREACHABLE),
        (TerminalBusy("x"), ExitStatus.BUSY),
        (InDoubtPending("x"), ExitStatus.IN_DOUBT_PENDING),
        (JournalError("x"), ExitStatus.JOURNAL_ERROR),
        (RemoteProtocolError("x"), ExitStatus.ERROR),
        (ReadTimeout("x"), ExitStatus.ERROR),
        (KeyboardInterrupt(), ExitStatus.UNKNOWN),
        (RuntimeError("x"), ExitStatus.ERROR),
    ],
)
def test_exit_status_for(exc: BaseException, status: ExitStatus) -> None:
    assert exit_status_for(exc) is status


def test_live_status_line_on_a_terminal() -> None:
    buffer = io.StringIO()
    session = Session(env=Environment(stdout=io.StringIO(), stderr=buffer), lang="vi")
    session.err = Console(file=buffer, force_terminal=True, width=80)
    with session.waiting("waiting_card"):
        time.sleep(0.5)
    assert "Đang chờ khách hàng quẹt/chạm thẻ" in buffer.getvalue()
    quiet = Session(env=Environment(stdout=io.StringIO(), stderr=io.StringIO()), lang="en",
                    json=True)
    with quiet.waiting("waiting_card"):
        pass
    assert quiet.env.err.getvalue() == ""  # type: ignore[attr-defined]


def test_reconcile_uses_the_one_exit_code_table() -> None:
    assert run("reconcile", "--bogus").exit_code == ExitStatus.BAD_INPUT


@pytest.mark.parametrize(("encoding", "bom"), [
    ("utf-8", b""), ("utf-8", b"\xef\xbb\xbf"), ("utf-16-le", b"\xff\xfe"),
    ("utf-16-be", b"\xfe\xff"),
])
def test_config_saved_by_notepad_is_read(tmp_path: Path, encoding: str, bom: bytes) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(bom + 'default_terminal = "quầy1"\n'.encode(encoding))
    assert load_config(path).default_terminal == "quầy1"


def test_config_in_an_ansi_code_page_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes('default_terminal = "đu1"\n'.encode("cp1258"))
    with pytest.raises(ConfigError, match="not UTF-8 text; save it as UTF-8"):
        load_config(path)
