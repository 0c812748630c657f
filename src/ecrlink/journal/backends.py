"""Open a journal by its name: a ``postgresql://`` URL or a SQLite file.

``open_journal`` is the one place that turns a name into a journal; ``Terminal(journal=
…)``, ``--journal``, ``$ECRLINK_JOURNAL`` and the config file's ``journal`` key all come
through it. psycopg is imported only for a URL.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from .store import Journal

__all__ = ["ENV_JOURNAL", "is_database_url", "open_journal"]

ENV_JOURNAL = "ECRLINK_JOURNAL"
"""The environment variable naming the journal when none is given (a file or a URL)."""

_SCHEMES = ("postgresql", "postgres")


def is_database_url(name: str | os.PathLike[str]) -> bool:
    """Whether ``name`` is a PostgreSQL URL rather than a file."""
    return isinstance(name, str) and urlsplit(name).scheme.lower() in _SCHEMES


def open_journal(
    name: str | os.PathLike[str] | None = None, *, create: bool = True,
    readonly: bool = False, environ: Mapping[str, str] | None = None,
) -> Journal:
    """The journal called ``name``: ``postgresql://user@host/db`` (a PostgreSQL journal,
    ``ecrlink.journal.pg``) or a SQLite file's path; None: ``$ECRLINK_JOURNAL`` if set,
    else the default file in the data directory.

    ``create=False``: it must exist already (a file; a database holding a journal).
    """
    if name is None:
        name = (os.environ if environ is None else environ).get(ENV_JOURNAL) or None
    if name is not None and is_database_url(name):
        from .pg import PgJournal

        return PgJournal(str(name), create=create, readonly=readonly)
    return Journal(Path(name) if name is not None else None, create=create, readonly=readonly)
