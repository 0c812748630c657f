"""API keys: made on first start when the config names none, hashed at rest; the
network needs configured keys; the [serve] section is checked like the rest."""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecrlink import ConfigError
from ecrlink.bridge.config import hash_key, is_loopback, parse_listen, parse_serve

from .conftest import BridgeProcess


def test_without_keys_a_manager_key_is_made_once_and_kept_only_as_a_hash(
    make_bridge: Callable[..., BridgeProcess],
) -> None:
    bridge = make_bridge(keys=False)
    printed = re.findall(r"keep it: (\S+)", bridge.output())
    assert len(printed) == 1
    key = printed[0]
    stored = bridge.home / "bridge-keys.json"
    assert stored.stat().st_mode & 0o777 == 0o600
    text = stored.read_text()
    assert key not in text
    assert json.loads(text)["keys"][0]["key_sha256"] == hashlib.sha256(key.encode()).hexdigest()
    bridge.manager_key = key
    with bridge.client("manager") as manager:
        assert manager.get("/v1/terminals").status_code == 200
    bridge.restart()
    assert len(re.findall(r"keep it:", bridge.output())) == 1  # not shown again
    with bridge.client("manager") as manager:
        assert manager.get("/v1/terminals").status_code == 200
    assert key not in bridge.log()


def test_listening_beyond_loopback_needs_configured_keys(
    make_bridge: Callable[..., BridgeProcess],
) -> None:
    bridge = make_bridge(keys=False, start=False, listen="0.0.0.0:8765")
    done = subprocess.run(
        [sys.executable, "-m", "ecrlink", "serve", "--config", str(bridge.config_path)],
        env=bridge.env(), capture_output=True, text=True, timeout=30)
    assert done.returncode == 4
    assert "[[serve.keys]]" in done.stderr and "Traceback" not in done.stderr
    assert not (bridge.home / "bridge-keys.json").exists()


def test_bad_config_and_options_are_one_line_errors(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    env = {**os.environ, "ECRLINK_HOME": str(tmp_path / "home")}
    cases = [
        ('[terminals.l]\nurl = "http://127.0.0.1:9"\n[serve]\nlisten = "nowhere"\n', [],
         "HOST:PORT"),
        ('[terminals.l]\nurl = "http://127.0.0.1:9"\n[serve]\nwebhook_url = "http://x"\n',
         [], "webhook_secret"),
        ('[terminals.l]\nurl = "http://127.0.0.1:9"\n[serve]\ncolour = 1\n', [], "colour"),
        ("[serve]\n", [], "no terminals"),
        ('[terminals.l]\nurl = "http://127.0.0.1:9"\n', ["--listen", "127.0.0.1:99999"],
         "port"),
        ('[terminals.l]\nurl = "http://127.0.0.1:9"\n', ["--journal", "mysql://x/y"],
         "a file or a postgresql:// URL"),
        ('[central]\nurl = "postgresql://ho/e"\n[terminals.l]\nurl = "http://127.0.0.1:9"\n',
         [], "site: none given"),
        # Checked before the database is opened: refused even with the server away.
        ('site = "S1"\n[central]\nurl = "postgresql://ho/e"\n[terminals.l]\n'
         'url = "http://127.0.0.1:9"\n', ["--journal", "postgresql://u:pw@x/y"],
         "already a database server"),
    ]
    for text, options, expected in cases:
        config.write_text(text)
        done = subprocess.run(
            [sys.executable, "-m", "ecrlink", "serve", "--config", str(config), *options],
            env=env, capture_output=True, text=True, timeout=30)
        assert done.returncode == 4, (text, done.stderr)
        assert expected in done.stderr and len(done.stderr.strip().splitlines()) == 1, \
            done.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config.write_text('[terminals.l]\nurl = "http://127.0.0.1:9"\n')
        busy = subprocess.run(
            [sys.executable, "-m", "ecrlink", "serve", "--config", str(config), "--listen",
             f"127.0.0.1:{taken.getsockname()[1]}"],
            env=env, capture_output=True, text=True, timeout=30)
    assert busy.returncode == 4 and "cannot listen" in busy.stderr
    assert len(busy.stderr.strip().splitlines()) == 1, busy.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "ecrlink", "serve", "--config", str(tmp_path / "nope.toml")],
        env=env, capture_output=True, text=True, timeout=30)
    assert missing.returncode == 4 and "no such file" in missing.stderr


def test_serve_section_parsing() -> None:
    path = Path("config.toml")
    parsed = parse_serve(path, {
        "listen": "[::1]:9000", "allowed_origins": ["https://pos.example.vn/"],
        "webhook_url": "https://erp/hook", "webhook_secret": "s", "lang": "en",
        "keys": [{"name": "a", "key": "k" * 16, "role": "register"},
                 {"name": "b", "key_sha256": "AB" * 32, "role": "manager", "lang": "vi"}],
        "tuning": {"webhook_backoff": [2, 1], "event_retention_hours": 24},
    })
    assert parse_listen(parsed.listen) == ("::1", 9000)
    assert parsed.allowed_origins == ("https://pos.example.vn",)
    assert parsed.keys[0].key_sha256 == hash_key("k" * 16)
    assert parsed.keys[1].key_sha256 == "ab" * 32
    assert parsed.tuning.webhook_backoff == (2.0, 2.0)
    assert parsed.bridge_file is None and parsed.tuning.ship_retry_max == 30.0
    placed = parse_serve(Path("/etc/ecrlink/config.toml"), {
        "bridge_file": "data/bridge.sqlite3", "tuning": {"ship_interval": 0.2}})
    # Beside the config file, whatever the service's working directory.
    assert placed.bridge_file == Path("/etc/ecrlink/data/bridge.sqlite3")
    assert placed.tuning.ship_interval == 0.2
    for bad, words in (
        ({"bridge_file": "postgresql://x@y/z"}, "bridge_file must be a file path"),
        ({"bridge_file": ""}, "bridge_file"),
        ({"tuning": {"ship_retry_max": -1}}, "ship_retry_max"),
        ({"keys": [{"name": "a", "key": "short", "role": "register"}]}, "16"),
        ({"keys": [{"name": "a", "key": "k" * 16, "key_sha256": "a" * 64,
                    "role": "register"}]}, "exactly one"),
        ({"keys": [{"name": "a", "key": "k" * 16, "role": "admin"}]}, "role"),
        ({"keys": [{"name": "a", "key": "k" * 16, "role": "register"}] * 2}, "same name"),
        ({"allowed_origins": "https://x"}, "allowed_origins"),
        ({"tuning": {"event_retention_hours": 2}}, "24"),
        ({"tuning": {"heartbeat": 0}}, "heartbeat"),
        ({"lang": "fr"}, "lang"),
    ):
        with pytest.raises(ConfigError, match=words):
            parse_serve(path, bad)


@settings(max_examples=200)
@given(st.text(max_size=40))
def test_listen_addresses_parse_or_fail_with_a_config_error(text: str) -> None:
    try:
        host, port = parse_listen(text)
    except ConfigError as exc:
        assert "listen" in str(exc)
    else:
        assert 0 < port < 65536 and host
        assert isinstance(is_loopback(host), bool)


def test_loopback() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    assert not is_loopback("pos.local")
