"""One name per terminal: the rule of ``terminal_key``, and that it is a fixed point."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ecrlink import ConfigError
from ecrlink.transports import terminal_key


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("http://127.0.0.1:18601", "http://127.0.0.1:18601"),
        ("http://127.0.0.1:18601/", "http://127.0.0.1:18601"),
        ("http://localhost:18601", "http://127.0.0.1:18601"),
        ("HTTP://LocalHost.:18601/", "http://127.0.0.1:18601"),
        ("http://[::1]:18601", "http://127.0.0.1:18601"),
        ("http://127.1.2.3:18601", "http://127.0.0.1:18601"),
        ("http://192.168.1.50", "http://192.168.1.50:80"),
        ("http://192.168.1.50:80/", "http://192.168.1.50:80"),
        ("https://POS.shop.vn", "https://pos.shop.vn:443"),
        ("http://[fe80::1]:8080", "http://[fe80::1]:8080"),
        ("serial:COM3", "serial:COM3"),
        ("serial:com3", "serial:COM3"),
        ("COM3", "serial:COM3"),
        ("serial:///dev/ttyS0?baudrate=9600", "serial:///dev/ttyS0"),
        ("serial:/dev/ttyS0", "serial:///dev/ttyS0"),
        ("/dev/ttyS0", "serial:///dev/ttyS0"),
        ("socket://LOCALHOST:7000", "socket://127.0.0.1:7000"),
        ("rfc2217://10.0.0.2:2217", "rfc2217://10.0.0.2:2217"),
    ],
)
def test_spellings(url: str, key: str) -> None:
    assert terminal_key(url) == key


def test_a_serial_symlink_is_its_device(tmp_path: Path) -> None:
    device = tmp_path / "ttyUSB0"
    device.write_text("")
    link = tmp_path / "usb-FTDI_FT232R-if00-port0"
    os.symlink(device, link)
    assert terminal_key(f"serial://{link}") == terminal_key(f"serial:{device}") == \
        f"serial://{device.resolve()}"


@pytest.mark.parametrize("url", ["", "ftp://x", "http://", "socket://host", "pos.local"])
def test_what_names_no_terminal_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError, match="terminal URL"):
        terminal_key(url)


hosts = st.one_of(
    st.sampled_from(["localhost", "LOCALHOST", "127.0.0.1", "127.9.9.9", "[::1]"]),
    st.from_regex(r"[a-z][a-z0-9-]{0,10}(\.[a-z]{2,5}){0,2}", fullmatch=True),
    st.tuples(*[st.integers(1, 254)] * 4).map(lambda t: ".".join(map(str, t))),
)


@given(st.sampled_from(["http", "https", "HTTP"]), hosts, st.integers(1, 65535),
       st.sampled_from(["", "/", "/ecr", "/?x=1"]))
def test_the_key_is_a_fixed_point_and_ignores_the_path(
    scheme: str, host: str, port: int, path: str
) -> None:
    key = terminal_key(f"{scheme}://{host}:{port}{path}")
    assert terminal_key(key) == key
    assert key == terminal_key(f"{scheme.lower()}://{host.lower()}:{port}")
    assert key.endswith(f":{port}") and key == key.lower()
