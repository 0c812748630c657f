"""The config file names a store of a chain: ``site`` and ``[central] url`` (no server)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ecrlink import ConfigError, FieldError
from ecrlink.cli.config import Config, load_config
from ecrlink.journal.central import check_central_url, check_site, redact_url


def _load(tmp_path: Path, body: str) -> Config:
    path = tmp_path / "config.toml"
    path.write_text(body, encoding="utf-8")
    return load_config(path)


def test_site_and_central_url(tmp_path: Path) -> None:
    config = _load(tmp_path, 'site = "STORE42"\n[central]\nurl = "postgresql://s@hq/ecr"\n')
    assert (config.site, config.central_url) == ("STORE42", "postgresql://s@hq/ecr")
    empty = _load(tmp_path, "")
    assert (empty.site, empty.central_url) == (None, None)


@pytest.mark.parametrize(("body", "says"), [
    ('site = "STORE 42"\n', "site: must be 1 to 32 letters"),
    ("site = 42\n", "site: must be"),
    ('central = "postgresql://hq/x"\n', "central must be a table"),
    ('[central]\nurl = "http://hq/x"\n', "[central] url: must be a postgresql://"),
    ('[central]\nurl = "postgresql://hq/x"\nuser = "x"\n', "[central]: unknown key 'user'"),
    ('sites = "x"\n', "unknown key 'sites'"),
])
def test_a_bad_chain_setting_names_the_key(tmp_path: Path, body: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, body)
    message = str(caught.value)
    assert says in message and "\n" not in message


@given(st.text(max_size=40))
def test_site_names_are_plain_words(name: str) -> None:
    plain = (
        0 < len(name) <= 32 and name.isascii()
        and all(c.isalnum() or c in "._-" for c in name) and name[0].isalnum()
    )
    if plain:
        assert check_site(name) == name
    else:
        with pytest.raises(FieldError):
            check_site(name)


@given(st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126,
                                      exclude_characters="@/:?#[]%"), min_size=1))
def test_a_password_never_shows(password: str) -> None:
    url = f"postgresql://store:{password}@hq.example:5432/ecrlink"
    shown = redact_url(check_central_url(url))
    assert shown == "postgresql://store:***@hq.example:5432/ecrlink"
