"""The configuration file: named terminals, so ``--terminal lane1`` works.

::

    default_terminal = "lane1"

    [terminals.lane1]
    url = "http://192.168.1.50"
    client_id = "QUAY1"
    timeout = 180            # seconds the customer may take
    connect_timeout = 5

and, at the top, ``duplicate_window = 3600`` (seconds an approved invoice blocks a
new sale for it; default: the current business day). A store of a chain names itself
and head office's database (``ecrlink journal sync``)::

    site = "STORE42"

    [central]
    url = "postgresql://store42@hq.example/ecrlink"

Registers that share their journal on the shop's PostgreSQL server name it at the top
(``$ECRLINK_JOURNAL`` and ``--journal`` win over it)::

    journal = "postgresql://ecrlink@store-server/ecrlink"

It lives at ``$ECRLINK_CONFIG`` if set, else in the platform's config directory
(``config_path``). A missing file is an empty configuration; a broken one is a
``ConfigError`` naming the file and the key, because a typo in a terminal's URL must
not silently send payments elsewhere.
"""

from __future__ import annotations

import codecs
import os
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from .._exceptions import ConfigError, FieldError

if TYPE_CHECKING:
    from ..bridge.config import ServeConfig

__all__ = ["Config", "TerminalConfig", "Timeouts", "config_path", "load_config", "resolve_terminal"]

_TIMEOUT_KEYS = ("timeout", "connect_timeout", "status_timeout", "recovery_timeout")
_TERMINAL_KEYS = frozenset({"url", "client_id", *_TIMEOUT_KEYS})


class Timeouts(TypedDict, total=False):
    """Timeouts as ``Terminal`` takes them as keywords (seconds)."""

    timeout: float
    connect_timeout: float
    status_timeout: float
    recovery_timeout: float
    lock_timeout: float


@dataclass(frozen=True, slots=True)
class TerminalConfig:
    """One terminal: its URL and what the client needs to know about it."""

    url: str
    name: str | None = None
    client_id: str | None = None
    timeouts: Timeouts = field(default_factory=lambda: Timeouts())
    """Only the timeouts the file sets (keys as ``Terminal`` takes them)."""


@dataclass(frozen=True, slots=True)
class Config:
    """The parsed configuration file (empty when there is none)."""

    path: Path
    terminals: Mapping[str, TerminalConfig] = field(default_factory=dict)
    default_terminal: str | None = None
    duplicate_window: float | None = None
    """Seconds an approved invoice blocks another sale for it (None: the business day)."""
    site: str | None = None
    """This store's name in a chain (``site = "STORE42"``)."""
    central_url: str | None = None
    """Head office's PostgreSQL (``[central] url``), where ``journal sync`` ships to."""
    journal: str | None = None
    """The journal (``journal = "postgresql://…"`` or a file); None: the default one."""
    serve: ServeConfig | None = None
    """``[serve]``: the bridge's settings (``ecrlink serve``; ``ecrlink.bridge.config``),
    None when the file has no such section."""


def config_path(
    environ: Mapping[str, str] | None = None, platform: str | None = None
) -> Path:
    """Where the configuration file is: ``$ECRLINK_CONFIG``, else the platform's place.

    Linux: ``$XDG_CONFIG_HOME/ecrlink/config.toml`` (``~/.config``); Windows:
    ``%APPDATA%\\ecrlink\\config.toml``; macOS: ``~/Library/Application Support/ecrlink``.
    """
    env = os.environ if environ is None else environ
    platform = sys.platform if platform is None else platform
    if env.get("ECRLINK_CONFIG"):
        return Path(env["ECRLINK_CONFIG"])
    home = Path(env.get("HOME") or Path.home())
    if platform == "win32":
        base = Path(env.get("APPDATA") or home / "AppData" / "Roaming")
    elif platform == "darwin":
        base = home / "Library" / "Application Support"
    else:
        base = Path(env.get("XDG_CONFIG_HOME") or home / ".config")
    return base / "ecrlink" / "config.toml"


def _terminal(path: Path, name: str, table: Any) -> TerminalConfig:
    where = f"{path}: [terminals.{name}]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table with at least url = \"...\"")
    unknown = sorted(set(table) - _TERMINAL_KEYS)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(_TERMINAL_KEYS))})"
        )
    url = table.get("url")
    if not isinstance(url, str) or not url:
        raise ConfigError(f"{where}: url must be a non-empty string")
    client_id = table.get("client_id")
    if client_id is not None and not isinstance(client_id, str):
        raise ConfigError(f"{where}: client_id must be a string")
    timeouts = Timeouts()
    for key in _TIMEOUT_KEYS:
        if key in table:
            value = table[key]
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ConfigError(f"{where}: {key} must be a positive number of seconds")
            timeouts[key] = float(value)  # type: ignore[literal-required]  # key is checked
    return TerminalConfig(url=url, name=name, client_id=client_id, timeouts=timeouts)


def _decoded(path: Path, data: bytes) -> str:
    """The file's text: UTF-8 with or without a BOM, or UTF-16 with a BOM (what Windows
    Notepad saves); anything else is a clear error, not a cryptic TOML one."""
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(
            f"{path}: not UTF-8 text; save it as UTF-8 (Notepad: Save as, Encoding UTF-8)"
        ) from None


def load_config(path: Path) -> Config:
    """Read ``path``; a file that does not exist is an empty configuration."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return Config(path)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    try:
        doc = tomllib.loads(_decoded(path, data))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
    unknown = sorted(
        set(doc)
        - {"terminals", "default_terminal", "duplicate_window", "site", "central", "serve",
           "journal"}
    )
    if unknown:
        raise ConfigError(
            f"{path}: unknown key {unknown[0]!r} (known: central, default_terminal, "
            "duplicate_window, journal, serve, site, terminals)"
        )
    journal = doc.get("journal")
    if journal is not None and (not isinstance(journal, str) or not journal.strip()):
        # Not echoed: a URL may carry a password.
        raise ConfigError(f"{path}: journal must be a file path or a postgresql:// URL, "
                          "as a string")
    tables = doc.get("terminals", {})
    if not isinstance(tables, dict):
        raise ConfigError(f"{path}: terminals must be tables, like [terminals.lane1]")
    terminals = {name: _terminal(path, name, table) for name, table in tables.items()}
    default = doc.get("default_terminal")
    if default is not None and not isinstance(default, str):
        raise ConfigError(f"{path}: default_terminal must be a string")
    window = doc.get("duplicate_window")
    if window is not None and (
        isinstance(window, bool) or not isinstance(window, int | float) or window <= 0
    ):
        raise ConfigError(f"{path}: duplicate_window must be a positive number of seconds")
    site, central_url = _chain(path, doc)
    serve = None
    if "serve" in doc:
        # Imported only for a file that has the section: payment commands stay light.
        from ..bridge.config import parse_serve

        serve = parse_serve(path, doc["serve"])
    return Config(
        path, terminals, default, None if window is None else float(window), site, central_url,
        journal, serve,
    )


def _chain(path: Path, doc: dict[str, Any]) -> tuple[str | None, str | None]:
    """``site`` and ``[central] url``: where this store ships its journal."""
    if "site" not in doc and "central" not in doc:
        return None, None
    # Here, not at the top: every command reads the config; few are chain stores.
    from ..journal.central import check_central_url, check_site

    try:
        site = check_site(doc["site"]) if "site" in doc else None
        table = doc.get("central", {})
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: central must be a table: [central] url = \"...\"")
        unknown = sorted(set(table) - {"url"})
        if unknown:
            raise ConfigError(f"{path}: [central]: unknown key {unknown[0]!r} (known: url)")
        url = check_central_url(table["url"], "[central] url") if "url" in table else None
    except FieldError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return site, url


def _looks_like_url(text: str) -> bool:
    # Names in the file are bare words; anything with a scheme or a path is a URL.
    # An unknown scheme is left for the transport to refuse, with its own message.
    return ":" in text or "/" in text or text.upper().startswith("COM")


def resolve_terminal(
    given: str | None, environ: Mapping[str, str], config: Config
) -> TerminalConfig:
    """The terminal to use: ``--terminal`` > ``$ECRLINK_TERMINAL`` > ``default_terminal``.

    Each may be a name from the configuration file or a URL.
    """
    value = given or environ.get("ECRLINK_TERMINAL") or config.default_terminal
    if not value:
        raise ConfigError(
            "terminal: none given; use --terminal URL or NAME, set ECRLINK_TERMINAL, or set "
            f"default_terminal in {config.path} (to try ecrlink without a terminal, run "
            "`ecrlink simulate` and use --terminal http://127.0.0.1:8080)"
        )
    if value in config.terminals:
        return config.terminals[value]
    if _looks_like_url(value):
        return TerminalConfig(url=value)
    known = ", ".join(sorted(config.terminals)) or "none"
    raise ConfigError(
        f"terminal: {value!r} is neither a URL nor a terminal named in {config.path} "
        f"(named there: {known})"
    )
