"""The ``[serve]`` section of the configuration file, parsed and checked.

Pure (standard library only): ``ecrlink.cli.config`` calls :func:`parse_serve` for
every command, so a typo in ``[serve]`` is refused the same way as one in
``[terminals.NAME]``, naming the file and the key.

::

    [serve]
    listen = "127.0.0.1:8765"
    allowed_origins = ["https://pos.example.vn"]
    webhook_url = "https://erp.example.vn/hooks/ecrlink"
    webhook_secret = "..."
    lang = "vi"                      # cashier texts when a key names no language
    bridge_file = "D:/ecrlink/bridge.sqlite3"  # the bridge's own tables when the journal
                                     # is a database (default: bridge.sqlite3 in the
                                     # data directory); beside a journal file, in it

    [[serve.keys]]
    name = "counter1"
    key = "k_live_..."               # or key_sha256 = "<hex>"
    role = "register"                # register | manager
    lang = "en"                      # optional

    [serve.tuning]                   # optional; for tests and unusual sites
    webhook_backoff = [1.0, 60.0]    # first retry delay, cap (seconds)
    heartbeat = 15.0                 # SSE comment interval (seconds)
    event_retention_hours = 72       # events kept (at least 24)
    lock_timeout = 5.0               # waiting for another program on the terminal
    max_upload_mb = 20               # reconciliation upload limit
    shutdown_grace = 10.0            # seconds a stopping bridge lets payments finish
    sync_interval = 2.0              # seconds between journal checks of in-doubt rows
    ship_interval = 1.0              # with site + [central]: seconds between looks for
                                     # changes to ship to head office
    ship_retry_max = 30.0            # longest wait between attempts while it is unreachable
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .._exceptions import ConfigError

__all__ = [
    "DEFAULT_LISTEN",
    "KeyConfig",
    "Role",
    "ServeConfig",
    "Tuning",
    "hash_key",
    "is_loopback",
    "parse_listen",
    "parse_serve",
]

Role = Literal["register", "manager"]
ROLES: tuple[Role, ...] = ("register", "manager")
DEFAULT_LISTEN = "127.0.0.1:8765"
_PRINTABLE = frozenset(string.printable) - frozenset("\t\n\r\x0b\x0c ")

_SERVE_KEYS = frozenset(
    {"listen", "allowed_origins", "webhook_url", "webhook_secret", "lang", "keys", "tuning",
     "bridge_file"}
)
_KEY_KEYS = frozenset({"name", "key", "key_sha256", "role", "lang"})
_TUNING_KEYS = frozenset({
    "webhook_backoff", "heartbeat", "event_retention_hours", "lock_timeout",
    "max_upload_mb", "shutdown_grace", "sync_interval", "ship_interval", "ship_retry_max",
})


def hash_key(key: str) -> str:
    """The form a key is kept in (at rest and in memory): sha256, lowercase hex."""
    import hashlib  # here: every CLI command parses the config, few hash a key

    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class KeyConfig:
    """One API key: only its hash is kept."""

    name: str
    key_sha256: str
    role: Role
    lang: Literal["vi", "en"] | None = None


@dataclass(frozen=True, slots=True)
class Tuning:
    """Knobs with good defaults; tests shorten the delays."""

    webhook_backoff: tuple[float, float] = (1.0, 60.0)
    heartbeat: float = 15.0
    event_retention_hours: float = 72.0
    lock_timeout: float = 5.0
    max_upload_mb: float = 20.0
    shutdown_grace: float = 10.0
    sync_interval: float = 2.0
    ship_interval: float = 1.0
    ship_retry_max: float = 30.0


@dataclass(frozen=True, slots=True)
class ServeConfig:
    """The bridge's settings (an absent ``[serve]`` section is all defaults)."""

    listen: str = DEFAULT_LISTEN
    allowed_origins: tuple[str, ...] = ()
    webhook_url: str | None = None
    webhook_secret: str | None = None
    lang: Literal["vi", "en"] = "vi"
    keys: tuple[KeyConfig, ...] = ()
    tuning: Tuning = field(default_factory=Tuning)
    bridge_file: Path | None = None
    """Where the bridge keeps its own tables when the journal is a database (None: the
    data directory's ``bridge.sqlite3``)."""


def parse_listen(text: str, where: str = "listen") -> tuple[str, int]:
    """``HOST:PORT`` (IPv6 as ``[::1]:8765``) to ``(host, port)``; ``ConfigError`` if bad."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isascii() or not port.isdigit():
        raise ConfigError(f"{where}: must be HOST:PORT, like {DEFAULT_LISTEN} (got {text!r})")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    number = int(port)
    if not 0 < number < 65536:
        raise ConfigError(f"{where}: port must be 1..65535 (got {number})")
    return host, number


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses; anything else reaches the LAN."""
    import ipaddress  # here: only ecrlink serve asks

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _string(where: str, value: Any, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str) or (not value and not allow_empty):
        raise ConfigError(f"{where}: must be a non-empty string")
    return value


def _lang(where: str, value: Any) -> Literal["vi", "en"]:
    if value == "vi":
        return "vi"
    if value == "en":
        return "en"
    raise ConfigError(f"{where}: must be \"vi\" or \"en\"")


def _number(where: str, value: Any, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > minimum:
        raise ConfigError(f"{where}: must be a number greater than {minimum:g}")
    return float(value)


def _unknown(where: str, table: dict[str, Any], known: frozenset[str]) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})"
        )


def _key(where: str, table: Any) -> KeyConfig:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: each key must be a table ([[serve.keys]])")
    _unknown(where, table, _KEY_KEYS)
    name = _string(f"{where}: name", table.get("name"))
    role = table.get("role")
    if role not in ROLES:
        raise ConfigError(f"{where}: role must be \"register\" or \"manager\"")
    if ("key" in table) == ("key_sha256" in table):
        raise ConfigError(f"{where}: give exactly one of key or key_sha256")
    if "key" in table:
        key = _string(f"{where}: key", table["key"])
        if len(key) < 16 or not set(key) <= _PRINTABLE:
            raise ConfigError(
                f"{where}: key must be at least 16 printable ASCII characters without spaces"
            )
        digest = hash_key(key)
    else:
        digest = _string(f"{where}: key_sha256", table["key_sha256"]).lower()
        if len(digest) != 64 or not all(c in string.hexdigits for c in digest):
            raise ConfigError(f"{where}: key_sha256 must be 64 hex digits (sha256 of the key)")
    lang = _lang(f"{where}: lang", table["lang"]) if "lang" in table else None
    return KeyConfig(name=name, key_sha256=digest, role=role, lang=lang)


def _tuning(where: str, table: Any) -> Tuning:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table")
    _unknown(where, table, _TUNING_KEYS)
    values: dict[str, Any] = {}
    if "webhook_backoff" in table:
        pair = table["webhook_backoff"]
        if not isinstance(pair, list) or len(pair) != 2:
            raise ConfigError(f"{where}: webhook_backoff must be [first, cap] in seconds")
        first = _number(f"{where}: webhook_backoff", pair[0])
        cap = _number(f"{where}: webhook_backoff", pair[1])
        values["webhook_backoff"] = (first, max(first, cap))
    for name in ("heartbeat", "lock_timeout", "max_upload_mb", "shutdown_grace",
                 "sync_interval", "ship_interval", "ship_retry_max"):
        if name in table:
            values[name] = _number(f"{where}: {name}", table[name])
    if "event_retention_hours" in table:
        values["event_retention_hours"] = _number(
            f"{where}: event_retention_hours (at least 24)", table["event_retention_hours"], 23.999
        )
    return Tuning(**values)


def parse_serve(path: Path, table: Any) -> ServeConfig:
    """Check the ``[serve]`` table of the file at ``path``; ``ConfigError`` names the key."""
    where = f"{path}: [serve]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table")
    _unknown(where, table, _SERVE_KEYS)
    listen = _string(f"{where}: listen", table.get("listen", DEFAULT_LISTEN))
    parse_listen(listen, f"{where}: listen")
    origins = table.get("allowed_origins", [])
    if not isinstance(origins, list) or not all(
        isinstance(o, str) and o.startswith(("http://", "https://")) for o in origins
    ):
        raise ConfigError(
            f"{where}: allowed_origins must be a list of origins like \"https://pos.example.vn\""
        )
    url = table.get("webhook_url")
    secret = table.get("webhook_secret")
    if url is not None and not (isinstance(url, str) and url.startswith(("http://", "https://"))):
        raise ConfigError(f"{where}: webhook_url must be an http:// or https:// URL")
    if secret is not None:
        _string(f"{where}: webhook_secret", secret)
    if (url is None) != (secret is None):
        raise ConfigError(f"{where}: webhook_url and webhook_secret go together")
    keys_table = table.get("keys", [])
    if not isinstance(keys_table, list):
        raise ConfigError(f"{where}: keys must be tables, like [[serve.keys]]")
    keys = tuple(_key(f"{path}: [[serve.keys]] #{i + 1}", t) for i, t in enumerate(keys_table))
    names = [k.name for k in keys]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: [[serve.keys]]: two keys have the same name")
    bridge_file = table.get("bridge_file")
    if bridge_file is not None:
        text = _string(f"{where}: bridge_file", bridge_file)
        if "://" in text:
            raise ConfigError(f"{where}: bridge_file must be a file path (the bridge's own "
                              "tables are a SQLite file), not a URL")
        # Relative to the config file: a service's working directory is anyone's guess.
        bridge_file = path.parent / Path(text).expanduser()
    return ServeConfig(
        listen=listen,
        allowed_origins=tuple(o.rstrip("/") for o in origins),
        webhook_url=url,
        webhook_secret=secret,
        lang=_lang(f"{where}: lang", table.get("lang", "vi")),
        keys=keys,
        tuning=_tuning(f"{where}.tuning", table.get("tuning", {})),
        bridge_file=bridge_file,
    )
