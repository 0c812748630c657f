"""Options every command shares, and the ``Session`` they turn into.

``@command_options(...)`` adds ``--terminal/-t``, ``--json``, ``--lang``, ``-v``,
``--journal``/``--no-journal``, ``--client-id`` and ``--timeout`` (each command picks
the ones it needs) and hands the command a ``Session`` instead of loose values. It
also ends every command the same way: the command returns an ``ExitStatus``; an
``EcrError`` is printed as one line on stderr and its exit code comes from
``exit_status_for``, the one mapping.

The environment (streams, environment variables) is injectable, as in httpie: pass
an ``Environment`` as Click's ``obj`` and the command reads and writes only through it.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, TypeVar, cast

import click

from .._exceptions import DuplicateInvoice, EcrError, FieldError, InDoubtPending
from ..client import DEFAULT_CLIENT_ID, Terminal
from ..journal import ENV_JOURNAL, Journal, open_journal
from ..protocol import Result
from .config import Config, TerminalConfig, Timeouts, config_path, load_config, resolve_terminal
from .exit_codes import ExitStatus, exit_status_for
from .messages import LANGS, Lang, default_lang, text
from .streams import SafeStream

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["Environment", "Session", "command_options", "echo_error"]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Environment:
    """What a command may touch of the outside world; tests pass their own."""

    stdout: IO[str] | None = None
    """None: whatever ``sys.stdout`` is when the command writes (Click's test runner
    swaps it)."""
    stderr: IO[str] | None = None
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)

    @property
    def out(self) -> IO[str]:
        """The stream for data and people's output (never fails: see ``streams``)."""
        return _safe(self.stdout if self.stdout is not None else sys.stdout)

    @property
    def err(self) -> IO[str]:
        """The stream for diagnostics, errors and the live status line."""
        return _safe(self.stderr if self.stderr is not None else sys.stderr)


def _safe(stream: IO[str]) -> IO[str]:
    return stream if isinstance(stream, SafeStream) else cast(IO[str], SafeStream(stream))


def _environment() -> Environment:
    ctx = click.get_current_context(silent=True)
    while ctx is not None:
        if isinstance(ctx.obj, Environment):
            return ctx.obj
        ctx = ctx.parent
    return Environment()


@dataclass
class Session:
    """One command's settings, resolved from options, environment and config file."""

    env: Environment
    lang: Lang
    json: bool = False
    verbose: int = 0
    terminal: str | None = None
    journal: str | None = None
    use_journal: bool = True
    client_id: str | None = None
    timeout: float | None = None
    _config: Config | None = None
    recovered: list[Result] = field(default_factory=list)
    """Earlier interrupted payments the command settled before starting (``--json``
    prints them under ``"recovered"``)."""

    @functools.cached_property
    def out(self) -> Console:
        """Rich console on stdout, for people (Rich is imported on first use: a sale
        sends its first byte before any of it is needed)."""
        from rich.console import Console

        return Console(file=self.env.out, highlight=False, soft_wrap=False)

    @functools.cached_property
    def err(self) -> Console:
        """Rich console on stderr, for the live status line."""
        from rich.console import Console

        return Console(file=self.env.err, highlight=False)

    def t(self, key: str, **values: object) -> str:
        """A message from the catalogue in this session's language."""
        return text(key, self.lang, **values)

    def config(self) -> Config:
        """The configuration file, read once."""
        if self._config is None:
            self._config = load_config(config_path(self.env.environ))
        return self._config

    def terminal_config(self) -> TerminalConfig:
        """The terminal to talk to (``--terminal`` > ``$ECRLINK_TERMINAL`` > config)."""
        return resolve_terminal(self.terminal, self.env.environ, self.config())

    def terminal_url_filter(self) -> str | None:
        """``--terminal`` as a journal filter: a configured name becomes its URL."""
        if self.terminal is None:
            return None
        named = self.config().terminals.get(self.terminal)
        return named.url if named is not None else self.terminal

    def journal_name(self) -> str | None:
        """The journal named for this command: ``--journal`` > ``$ECRLINK_JOURNAL`` > the
        config file's ``journal`` (a file or a ``postgresql://`` URL); None: the default."""
        if self.journal is not None:
            return self.journal
        return self.env.environ.get(ENV_JOURNAL) or self.config().journal or None

    def journal_option(self) -> str | bool:
        """What ``Terminal(journal=...)`` gets: a path or URL, the default (True) or none."""
        if not self.use_journal:
            return False
        name = self.journal_name()
        return name if name is not None else True

    def open_journal(self) -> Journal:
        """The journal the journal commands read (named, or the default one)."""
        # A journal named on the command line must exist: these commands only read or
        # settle what is there.
        name = self.journal_name()
        return open_journal(name, create=False) if name is not None else open_journal(
            environ={})

    def open_terminal(
        self, target: TerminalConfig | None = None, *, transliterate: bool = False
    ) -> Terminal:
        """A ``Terminal`` for ``target`` (default: ``terminal_config()``), options applied."""
        target = target or self.terminal_config()
        timeouts = Timeouts(**target.timeouts)
        if self.timeout is not None:
            timeouts["timeout"] = self.timeout
        client_id = self.client_id or target.client_id or DEFAULT_CLIENT_ID
        return Terminal(
            target.url, client_id=client_id, journal=self.journal_option(),
            transliterate=transliterate, duplicate_window=self.config().duplicate_window,
            on_recovered=self.tell_recovered, **timeouts,
        )

    def tell_recovered(self, results: list[Result]) -> None:
        """Show the cashier what became of earlier interrupted payments, at once (before
        the new command starts); under ``--json`` they join the command's output."""
        self.recovered += results
        if self.json:
            return
        from .output import render_result

        for result in results:
            self.out.print(self.t("recovered_first", id=result.journal_id or "?"),
                           markup=False, highlight=False)
            render_result(self.out, result, self.lang)

    def recovered_json(self) -> dict[str, Any]:
        """``{"recovered": [...]}`` when earlier payments were settled first, else ``{}``."""
        if not self.recovered:
            return {}
        return {"recovered": [r.to_dict(self.lang) for r in self.recovered]}

    def print_json(self, data: object) -> None:
        """Exactly one JSON document on stdout, ASCII-only (Vietnamese as ``\\u`` escapes),
        so that it reads the same whatever the console's code page."""
        self.env.out.write(json.dumps(data) + "\n")
        self.env.out.flush()

    @contextlib.contextmanager
    def waiting(self, key: str) -> Iterator[None]:
        """A live status line with elapsed seconds, on a terminal only (never in --json)."""
        # A pipe (a register program reading us) never gets the line, and is told so
        # without loading Rich (unless a console was set up for us: it decides).
        on_terminal = "err" in self.__dict__ or self.env.err.isatty()
        if self.json or not on_terminal or not self.err.is_terminal:
            yield
            return
        started = time.monotonic()
        done = threading.Event()
        with self.err.status(self.t(key, elapsed=0)) as status:

            def tick() -> None:
                while not done.wait(0.2):
                    status.update(self.t(key, elapsed=int(time.monotonic() - started)))

            # The request runs in this (main) thread so Ctrl-C reaches the client,
            # which records the payment as in doubt; only the clock runs beside it.
            ticker = threading.Thread(target=tick, daemon=True)
            ticker.start()
            try:
                yield
            finally:
                done.set()
                ticker.join()


_ERROR_KIND = {
    ExitStatus.BAD_INPUT: "bad_input",
    ExitStatus.UNREACHABLE: "unreachable",
    ExitStatus.BUSY: "busy",
    ExitStatus.IN_DOUBT_PENDING: "in_doubt_pending",
    ExitStatus.DUPLICATE_INVOICE: "duplicate_invoice",
    ExitStatus.JOURNAL_ERROR: "journal_error",
}


def echo_error(
    env: Environment, lang: str, exc: BaseException, *, as_json: bool = False,
    extra: Mapping[str, Any] | None = None,
) -> ExitStatus:
    """Print ``exc`` as one line on stderr; return its exit code.

    With ``as_json`` the same error is also one JSON object on stdout, for a register
    program that reads only stdout: ``{"error": {"code", "exit", "kind", "message"}}``;
    a refused field adds ``field``, ``rule`` (English) and ``rule_code``, and its message
    is in ``lang``, field name included (``ecrlink.protocol.field_texts``).
    """
    from ..protocol.field_texts import field_message

    status = exit_status_for(exc)
    kind_key = _ERROR_KIND.get(status, "error")
    kind = text(kind_key, lang)
    if isinstance(exc, FieldError):
        message = field_message(exc, lang)
    elif isinstance(exc, InDoubtPending):
        # The library's message names force=True; a cashier needs the CLI's words.
        message = text("in_doubt_refusal", lang, ids=", ".join(map(str, exc.journal_ids)))
    else:
        message = " ".join(str(exc).split()) or type(exc).__name__
    env.err.write(f"ecrlink: {kind}: {message}\n")
    env.err.flush()
    if as_json:
        error = {"code": status.name.lower(), "exit": int(status), "kind": kind,
                 "message": message, "type": type(exc).__name__}
        if isinstance(exc, FieldError):
            error.update(field=exc.field, rule=exc.rule, rule_code=exc.code)
        if isinstance(exc, InDoubtPending):
            error["journal_ids"] = list(exc.journal_ids)
        elif isinstance(exc, DuplicateInvoice):
            error["journal_ids"] = [exc.journal_id]
        env.out.write(json.dumps({"error": error, **(extra or {})}) + "\n")
        env.out.flush()
    return status


@contextlib.contextmanager
def _logs(env: Environment, verbose: int) -> Iterator[None]:
    """The library's warnings on stderr, one line each; ``-v`` adds the wire log
    (request line, raw reply; cards already masked)."""
    loud = logging.StreamHandler(env.err)
    loud.setLevel(logging.WARNING)
    loud.setFormatter(logging.Formatter("ecrlink: %(levelname)s: %(message)s"))
    loggers = [(logging.getLogger("ecrlink"), loud, logging.WARNING)]
    if verbose:
        wire = logging.StreamHandler(env.err)
        wire.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        loggers.append((logging.getLogger("ecrlink.wire"), wire, logging.DEBUG))
    saved = [(logger, logger.level, logger.propagate) for logger, _, _ in loggers]
    for logger, handler, level in loggers:
        logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = False
    try:
        yield
    finally:
        for (logger, handler, _), (_, level, propagate) in zip(loggers, saved, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)
            logger.propagate = propagate


def command_options(
    *,
    terminal: bool = True,
    journal: bool = True,
    client: bool = True,
    json_flag: bool = True,
    terminal_help: str = "Terminal URL or name from the config file [env: ECRLINK_TERMINAL].",
) -> Callable[[F], F]:
    """Add the shared options to a command and pass it a ``Session`` as first argument."""

    def decorate(f: F) -> F:
        @functools.wraps(f)
        def run(**kwargs: Any) -> None:
            env = _environment()
            lang_opt = kwargs.pop("lang", None)
            lang: Lang = lang_opt if lang_opt in LANGS else default_lang(env.environ)
            session = Session(
                env=env,
                lang=lang,
                json=kwargs.pop("as_json", False),
                verbose=kwargs.pop("verbose", 0),
                terminal=kwargs.pop("terminal", None),
                journal=kwargs.pop("journal", None),
                use_journal=kwargs.pop("use_journal", True),
                client_id=kwargs.pop("client_id", None),
                timeout=kwargs.pop("timeout", None),
            )
            try:
                with _logs(env, session.verbose):
                    status = f(session, **kwargs)
            except EcrError as exc:
                status = echo_error(env, session.lang, exc, as_json=session.json,
                                    extra=session.recovered_json())
            except KeyboardInterrupt:
                # Commands that can leave a payment in doubt catch Ctrl-C themselves.
                env.err.write("\n")
                status = ExitStatus.INTERRUPTED
            raise click.exceptions.Exit(int(status if status is not None else ExitStatus.OK))

        options: list[Callable[[F], F]] = [
            click.option(
                "--lang", type=click.Choice(LANGS), default=None,
                help="Language of messages [default: Vietnamese if the locale is, "
                "else English; env: ECRLINK_LANG].",
            ),
            click.option(
                "-v", "--verbose", count=True,
                help="Show the wire log on stderr (request line and raw reply, cards masked).",
            ),
        ]
        if json_flag:
            options.append(click.option(
                "--json", "as_json", is_flag=True,
                help="Print JSON for scripts (Result.to_dict) instead of text.",
            ))
        if terminal:
            options.append(click.option(
                "-t", "--terminal", metavar="URL|NAME", default=None, help=terminal_help
            ))
        if journal:
            options.append(click.option(
                "--journal", metavar="FILE|URL", type=click.Path(dir_okay=False), default=None,
                help="Journal file, or a postgresql://user@host/db shared by the shop's "
                "registers [default: env ECRLINK_JOURNAL, config journal, else "
                "journal.sqlite3 in $ECRLINK_HOME or the user data dir].",
            ))
        if client:
            options += [
                click.option(
                    "--no-journal", "use_journal", flag_value=False, default=True,
                    help="Do not journal (quick trials only: no recovery, no guard).",
                ),
                click.option(
                    "--client-id", metavar="ID", default=None,
                    help="Client id sent with each request [default: config, else ECRLINK].",
                ),
                click.option(
                    "--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
                    metavar="SECONDS",
                    help="How long the customer may take [default: config, else 180].",
                ),
            ]
        wrapped: Any = run
        for option in reversed(options):
            wrapped = option(wrapped)
        return wrapped  # type: ignore[no-any-return]

    return decorate
