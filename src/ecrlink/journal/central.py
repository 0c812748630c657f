"""The central PostgreSQL journal of a chain: every store's entries, read by head office.

Each store keeps its own SQLite journal as the authority for its payments and ships
every entry and every state change here (``ecrlink.journal.sync``). Rows are keyed on
(site, the store's entry id); each carries the store's change number (the id of the
entry's latest ``history`` row), and an upsert only replaces a row with a newer
change, so batches may arrive twice or out of order. ``sites.shipped`` is the
store's cursor, committed in the same transaction as the batch it covers.

All tables live in the PostgreSQL schema ``ecrlink_chain``. psycopg is imported only
when a database is opened: ``ecrlink sale`` never loads it.
"""

from __future__ import annotations

import contextlib
import decimal
import queue
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import urlsplit, urlunsplit

from .._exceptions import JournalError
from ..protocol import VIETNAM_TIME
from ..protocol.field_texts import field_error
from .records import Change, Entry, ResolvedBy, State
from .store import COUNT_CAP

if TYPE_CHECKING:
    import polars as pl
    import psycopg

__all__ = [
    "CENTRAL_SCHEMA_VERSION",
    "Central",
    "Change",
    "SiteEntry",
    "SitePage",
    "SiteStatus",
    "Total",
    "check_central_url",
    "check_site",
    "redact_url",
]

_SITE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
_SCHEMES = ("postgresql", "postgres")


def check_site(value: object, name: str = "site") -> str:
    """A store's name in the chain (``STORE42``), or ``FieldError`` naming the rule."""
    if not isinstance(value, str) or not _SITE.fullmatch(value):
        raise field_error(name, "site_name", value)
    return value


def check_central_url(value: object, name: str = "url") -> str:
    """A ``postgresql://`` URL (libpq's form), or ``FieldError`` naming the rule."""
    if not isinstance(value, str) or urlsplit(value).scheme.lower() not in _SCHEMES:
        # Not echoed: a URL may carry a password.
        raise field_error(name, "postgresql_url", None)
    return value


def redact_url(url: str) -> str:
    """``url`` with its password hidden, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user, host = parts.netloc.rsplit("@", 1)
    return urlunsplit(parts._replace(netloc=f"{user.split(':', 1)[0]}:***@{host}"))


CENTRAL_SCHEMA_VERSION = 1

# Each migration takes the central schema from version i to i + 1. Never edit one that
# shipped. Times are timestamptz (the stores write UTC); amounts are bigint (VND).
_MIGRATIONS: list[str] = [
    """
    CREATE TABLE ecrlink_chain.sites (
        site       text PRIMARY KEY,
        journal    text NOT NULL,
        shipped    bigint NOT NULL DEFAULT 0,
        synced_at  timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE ecrlink_chain.entries (
        site           text NOT NULL REFERENCES ecrlink_chain.sites (site),
        id             bigint NOT NULL,
        change         bigint NOT NULL,
        terminal       text NOT NULL,
        command        text NOT NULL,
        state          text NOT NULL,
        request_id     text NOT NULL,
        client_id      text NOT NULL,
        amount         bigint,
        f1 text NOT NULL, f2 text NOT NULL, f3 text NOT NULL, f4 text NOT NULL,
        f5 text NOT NULL,
        created_at     timestamptz NOT NULL,
        updated_at     timestamptz NOT NULL,
        receipt_no     text,
        void_of        text,
        approval_code  text,
        ref_no         text,
        card_no        text,
        tid            text,
        mid            text,
        batch_no       text,
        stan           text,
        trans_time     timestamptz,
        return_code    text,
        resolved_by    text,
        resolved_who   text,
        note           text,
        raw_reply      bytea,
        charged_amount bigint,
        mark_before    text,
        mark_at        timestamptz,
        deadline       timestamptz,
        PRIMARY KEY (site, id)
    );
    CREATE INDEX entries_created ON ecrlink_chain.entries (created_at);
    CREATE INDEX entries_site_terminal ON ecrlink_chain.entries (site, terminal, state);
    CREATE INDEX entries_mid ON ecrlink_chain.entries (mid, created_at);
    CREATE TABLE ecrlink_chain.history (
        site      text NOT NULL REFERENCES ecrlink_chain.sites (site),
        id        bigint NOT NULL,
        entry_id  bigint NOT NULL,
        at        timestamptz NOT NULL,
        state     text NOT NULL,
        by        text,
        who       text,
        note      text,
        PRIMARY KEY (site, id)
    );
    CREATE INDEX history_entry ON ecrlink_chain.history (site, entry_id);
    """,
]
assert len(_MIGRATIONS) == CENTRAL_SCHEMA_VERSION

# Serialises schema creation between stores that sync for the first time together.
_SCHEMA_LOCK = 0x45434C4B  # "ECLK"

# The store's columns, in the order of ecrlink.journal.store (its _COLUMNS).
_ENTRY_COLUMNS = (
    "id", "terminal", "command", "state", "request_id", "client_id", "amount",
    "f1", "f2", "f3", "f4", "f5", "created_at", "updated_at", "receipt_no", "void_of",
    "approval_code", "ref_no", "card_no", "tid", "mid", "batch_no", "stan", "trans_time",
    "return_code", "resolved_by", "resolved_who", "note", "raw_reply", "charged_amount",
    "mark_before", "mark_at", "deadline",
)
_SELECT_ENTRY = "site, change, " + ", ".join(_ENTRY_COLUMNS)
# A batch is copied (COPY, the fast path) into temporary tables that empty themselves
# at commit, then merged: upserts need INSERT … SELECT, which COPY cannot do itself.
_ENTRY_LIST = "site, change, " + ", ".join(_ENTRY_COLUMNS)
_HISTORY_LIST = "site, id, entry_id, at, state, by, who, note"
_STAGING = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS ship_entries "
    "(LIKE ecrlink_chain.entries) ON COMMIT DELETE ROWS",
    "CREATE TEMPORARY TABLE IF NOT EXISTS ship_history "
    "(LIKE ecrlink_chain.history) ON COMMIT DELETE ROWS",
)
_MERGE_ENTRIES = (
    f"INSERT INTO ecrlink_chain.entries ({_ENTRY_LIST}) SELECT {_ENTRY_LIST} "
    "FROM ship_entries ON CONFLICT (site, id) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in ("change", *_ENTRY_COLUMNS[1:]))
    # Never an older change over a newer one: batches may come again or out of order.
    + " WHERE ecrlink_chain.entries.change < EXCLUDED.change"
)
_MERGE_HISTORY = (
    f"INSERT INTO ecrlink_chain.history ({_HISTORY_LIST}) SELECT {_HISTORY_LIST} "
    "FROM ship_history ON CONFLICT (site, id) DO NOTHING"
)


# How COPY gives reconciliation's entry columns (``ecrlink.reconcile.sources.
# entry_schema``, by name; the others as stored) and created_at: times as float8
# seconds since the epoch (far cheaper for the server than numeric or text times;
# read back exactly by _micros, or only ordered by; extra_float_digits is set so that
# all digits come).
_FRAME_SQL = {
    "time": "date_part('epoch', COALESCE(trans_time, created_at))",
    "created_at": "date_part('epoch', created_at)",
    # The terminal's name matters only to an entry without a TID: not sent for the others.
    "terminal": "CASE WHEN tid IS NULL OR tid = '' THEN terminal ELSE '' END",
}
_NUMERIC = frozenset({"id", "amount", "time", "created_at"})


class _Stopped(Exception):
    """Internal: the reader of a COPY stopped early."""


def _micros(seconds: pl.Series) -> pl.Series:
    """Float8 seconds since the epoch as PostgreSQL writes them with all their digits
    (``1772326800.123456``; ``date_part('epoch', t)``, the double nearest to t's
    microseconds / 10**6) back to those microseconds, exactly.

    Read as decimals, not as floats (no float arithmetic gets every microsecond
    back): a double tells every microsecond of the years 1970-2242 apart, so its
    shortest text (PostgreSQL 12 on) has at most six decimals; 17 digits (older
    servers) are off by less than half a microsecond until 2106, which rounding to
    six decimals takes away. Other forms (``1e-06``; ``Infinity``: null) go through
    Python's ``Decimal``.
    """
    import polars as pl

    scaled = seconds.cast(pl.Decimal(38, 6), strict=False) * 1_000_000
    out = scaled.cast(pl.Int64, strict=False)
    odd = out.is_null() & seconds.is_not_null()
    if odd.any():
        table = {v: _decimal_micros(v) for v in seconds.filter(odd).unique().to_list()}
        out = out.fill_null(seconds.replace_strict(table, default=None, return_dtype=pl.Int64))
    return out.alias(seconds.name)


def _decimal_micros(text: str) -> int | None:
    try:
        value = decimal.Decimal(text) * 1_000_000
    except decimal.InvalidOperation:
        return None
    return int(value.to_integral_value(decimal.ROUND_HALF_EVEN)) if value.is_finite() else None


_COPY_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_COPY_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


def _unescape_copy(text: str) -> str:
    """A value of COPY's text format as it was stored: COPY TO writes a backslash
    before a backslash and as ``\\b \\f \\n \\r \\t \\v`` for those characters."""
    return _COPY_ESCAPE.sub(lambda m: _COPY_ESCAPES.get(m[1], m[1]), text)


def _unescaped(column: pl.Series) -> pl.Series:
    """A text column of COPY's output with escapes undone: only the (rare) values
    holding a backslash go through Python."""

    odd = column.str.contains("\\", literal=True).fill_null(False)
    if not odd.any():
        return column
    table = {v: _unescape_copy(v) for v in column.filter(odd).unique().to_list()}
    return column.replace(table)


@dataclass(frozen=True, slots=True)
class SiteEntry:
    """One store's journal entry as head office holds it."""

    site: str
    entry: Entry
    change: int
    """The store's change number this row reflects (its latest history row id)."""


@dataclass(frozen=True, slots=True)
class SitePage:
    """The newest entries of a head office selection, oldest first, and its total
    (as ``ecrlink.journal.store.Page``, with each entry's site)."""

    entries: list[SiteEntry]
    total: int
    exact: bool = True
    """False: the selection holds more than ``total`` entries (counting stopped there)."""

    @property
    def more(self) -> int:
        """Entries of the selection older than this page (at least that many if not
        ``exact``)."""
        return self.total - len(self.entries)


@dataclass(frozen=True, slots=True)
class SiteStatus:
    """How far a store's journal has reached head office."""

    site: str
    journal: str
    """Which journal feeds the site: its id (``Journal.journal_id``)."""
    shipped: int
    """Every change of the store's journal up to this number is here."""
    synced_at: datetime


@dataclass(frozen=True, slots=True)
class Total:
    """Entries of one site, MID, command and state: how many, how much asked and charged."""

    site: str
    mid: str | None
    command: str
    state: State
    count: int
    amount: int
    charged: int


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise JournalError(
            "a PostgreSQL journal needs psycopg: pip install 'ecrlink[postgres]'"
        ) from None
    return psycopg


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


class Central:
    """A connection to a chain's central PostgreSQL journal.

    ``Central.open(url)`` creates or upgrades the schema (a store's sync);
    ``create=False`` only reads and says so if there is nothing there (head office).
    The connection is in autocommit mode: the store's writes go through
    :meth:`transaction`. Not safe to share between threads; open one per thread.
    """

    def __init__(self, conn: psycopg.Connection[Any], url: str) -> None:
        self.conn = conn
        self.url = url

    @staticmethod
    def _connect(url: str, connect_timeout: float, what: str) -> Any:
        """A connection to ``url``; ``CentralUnreachable`` (one line, no password)."""
        check_central_url(url)
        psycopg = _psycopg()
        try:
            return psycopg.connect(
                url, connect_timeout=max(1, round(connect_timeout)),
                application_name="ecrlink", options="-c TimeZone=UTC", autocommit=True,
            )
        except psycopg.Error as exc:
            raise CentralUnreachable(
                f"{what} {redact_url(url)}: cannot connect ({_first_line(exc)})"
            ) from None

    @classmethod
    def open(cls, url: str, *, create: bool = True, connect_timeout: float = 10) -> Self:
        """Connect to ``url``; ``JournalError`` (one line, no password) if that fails."""
        conn = cls._connect(url, connect_timeout, "central journal")
        central = cls(conn, url)
        try:
            central._check_schema(create)
        except BaseException:
            conn.close()
            raise
        return central

    @classmethod
    def probe(cls, url: str, *, connect_timeout: float = 10) -> Self | None:
        """``url``'s central journal if its database has the ``ecrlink_chain`` schema,
        else None (a shop's own PostgreSQL journal, say). Never creates anything."""
        conn = cls._connect(url, connect_timeout, "journal")
        central = cls(conn, url)
        try:
            if central._version() is None:
                conn.close()
                return None
            central._check_schema(create=False)
        except psycopg.Error as exc:
            conn.close()
            raise central._error("read failed", exc) from None
        except BaseException:
            conn.close()
            raise
        return central

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _error(self, what: str, exc: BaseException) -> JournalError:
        psycopg = _psycopg()
        kind = CentralUnreachable if isinstance(exc, psycopg.OperationalError) else JournalError
        return kind(f"central journal {redact_url(self.url)}: {what} ({_first_line(exc)})")

    def _check_schema(self, create: bool) -> None:
        psycopg = _psycopg()
        try:
            with self.conn.transaction():
                version = self._version()
                if create and (version or 0) < CENTRAL_SCHEMA_VERSION:
                    # Only now the lock and CREATE: a store's role needs no CREATE
                    # privilege once head office (or the first sync) made the schema.
                    self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                    self.conn.execute("CREATE SCHEMA IF NOT EXISTS ecrlink_chain")
                    self.conn.execute(
                        "CREATE TABLE IF NOT EXISTS ecrlink_chain.meta "
                        "(key text PRIMARY KEY, value text NOT NULL)"
                    )
                    version = self._version()  # another store may have just done it
                elif version is None:
                    raise JournalError(
                        f"central journal {redact_url(self.url)}: no ecrlink chain data "
                        "here (no store has synced to this database yet)"
                    )
                version = version or 0
                if version > CENTRAL_SCHEMA_VERSION:
                    raise JournalError(
                        f"central journal {redact_url(self.url)}: schema version {version} "
                        f"is newer than this ecrlink ({CENTRAL_SCHEMA_VERSION}); upgrade ecrlink"
                    )
                if version < CENTRAL_SCHEMA_VERSION and not create:
                    raise JournalError(
                        f"central journal {redact_url(self.url)}: schema version {version}; "
                        "a store's journal sync upgrades it"
                    )
                for step in range(version, CENTRAL_SCHEMA_VERSION):
                    self.conn.execute(_MIGRATIONS[step])
                if version != CENTRAL_SCHEMA_VERSION:
                    self.conn.execute(
                        "INSERT INTO ecrlink_chain.meta VALUES ('schema_version', %s) "
                        "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                        (str(CENTRAL_SCHEMA_VERSION),),
                    )
        except psycopg.Error as exc:
            raise self._error("cannot prepare the schema", exc) from None

    def _version(self) -> int | None:
        """The central schema's version; None if there is no ecrlink schema at all."""
        if self.conn.execute("SELECT to_regclass('ecrlink_chain.meta')").fetchone() == (None,):
            return None
        row = self.conn.execute(
            "SELECT value FROM ecrlink_chain.meta WHERE key = 'schema_version'"
        ).fetchone()
        return int(row[0]) if row else 0

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        psycopg = _psycopg()
        try:
            return list(self.conn.execute(sql, params).fetchall())
        except psycopg.Error as exc:
            raise self._error("read failed", exc) from None

    # --- the store's side: one batch per transaction ---------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One transaction: everything in it is committed together or not at all.

        A dropped link is ``CentralUnreachable`` (try again later), any other database
        error a ``JournalError``; both are one line without the password.
        """
        psycopg = _psycopg()
        try:
            with self.conn.transaction():
                yield
        except psycopg.Error as exc:
            raise self._error("write failed", exc) from None

    def claim(self, site: str, journal: str) -> int:
        """Lock ``site``'s row for this transaction; return its cursor (``shipped``).

        Creates the site on its first sync. A site fed by another journal is refused:
        two stores with one name would overwrite each other's payments.
        """
        self.conn.execute(
            "INSERT INTO ecrlink_chain.sites (site, journal) VALUES (%s, %s) "
            "ON CONFLICT (site) DO NOTHING", (site, journal),
        )
        row = self.conn.execute(
            "SELECT journal, shipped FROM ecrlink_chain.sites WHERE site = %s FOR UPDATE",
            (site,),
        ).fetchone()
        assert row is not None
        if row[0] != journal:
            raise JournalError(
                f"site {site}: head office already holds another journal under this name "
                f"(journal {row[0]}; this one: {journal}); give each journal its own site "
                "name (--site, or site in the config file)"
            )
        return int(row[1])

    def change_at(self, site: str, change_id: int) -> Change | None:
        """The change numbered ``change_id`` of ``site`` as head office has it."""
        rows = self._query(
            "SELECT id, entry_id, at, state, by, who, note FROM ecrlink_chain.history "
            "WHERE site = %s AND id = %s", (site, change_id),
        )
        return _change(rows[0]) if rows else None

    def write(
        self, site: str, entries: Sequence[tuple[Entry, int]], changes: Sequence[Change],
        shipped: int,
    ) -> None:
        """Upsert ``entries`` (each with its change number; each entry once), add
        ``changes``, move the cursor to ``shipped``. Call inside :meth:`transaction`
        after :meth:`claim`."""
        with self.conn.cursor() as cur:
            for statement in _STAGING:
                cur.execute(statement)
            if entries:
                with cur.copy(f"COPY ship_entries ({_ENTRY_LIST}) FROM STDIN") as copy:
                    for e, change in entries:
                        copy.write_row((site, change, *_entry_params(e)))
                cur.execute(_MERGE_ENTRIES)
            if changes:
                with cur.copy(f"COPY ship_history ({_HISTORY_LIST}) FROM STDIN") as copy:
                    for c in changes:
                        copy.write_row(
                            (site, c.id, c.entry_id, c.at, c.state.value, c.by, c.who, c.note)
                        )
                cur.execute(_MERGE_HISTORY)
            cur.execute(
                "UPDATE ecrlink_chain.sites SET shipped = GREATEST(shipped, %s), "
                "synced_at = now() WHERE site = %s", (shipped, site),
            )

    # --- head office's side: streaming reads -------------------------------------------

    def entries(
        self,
        *,
        sites: Iterable[str] | None = None,
        terminal: str | None = None,
        states: Iterable[State] | None = None,
        commands: Iterable[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        batch: int = 2000,
    ) -> Iterator[SiteEntry]:
        """Entries of every store (or ``sites``), by creation time, streamed.

        A server-side cursor fetches ``batch`` rows at a time: a million payments never
        sit in memory at once. Filters as ``Journal.entries``, plus the site.
        """
        where, params = _filters(sites, terminal, states, commands, since, until)
        sql = (
            f"SELECT {_SELECT_ENTRY} FROM ecrlink_chain.entries {where} "
            "ORDER BY created_at, site, id"
        )
        psycopg = _psycopg()
        try:
            with self.conn.transaction(), self.conn.cursor(name="ecrlink_entries") as cur:
                cur.itersize = batch
                cur.execute(sql, params)
                for row in cur:
                    yield SiteEntry(row[0], _central_entry(row[2:]), row[1])
        except psycopg.Error as exc:
            raise self._error("read failed", exc) from None

    def entry_blocks(
        self,
        *,
        sites: Iterable[str] | None = None,
        states: Iterable[State] | None = None,
        commands: Iterable[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        block_bytes: int = 16 << 20,
    ) -> Iterator[pl.DataFrame]:
        """Entries (filters as :meth:`entries`) as polars frames of reconciliation's
        entry columns (``ecrlink.reconcile.sources.entry_schema``; ``terminal`` only
        where there is no TID, else '') and ``created_at`` (float seconds since the
        epoch, for ordering), in no order, a block at a time.

        The server streams the rows with ``COPY … TO STDOUT`` (text format); a thread
        reads it while the caller parses the previous block, about ``block_bytes`` at
        once, with polars: no Python object per entry, and never more than a few
        blocks of text in memory.
        """
        import polars as pl

        from ..reconcile.sources import entry_schema

        psycopg = _psycopg()
        where, params = _filters(sites, None, states, commands, since, until)
        names = [*entry_schema(), "created_at"]
        columns = ", ".join(_FRAME_SQL.get(n, n) for n in names)
        query = f"COPY (SELECT {columns} FROM ecrlink_chain.entries {where}) TO STDOUT"
        # created_at only orders the rows: as a float8 it keeps their order exactly.
        types: dict[str, Any] = {n: pl.String for n in names}
        types.update(id=pl.Int64, amount=pl.Int64, created_at=pl.Float64)
        offset = VIETNAM_TIME.utcoffset(None)
        assert offset is not None

        def parse(block: bytes) -> pl.DataFrame:
            raw = pl.read_csv(
                block, has_header=False, separator="\t", quote_char=None,
                null_values=["\\N"], empty_string_is_null=False, new_columns=names,
                schema=types,
            )  # fmt: skip
            # COPY escapes with a backslash, and writes NULL as \N: mostly nothing else.
            escaped = block.count(b"\\") != block.count(b"\\N")
            return raw.with_columns(
                *(_unescaped(raw.get_column(n)) for n in names if escaped and n not in _NUMERIC),
                (pl.from_epoch(_micros(raw.get_column("time")), "us") + offset).alias("time"),
            )

        try:
            for block in self._copy_out(query, params, block_bytes):
                yield parse(block)
        except psycopg.Error as exc:
            raise self._error("read failed", exc) from None

    def _copy_out(self, query: str, params: Sequence[Any], block_bytes: int) -> Iterator[bytes]:
        """``query``'s COPY output in blocks of whole rows, read by a thread (the
        server keeps sending while the caller works on the previous block)."""
        blocks: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=2)
        stop = threading.Event()

        def read() -> None:
            try:
                with self.conn.transaction(), self.conn.cursor() as cur:
                    # COPY's text is in the client's encoding: UTF-8 for polars. Floats
                    # (the times) with all their digits, whatever the server's setting.
                    cur.execute("SET LOCAL client_encoding TO 'UTF8'")
                    cur.execute("SET LOCAL extra_float_digits TO 3")
                    with cur.copy(query, params) as copy:
                        parts: list[bytes] = []
                        size = 0
                        for data in copy:
                            parts.append(bytes(data))
                            size += len(data)
                            if size >= block_bytes:
                                joined = b"".join(parts)
                                cut = joined.rfind(b"\n") + 1  # rows end in a newline
                                blocks.put(joined[:cut])
                                parts, size = [joined[cut:]], len(joined) - cut
                                if stop.is_set():
                                    raise _Stopped
                        rest = b"".join(parts)
                        if rest:
                            blocks.put(rest)
                blocks.put(None)
            except BaseException as exc:  # handed to the caller's thread
                blocks.put(exc)

        thread = threading.Thread(target=read, name="ecrlink-copy", daemon=True)
        thread.start()
        try:
            while (item := blocks.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            while thread.is_alive():  # a reader stopped early: let the thread finish
                with contextlib.suppress(queue.Empty):
                    blocks.get(timeout=0.05)
            thread.join()

    def entry_frame(
        self,
        *,
        sites: Iterable[str] | None = None,
        states: Iterable[State] | None = None,
        commands: Iterable[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> pl.DataFrame:
        """:meth:`entry_blocks` as one frame (without ``created_at``), by creation
        time, site and id: the order of :meth:`entries`."""
        import polars as pl

        from ..reconcile.sources import entry_schema

        blocks = list(self.entry_blocks(sites=sites, states=states, commands=commands,
                                        since=since, until=until))
        if not blocks:
            return pl.DataFrame(schema=entry_schema())
        frame = pl.concat(blocks, rechunk=True)
        return frame.sort("created_at", "site", "id").drop("created_at")

    def entries_at(self, keys: Sequence[tuple[str, int]]) -> list[Entry]:
        """The entries of these (site, id) keys, in the same order; ``JournalError``
        for a key head office does not hold."""
        if not keys:
            return []
        rows = self._query(
            f"SELECT {_SELECT_ENTRY} FROM ecrlink_chain.entries "
            "WHERE (site, id) IN (SELECT * FROM unnest(%s::text[], %s::bigint[]))",
            [[k[0] for k in keys], [k[1] for k in keys]],
        )
        found = {(r[0], r[2]): _central_entry(r[2:]) for r in rows}
        missing = [k for k in keys if k not in found]
        if missing:
            site, id_ = missing[0]
            raise JournalError(f"central journal {redact_url(self.url)}: no entry {id_} "
                               f"of site {site}")
        return [found[k] for k in keys]

    def page(
        self,
        limit: int,
        *,
        sites: Iterable[str] | None = None,
        terminal: str | None = None,
        states: Iterable[State] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        count_up_to: int = COUNT_CAP,
    ) -> SitePage:
        """The newest ``limit`` entries (filters as :meth:`entries`), oldest first, and
        how many the selection holds, counted exactly up to ``count_up_to``.

        Reads only the rows it returns (newest first along ``entries_created``), plus a
        capped count when the page does not hold the whole selection.
        """
        where, params = _filters(sites, terminal, states, None, since, until)
        rows = self._query(
            f"SELECT {_SELECT_ENTRY} FROM ecrlink_chain.entries {where} "
            "ORDER BY created_at DESC, site DESC, id DESC LIMIT %s", [*params, limit],
        )
        total = len(rows)
        cap = max(limit + 1, count_up_to)
        if total == limit:
            total = self.count(sites=sites, terminal=terminal, states=states, since=since,
                               until=until, at_most=cap)
        entries = [SiteEntry(r[0], _central_entry(r[2:]), r[1]) for r in reversed(rows)]
        return SitePage(entries, min(total, cap), exact=total <= cap)

    def count(
        self,
        *,
        sites: Iterable[str] | None = None,
        terminal: str | None = None,
        states: Iterable[State] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        at_most: int | None = None,
    ) -> int:
        """How many entries the filters select; with ``at_most``, counting stops after
        ``at_most + 1`` (a result above it means "more than ``at_most``")."""
        where, params = _filters(sites, terminal, states, None, since, until)
        inner = f"SELECT 1 FROM ecrlink_chain.entries {where}"
        if at_most is not None:
            inner += " LIMIT %s"
            params.append(at_most + 1)
        return int(self._query(f"SELECT count(*) FROM ({inner}) AS s", params)[0][0])

    def last_id(self, sites: Iterable[str] | None = None) -> int:
        """The highest store entry id of ``sites`` (default: all; 0 if none): no list
        shows a wider id. One index lookup per site."""
        rows = self._query(
            "SELECT max(m.id) FROM ecrlink_chain.sites s CROSS JOIN LATERAL (SELECT max(id) "
            "AS id FROM ecrlink_chain.entries e WHERE e.site = s.site) m "
            "WHERE %s::text[] IS NULL OR s.site = ANY(%s::text[])",
            [None if sites is None else list(sites)] * 2,
        )
        return int(rows[0][0] or 0)

    def history(self, site: str, entry_id: int) -> list[Change]:
        """The state changes of one entry of ``site``, oldest first."""
        rows = self._query(
            "SELECT id, entry_id, at, state, by, who, note FROM ecrlink_chain.history "
            "WHERE site = %s AND entry_id = %s ORDER BY id", (site, entry_id),
        )
        return [_change(row) for row in rows]

    def changes(self, site: str) -> Iterator[Change]:
        """Every state change of ``site`` head office holds, in the store's order."""
        psycopg = _psycopg()
        try:
            with self.conn.transaction(), self.conn.cursor(name="ecrlink_changes") as cur:
                cur.itersize = 5000
                cur.execute(
                    "SELECT id, entry_id, at, state, by, who, note FROM ecrlink_chain.history "
                    "WHERE site = %s ORDER BY id", (site,),
                )
                for row in cur:
                    yield _change(row)
        except psycopg.Error as exc:
            raise self._error("read failed", exc) from None

    def totals(
        self,
        *,
        sites: Iterable[str] | None = None,
        terminal: str | None = None,
        states: Iterable[State] | None = None,
        commands: Iterable[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[Total]:
        """Counts and sums per site, MID, command and state, computed by the server."""
        where, params = _filters(sites, terminal, states, commands, since, until)
        rows = self._query(
            "SELECT site, mid, command, state, count(*), COALESCE(sum(amount), 0), "
            "COALESCE(sum(charged_amount), 0) FROM ecrlink_chain.entries "
            f"{where} GROUP BY site, mid, command, state ORDER BY site, mid, command, state",
            params,
        )
        return [Total(r[0], r[1], r[2], State(r[3]), r[4], int(r[5]), int(r[6])) for r in rows]

    def sites(self) -> list[SiteStatus]:
        """Every store that has synced, and how far."""
        rows = self._query(
            "SELECT site, journal, shipped, synced_at FROM ecrlink_chain.sites ORDER BY site"
        )
        return [SiteStatus(*row) for row in rows]


class CentralUnreachable(JournalError):
    """The central server could not be reached (or the link dropped): try again later."""


def _filters(
    sites: Iterable[str] | None, terminal: str | None, states: Iterable[State] | None,
    commands: Iterable[str] | None, since: datetime | None, until: datetime | None,
) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if sites is not None:
        clauses.append("site = ANY(%s)")
        params.append(list(sites))
    if terminal is not None:
        clauses.append("terminal = %s")
        params.append(terminal)
    if states is not None:
        clauses.append("state = ANY(%s)")
        params.append([str(s) for s in states])
    if commands is not None:
        clauses.append("command = ANY(%s)")
        params.append(list(commands))
    if since is not None:
        clauses.append("created_at >= %s")
        params.append(since.astimezone(UTC))
    if until is not None:
        clauses.append("created_at < %s")
        params.append(until.astimezone(UTC))
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), params


def _entry_params(e: Entry) -> tuple[Any, ...]:
    return (
        e.id, e.terminal, e.command, e.state.value, e.request_id, e.client_id, e.amount,
        *e.fields, e.created_at, e.updated_at, e.receipt_no, e.void_of, e.approval_code,
        e.ref_no, e.card_no, e.tid, e.mid, e.batch_no, e.stan, e.trans_time, e.return_code,
        e.resolved_by.value if e.resolved_by else None, e.resolved_who, e.note, e.raw_reply,
        e.charged_amount, e.mark_before, e.mark_at, e.deadline,
    )


def _central_entry(row: Sequence[Any]) -> Entry:
    (id_, terminal, command, state, request_id, client_id, amount, f1, f2, f3, f4, f5,
     created_at, updated_at, receipt_no, void_of, approval_code, ref_no, card_no, tid, mid,
     batch_no, stan, trans_time, return_code, resolved_by, resolved_who, note, raw,
     charged_amount, mark_before, mark_at, deadline) = row
    return Entry(
        id=id_, terminal=terminal, command=command, state=State(state),
        request_id=request_id, client_id=client_id, amount=amount,
        fields=(f1, f2, f3, f4, f5), created_at=created_at, updated_at=updated_at,
        receipt_no=receipt_no, void_of=void_of, approval_code=approval_code, ref_no=ref_no,
        card_no=card_no, tid=tid, mid=mid, batch_no=batch_no, stan=stan,
        # The terminal's own clock is Vietnam time; timestamptz kept the instant only.
        trans_time=trans_time.astimezone(VIETNAM_TIME) if trans_time is not None else None,
        return_code=return_code,
        resolved_by=ResolvedBy(resolved_by) if resolved_by else None,
        resolved_who=resolved_who, note=note, raw_reply=bytes(raw) if raw is not None else None,
        charged_amount=charged_amount, mark_before=mark_before, mark_at=mark_at,
        deadline=deadline,
    )


def _change(row: Sequence[Any]) -> Change:
    return Change(row[0], row[1], row[2], State(row[3]), row[4], row[5], row[6])
