"""API keys: ``Authorization: Bearer <key>``, a role each, kept only as sha256.

Keys come from ``[[serve.keys]]``. When the config names none, the bridge makes one
``manager`` key on its first start, prints it once, and keeps only its hash in
``bridge-keys.json`` in the data directory (owner-only), so later starts accept it
without ever having it on disk. Lost it? Delete that file and start again.
Listening beyond loopback needs a key in the config (``app.check_listen``).
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from .._exceptions import ConfigError
from .config import KeyConfig, Role, hash_key
from .errors import ApiError

__all__ = ["KEY_FILE", "Caller", "Keys", "accept_language", "load_or_create_keys"]

KEY_FILE = "bridge-keys.json"


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: the key's name, role and language (the request's
    ``Accept-Language`` comes first, see :func:`accept_language`)."""

    name: str
    role: Role
    lang: str


class Keys:
    """The accepted keys, by hash."""

    def __init__(self, keys: tuple[KeyConfig, ...], default_lang: str) -> None:
        self._keys = keys
        self._lang = default_lang

    def __len__(self) -> int:
        return len(self._keys)

    def caller(self, authorization: str | None) -> Caller:
        """The caller of a request with this ``Authorization`` header; 401 if none."""
        if not authorization:
            raise ApiError(401, "unauthorized", "an API key is required: Authorization: "
                           "Bearer <key>", headers={"WWW-Authenticate": "Bearer"})
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise ApiError(401, "unauthorized", "Authorization must be \"Bearer <key>\"",
                           headers={"WWW-Authenticate": "Bearer"})
        digest = hash_key(token)
        found = None
        for key in self._keys:  # compare every key in constant time
            if hmac.compare_digest(key.key_sha256, digest):
                found = key
        if found is None:
            raise ApiError(401, "unauthorized", "unknown API key",
                           headers={"WWW-Authenticate": "Bearer"})
        return Caller(found.name, found.role, found.lang or self._lang)


def accept_language(header: str | None) -> str | None:
    """The first of ``vi``/``en`` an ``Accept-Language`` header names (``vi-VN`` counts
    as ``vi``), or None. Order decides, not q-values; a language with ``q=0`` (refused)
    is skipped. Anything malformed is passed over, never an error."""
    if not header:
        return None
    for part in header[:500].split(",")[:20]:
        tag, *params = (p.strip() for p in part.split(";"))
        primary = tag.split("-", 1)[0].lower()
        if primary not in ("vi", "en"):
            continue
        refused = False
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    refused = float(value.strip()) <= 0
                except ValueError:
                    refused = False
        if not refused:
            return primary
    return None


def require(caller: Caller, role: Role) -> None:
    """403 unless ``caller`` has ``role`` (a manager may do what a register may)."""
    if role == "manager" and caller.role != "manager":
        raise ApiError(403, "forbidden", f"the key {caller.name!r} ({caller.role}) may not do "
                       "this: a manager key is needed")


def load_or_create_keys(configured: tuple[KeyConfig, ...], data_dir: Path) -> tuple[
        tuple[KeyConfig, ...], str | None]:
    """The keys to accept, and a new key to print once (None if none was made)."""
    if configured:
        return configured, None
    path = data_dir / KEY_FILE
    if path.exists():
        try:
            stored = json.loads(path.read_text("utf-8"))
            return tuple(KeyConfig(name=k["name"], key_sha256=k["key_sha256"], role=k["role"])
                         for k in stored["keys"]), None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path}: cannot read the bridge's key file ({exc}); delete it "
                              "to make a new key") from None
    key = f"k_{secrets.token_urlsafe(24)}"
    made = KeyConfig(name="manager", key_sha256=hash_key(key), role="manager")
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    body = json.dumps({"keys": [{"name": made.name, "role": made.role,
                                 "key_sha256": made.key_sha256}]}, indent=2)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(body)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    return (made,), key
