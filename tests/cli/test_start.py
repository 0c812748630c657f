"""Fast start: each command imports only what it needs (issue 11).

Every check runs in a fresh interpreter, since this test process has imported
everything already. The timing goal itself lives in ``bench/bench_start.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest

from ecrlink.cli.app import COMMANDS, cli

# Never needed to take a payment from the command line.
HEAVY = ("ecrlink.simulator", "ecrlink.reconcile", "ecrlink.bridge", "ecrlink.cli.demo",
         "ecrlink.cli.simulate", "ecrlink.cli.reconcile", "polars", "duckdb", "openpyxl",
         "psycopg", "starlette", "uvicorn", "pygments", "httpx", "httpcore", "anyio")


def loaded_after(code: str) -> set[str]:
    """The modules a fresh interpreter has loaded after running ``code``."""
    probe = f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout
    return set(json.loads(out.splitlines()[-1]))


def under(modules: set[str], *roots: str) -> set[str]:
    return {m for m in modules if any(m == r or m.startswith(r + ".") for r in roots)}


def test_help_imports_no_command() -> None:
    modules = loaded_after(
        "from ecrlink.cli.app import cli\n"
        "try:\n    cli(['--help'])\nexcept SystemExit:\n    pass"
    )
    commands = {f"ecrlink.cli.{c.module}" for c in COMMANDS.values()}
    assert not under(modules, *commands, *HEAVY, "sqlite3", "rich")


@pytest.mark.parametrize("name", ["sale", "void", "settle", "last"])
def test_payment_commands_load_no_simulator_reconcile_or_bridge(name: str) -> None:
    modules = loaded_after(
        "import click\nfrom ecrlink.cli.app import cli\n"
        f"cli.get_command(click.Context(cli), {name!r})"
    )
    assert "ecrlink.cli.payments" in modules
    assert not under(modules, *HEAVY, "rich", "asyncio", "ecrlink.journal.central")


def test_journal_commands_load_no_database_driver() -> None:
    modules = loaded_after(
        "import click\nfrom ecrlink.cli.app import cli\n"
        "cli.get_command(click.Context(cli), 'journal')"
    )
    assert "ecrlink.cli.journal_sync" in modules  # registered...
    assert not under(modules, "ecrlink.journal.central", "ecrlink.journal.sync", *HEAVY)


def test_blocking_client_imports_no_asyncio() -> None:
    modules = loaded_after("import ecrlink\nfrom ecrlink import Terminal")
    assert "ecrlink.client" in modules
    assert not under(modules, "ecrlink.async_client", "asyncio", *HEAVY)


def test_async_client_is_still_reachable_by_every_old_name() -> None:
    import ecrlink
    import ecrlink.client
    from ecrlink.async_client import AsyncTerminal

    assert ecrlink.AsyncTerminal is AsyncTerminal
    assert ecrlink.client.AsyncTerminal is AsyncTerminal  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        _ = ecrlink.NoSuchThing  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", list(COMMANDS))
def test_help_summaries_match_the_commands(name: str) -> None:
    command = cli.get_command(click.Context(cli), name)
    assert command is not None
    assert COMMANDS[name].summary == (command.help or "").split("\n\n")[0].strip()


def test_help_lists_every_command_in_order() -> None:
    result = subprocess.run([sys.executable, "-m", "ecrlink", "--help"], capture_output=True,
                            text=True, check=True)
    listed = [line.split()[0] for line in
              result.stdout.split("Commands:")[1].strip().splitlines()[:len(COMMANDS)]]
    assert listed == list(COMMANDS)
