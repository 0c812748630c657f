"""The central PostgreSQL journal of a chain: every store's entries, read by head office.

Each store keeps its own SQLite journal as the authority for its payments and ships
every entry and every state change here (``ecrlink.journal.sync``). Rows are keyed on
(site, the store's entry id); each carries the store's change number (the id of the
entry's latest ``history`` row), and an upsert only ever replaces a row with a newer
change. psycopg is imported only when a database is opened.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

from .._exceptions import FieldError

__all__ = ["check_central_url", "check_site", "redact_url"]

_SITE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
_SITE_RULE = "1 to 32 letters, digits, '.', '_' or '-', starting with a letter or digit"
_SCHEMES = ("postgresql", "postgres")


def check_site(value: object, name: str = "site") -> str:
    """A store's name in the chain (``STORE42``), or ``FieldError`` naming the rule."""
    if not isinstance(value, str) or not _SITE.fullmatch(value):
        raise FieldError(name, f"must be {_SITE_RULE}", value)
    return value


def check_central_url(value: object, name: str = "url") -> str:
    """A ``postgresql://`` URL (libpq's form), or ``FieldError`` naming the rule."""
    if not isinstance(value, str) or urlsplit(value).scheme.lower() not in _SCHEMES:
        raise FieldError(name, "must be a postgresql://user@host/database URL", None)
    return value


def redact_url(url: str) -> str:
    """``url`` with its password hidden, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))
