"""``ecrlink simulate``: run simulated terminals until Ctrl-C or SIGTERM."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any, TypeVar

import click

from .._exceptions import ConfigError
from ..simulator import MAGIC_AMOUNTS, Plan, Simulator, parse_plan
from ..simulator.terminal import BUSY_LAST_TRANS, FIRMWARES, MAX_DELAY, ON_HANGUP
from .exit_codes import exit_status_for

__all__ = ["simulate"]

_DEFAULT_HTTP = "127.0.0.1:8080"

F = TypeVar("F", bound=Callable[..., Any])


class _CannotStart(click.ClickException):
    """The simulator cannot start (port taken, unreadable state file, ...)."""

    exit_code = int(exit_status_for(ConfigError("")))


def _host_port(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT``, ``PORT`` or ``[v6]:PORT``."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise click.BadParameter(f"expected HOST:PORT, got {text!r}", param_hint="--http")
    return host, int(port)


def _seconds_option(flag: str, default: float, help_text: str) -> Callable[[F], F]:
    """A delay or timer in seconds, within what the simulator's settings accept."""
    return click.option(
        flag, type=click.FloatRange(0, MAX_DELAY), default=default, show_default=True,
        help=help_text,
    )


def _magic_help() -> str:
    rows = ", ".join(
        f"…{last:03d} {plan.name}" for last, plan in sorted(MAGIC_AMOUNTS.items())
    )
    return f"Amounts ending in: {rows}; anything else is approved."


@click.command("simulate", epilog=_magic_help())
@click.option(
    "--http", "http_addr", metavar="HOST:PORT",
    help=f"Listen for HTTP here (default {_DEFAULT_HTTP} unless every terminal has a serial "
    "line; port 0 picks free ports).",
)
@click.option(
    "--serial", "serial_path", metavar="PATH", type=click.Path(dir_okay=False),
    help="Create a pty and publish it as this symlink (more terminals: PATH-2, PATH-3, ...). "
    "POSIX only; on Windows use --serial-port.",
)
@click.option(
    "--serial-port", "serial_ports", metavar="NAME", multiple=True,
    help="Serve on this existing port: one end of a com0com pair (COM5; the register opens "
    "the other, serial:COM6), /dev/ttyUSB1, socket://HOST:PORT. Repeat for terminals 2, 3, "
    "...; not with --serial.",
)
@click.option(
    "--state", "state_file", type=click.Path(dir_okay=False),
    help="Keep the terminals' batches in this JSON file across restarts.",
)
@_seconds_option(
    "--card-delay", 2.0, "Seconds the customer takes at the card reader (0: instant)."
)
@_seconds_option("--bank-delay", 0.0, "Seconds between the bank's approval and the reply.")
@_seconds_option(
    "--no-answer-timeout", 30.0, "The terminal's own timer for a request it never answers (…998)."
)
@click.option(
    "--terminals", type=click.IntRange(1, 1000), default=1, show_default=True,
    help="How many terminals, on consecutive ports.",
)
@click.option(
    "--statement", "statement_path", type=click.Path(dir_okay=False),
    help="Write the acquirer's CSV statement here on each settlement and at exit.",
)
@click.option(
    "--statement-open-batch", is_flag=True,
    help="Include the open batch in the statement, not only settled ones.",
)
@click.option(
    "--baud-pacing/--no-baud-pacing", default=True, show_default=True,
    help="Send serial replies at the real 115200 baud.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the test cards.")
@click.option(
    "--script", "script", multiple=True, metavar="OUTCOME",
    help="Queue an outcome for the next sale of every terminal (repeatable): approve, "
    "decline:NN, cancel, no_answer, lost_reply, truncated.",
)
@click.option(
    "--firmware", type=click.Choice(FIRMWARES), default="v201", show_default=True,
    help="v201: replies as the protocol document's samples (no requestId/clientId inside "
    "a sale's or last trans's transInfo); echo: the original ones repeated there.",
)
@click.option(
    "--on-hangup", type=click.Choice(ON_HANGUP), default="finish", show_default=True,
    help="The ECR hangs up while the customer is at the card reader: finish (the sale goes "
    "on, its reply is lost, last trans shows it) or cancel (nothing charged).",
)
@click.option(
    "--busy-last-trans", type=click.Choice(BUSY_LAST_TRANS), default="refuse",
    show_default=True,
    help="last trans during a sale: refuse (busy) or answer with the previous transaction.",
)
@click.option("-q", "--quiet", is_flag=True, help="Do not log each request and reply.")
def simulate(
    http_addr: str | None,
    serial_path: str | None,
    serial_ports: tuple[str, ...],
    state_file: str | None,
    card_delay: float,
    bank_delay: float,
    no_answer_timeout: float,
    terminals: int,
    statement_path: str | None,
    statement_open_batch: bool,
    baud_pacing: bool,
    seed: int,
    script: tuple[str, ...],
    firmware: str,
    on_hangup: str,
    busy_last_trans: str,
    quiet: bool,
) -> None:
    """Run simulated Web ECR terminals (HTTP and/or serial lines) until stopped.

    Amounts pick the outcome (see below); control endpoints: GET /_sim/state,
    POST /_sim/script (JSON list), POST /_sim/reset, POST /_sim/config. Serial on
    Windows: serve on one end of a com0com pair (--serial-port COM5) and point the
    register at the other (serial:COM6).
    """
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        format="%(asctime)s %(message)s",
        stream=sys.stderr,
    )
    try:
        plans: list[Plan] = [parse_plan(outcome) for outcome in script]
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--script") from exc
    for path, option in ((state_file, "--state"), (statement_path, "--statement")):
        _check_writable(path, option)
    _check_serial_ports(serial_ports, serial_path, terminals)
    if http_addr is None and serial_path is None and len(serial_ports) < terminals:
        http_addr = _DEFAULT_HTTP
    http = _host_port(http_addr) if http_addr is not None else None
    try:
        sim = Simulator(
            http=http,
            serial=serial_path,
            serial_port=list(serial_ports),
            state_file=state_file,
            card_delay=card_delay,
            bank_delay=bank_delay,
            no_answer_timeout=no_answer_timeout,
            terminals=terminals,
            baud_pacing=baud_pacing,
            statement=statement_path,
            statement_open_batch=statement_open_batch,
            seed=seed,
            firmware=firmware,
            on_hangup=on_hangup,
            busy_last_trans=busy_last_trans,
        )
    except ConfigError as exc:  # e.g. one port given twice (COM5 and com5)
        raise _CannotStart(str(exc)) from exc
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            sim.start()
        except ConfigError as exc:
            raise _CannotStart(str(exc)) from exc
        try:
            serial_urls = sim.serial_urls if serial_path or serial_ports else []
            for terminal in range(terminals):
                tid = sim.terminal(terminal).ledger.identity.tid
                where = []
                if http is not None:
                    where.append(sim.http_urls[terminal])
                if terminal < len(serial_ports):
                    # The simulator cannot know the pair's other end: say where it is.
                    where.append(
                        f"{serial_urls[terminal]} (the register opens the other end of its pair)"
                    )
                elif serial_path is not None:
                    where.append(f"{serial_urls[terminal]} ({sim.serial_devices[terminal]})")
                click.echo(f"terminal {terminal + 1} TID {tid}: {'  '.join(where)}")
                if plans:
                    sim.script(plans, terminal)
            click.echo("ready; Ctrl-C to stop", err=True)
            sys.stdout.flush()
            while not stop.wait(0.5):
                pass
        except ConfigError as exc:
            raise _CannotStart(str(exc)) from exc
        finally:
            sim.stop()
        if statement_path is not None:
            click.echo(f"statement written to {statement_path}", err=True)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _check_serial_ports(ports: tuple[str, ...], serial_path: str | None, terminals: int) -> None:
    """One line for what the simulator would refuse anyway, before anything starts."""
    if ports and serial_path is not None:
        raise click.BadParameter(
            "give --serial (a new pty) or --serial-port (an existing port), not both",
            param_hint="--serial-port",
        )
    if len(ports) > terminals:
        raise click.BadParameter(
            f"{len(ports)} ports for {terminals} terminal(s); at most one per terminal "
            "(raise --terminals)",
            param_hint="--serial-port",
        )


def _check_writable(path: str | None, option: str) -> None:
    """A file the simulator will write needs a folder that exists: say so at once, not
    with a traceback at the first settlement."""
    if path is None:
        return
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise click.BadParameter(f"folder {folder} does not exist", param_hint=option)
    if not os.access(folder, os.W_OK):
        raise click.BadParameter(f"folder {folder} is not writable", param_hint=option)
