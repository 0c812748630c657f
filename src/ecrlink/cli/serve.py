"""``ecrlink serve``: run the HTTP bridge (``ecrlink.bridge``) until stopped.

Starlette and uvicorn are imported inside the command, so the other commands start
without them (``pip install 'ecrlink[serve]'`` brings them).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .._exceptions import ConfigError, EcrError
from .config import Config, TerminalConfig, Timeouts, config_path, load_config
from .exit_codes import EXIT_CODES_HELP, exit_status_for

if TYPE_CHECKING:
    from ..bridge.config import ServeConfig
    from ..bridge.shipping import HeadOffice

__all__ = ["serve"]


def _config(path: Path | None) -> Config:
    if path is not None and not path.is_file():
        raise ConfigError(f"--config {path}: no such file")
    return load_config(path if path is not None else config_path(os.environ))


def _journal_name(given: str | None, config: Config) -> str:
    """The journal, named as for every command (``--journal`` > ``$ECRLINK_JOURNAL`` >
    the config's ``journal``): a file or a ``postgresql://`` URL, else the default file.
    The bridge must use the registers' journal: its terminal locks are that journal's."""
    from ..journal import ENV_JOURNAL, default_journal_path, is_database_url

    named = [("--journal", given), (f"${ENV_JOURNAL}", os.environ.get(ENV_JOURNAL)),
             (f"{config.path}: journal", config.journal)]
    where, name = next(((w, n) for w, n in named if n), ("", None))
    if name is None:
        return str(default_journal_path())
    if "://" in name and not is_database_url(name):
        raise ConfigError(f"{where}: a journal is a file or a postgresql:// URL "
                          f"(got {name.split('://', 1)[0]}://…)")
    return name


def _head_office(journal: str, config: Config, settings: ServeConfig) -> HeadOffice | None:
    """What ``ecrlink journal sync --follow`` would ship, shipped by the bridge: with
    ``site`` and ``[central] url`` and a journal file; None without them."""
    from ..journal import is_database_url

    if config.central_url is None:
        return None
    if is_database_url(journal):
        raise ConfigError(
            f"{config.path}: [central] url: ecrlink serve ships a store's own journal file "
            "to head office; this store's journal is already a database server (head "
            "office reads it there): remove [central] from this config")
    if config.site is None:
        raise ConfigError(f"{config.path}: site: none given; [central] url needs this "
                          "store's name, like site = \"STORE42\"")
    from ..bridge.shipping import HeadOffice

    return HeadOffice(Path(journal), config.central_url, config.site,
                      interval=settings.tuning.ship_interval,
                      retry_max=settings.tuning.ship_retry_max)


def _make_terminal(target: TerminalConfig, config: Config, lock_timeout: float) -> Any:
    from ..async_client import AsyncTerminal
    from ..client import DEFAULT_CLIENT_ID

    timeouts = Timeouts(lock_timeout=lock_timeout)
    timeouts.update(target.timeouts)

    def make(journal: Any) -> Any:
        return AsyncTerminal(
            target.url, client_id=target.client_id or DEFAULT_CLIENT_ID, journal=journal,
            duplicate_window=config.duplicate_window, **timeouts,
        )

    return make


def _listen(host: str, port: int, address: str) -> socket.socket:
    """The listening socket, bound here so that a busy port is a one-line error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named: asyncio sets TCP_NODELAY only on sockets that say so, and
    # without it a response written in two parts waits 40 ms for the client's ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        if sys.platform != "win32":  # on Windows it would let another program share it
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {address}: {exc.strerror or exc} (is another "
                          "ecrlink serve running? use --listen HOST:PORT)") from None
    return sock


def _logging(quiet: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    root = logging.getLogger("ecrlink")
    root.addHandler(handler)
    root.setLevel(logging.WARNING if quiet else logging.INFO)
    # Card numbers never reach a log (masked by the protocol core); the wire log would
    # still show invoices: only with -v on the payment commands.
    logging.getLogger("ecrlink.wire").setLevel(logging.WARNING)


def run(config_file: Path | None, listen: str | None, journal: str | None,
        quiet: bool) -> None:
    """Build the bridge from the configuration and serve it (blocks)."""
    try:
        import uvicorn
    except ImportError:
        raise ConfigError("ecrlink serve needs its extra: pip install 'ecrlink[serve]'") \
            from None
    from ..bridge.app import build_app
    from ..bridge.auth import Keys, load_or_create_keys
    from ..bridge.config import ServeConfig, is_loopback, parse_listen
    from ..bridge.service import Bridge, TerminalSpec
    from ..client import RequestIds  # the client's own request id generator
    from ..journal import default_data_dir

    config = _config(config_file)
    settings = config.serve or ServeConfig()
    address = listen or settings.listen
    host, port = parse_listen(address, "--listen" if listen else f"{config.path}: listen")
    if not config.terminals:
        raise ConfigError(f"{config.path}: no terminals to serve; name them as "
                          "[terminals.lane1] url = \"http://192.168.1.50\"")
    if not is_loopback(host) and not settings.keys:
        raise ConfigError(f"listening on {address} reaches the network: give API keys in "
                          f"{config.path} ([[serve.keys]]) first")
    data_dir = default_data_dir()
    keys, new_key = load_or_create_keys(settings.keys, data_dir)
    specs = [
        TerminalSpec(name, target.url,
                     _make_terminal(target, config, settings.tuning.lock_timeout))
        for name, target in config.terminals.items()
    ]
    journal_name = _journal_name(journal, config)
    head_office = _head_office(journal_name, config, settings)
    listening = _listen(host, port, address)
    _logging(quiet)
    bridge = Bridge(settings, journal_name, specs, request_ids=RequestIds().next,
                    head_office=head_office, data_dir=data_dir)
    app = build_app(bridge, Keys(keys, settings.lang), data_dir=data_dir)
    if new_key is not None:
        click.echo(f"ecrlink serve: a manager API key was made; it is shown only now, keep "
                   f"it: {new_key}")
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"ecrlink serve: http://{shown}:{port}  terminals: "
               f"{', '.join(config.terminals)}  journal: {bridge.journal.where}"
               + (f"  head office: {head_office.where} as {head_office.site}"
                  if head_office is not None else ""), err=True)
    # Journal and SQLite calls run in worker threads; with Python's default 5 ms switch
    # interval a thread that finished its call may wait that long for the event loop to
    # hand over the interpreter. 1 ms keeps the bridge's added latency low.
    sys.setswitchinterval(0.001)
    server = uvicorn.Server(uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False, lifespan="on",
        server_header=False, proxy_headers=False, timeout_graceful_shutdown=5,
    ))
    # uvicorn stops gracefully on SIGINT/SIGTERM, then raises the signal again with the
    # handler found before it: a quiet one lets the command end with exit 0, not die of
    # the signal (systemd and service wrappers read that as a failure).
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda *_: None)
    server.run(sockets=[listening])


@click.command("serve", epilog=EXIT_CODES_HELP)
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="The configuration file (default: ECRLINK_CONFIG, else the "
              "platform's place).")
@click.option("--listen", metavar="HOST:PORT", default=None,
              help="Address to listen on (default: [serve] listen, else 127.0.0.1:8765).")
@click.option("--journal", metavar="FILE|URL", default=None,
              help="The journal: a file or postgresql://user@host/db (default: "
              "ECRLINK_JOURNAL, else the config's journal, else the user's journal file).")
@click.option("-q", "--quiet", is_flag=True, help="Log only warnings and errors.")
def serve(config_file: Path | None, listen: str | None, journal: str | None,
          quiet: bool) -> None:
    """Run the HTTP bridge for web, Android and .NET registers (ecrlink[serve]).

    Serves the terminals of the configuration file over HTTP/JSON (docs/bridge.md):
    payments with idempotency keys, long-poll, Server-Sent Events, webhooks, the web
    console at / and /v1/client.js. Stop it with Ctrl-C.
    """
    try:
        run(config_file, listen, journal, quiet)
    except EcrError as exc:
        # One line: a database's own message may span several.
        said = " ".join(line.strip() for line in str(exc).splitlines())
        click.echo(f"ecrlink serve: error: {said}", err=True)
        sys.exit(int(exit_status_for(exc)))
