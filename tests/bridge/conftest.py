"""A real bridge (``ecrlink serve`` in a subprocess) in front of a real simulator.

Fixtures, reusable by every bridge test (the console and client.js tests too):

- ``sim``: an ``ecrlink.simulator.Simulator`` on a free 127.0.0.1 port, in this
  process, instant (``card_delay`` 0); change it with ``sim.configure(card_delay=3)``
  or script outcomes with ``sim.script([...])``. Its ledger is the truth about what
  was charged: ``sim.ledger.transactions``.
- ``bridge``: a started :class:`BridgeProcess` serving that simulator as terminal
  ``lane1``: ``bridge.url`` (base URL), ``bridge.manager_key``,
  ``bridge.register_key``, ``bridge.sim_url``, ``bridge.client("register" |
  "manager" | None)`` (an ``httpx.Client`` with the key set), ``bridge.restart()``,
  ``bridge.kill()`` (SIGKILL), ``bridge.log()`` (its stderr so far).
- ``make_bridge(**options)``: the same with other settings (extra TOML for
  ``[serve]``, terminal options, top-level TOML such as ``journal = "postgresql://…"``
  or ``site`` and ``[central]`` as ``head``, more environment as ``environ``,
  ``start=False``); every bridge made is stopped at the end of the test.

The bridge's data directory (journal, keys) is ``ECRLINK_HOME`` = ``tmp_path/home``;
nothing touches the user's files. Delays are shortened through ``[serve.tuning]``
(webhook backoff 0.2 s to 1 s, SSE heartbeat 1 s, journal sync every 0.3 s).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ecrlink.simulator import Simulator

MANAGER_KEY = "test-manager-key-0123456789"
REGISTER_KEY = "test-register-key-0123456789"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class BridgeProcess:
    """``ecrlink serve`` as a child process, with its own config and data directory."""

    def __init__(
        self, root: Path, terminals: dict[str, str], *, serve_extra: str = "",
        terminal_options: str = "", tuning: str = "", keys: bool = True,
        listen: str | None = None, head: str = "", environ: dict[str, str] | None = None,
    ) -> None:
        self.root = root
        self.home = root / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.config_path = root / "config.toml"
        self.port = free_port()
        self.listen = listen or f"127.0.0.1:{self.port}"
        self.url = f"http://127.0.0.1:{self.port}"
        self.manager_key = MANAGER_KEY
        self.register_key = REGISTER_KEY
        self.sim_url = next(iter(terminals.values()), "")
        self.journal = self.home / "journal.sqlite3"
        self.environ = environ or {}
        lines = [head, ""]  # top-level keys come before the first table
        for name, url in terminals.items():
            lines += [f"[terminals.{name}]", f'url = "{url}"', terminal_options, ""]
        lines += ["[serve]", f'listen = "{self.listen}"', serve_extra, ""]
        if keys:
            lines += ["[[serve.keys]]", 'name = "manager"', f'key = "{MANAGER_KEY}"',
                      'role = "manager"', "",
                      "[[serve.keys]]", 'name = "counter1"', f'key = "{REGISTER_KEY}"',
                      'role = "register"', 'lang = "en"', ""]
        lines += ["[serve.tuning]", "webhook_backoff = [0.2, 1.0]", "heartbeat = 1.0",
                  "sync_interval = 0.3", "lock_timeout = 2.0", "shutdown_grace = 2.0",
                  tuning, ""]
        self.config_path.write_text("\n".join(lines), encoding="utf-8")
        self.process: subprocess.Popen[bytes] | None = None
        self._log = root / "bridge.log"
        self._out = root / "bridge.out"
        self.starts = 0

    def env(self) -> dict[str, str]:
        """The child's environment: its own data directory, no user config."""
        env = dict(os.environ)
        env["ECRLINK_HOME"] = str(self.home)
        env["ECRLINK_CONFIG"] = str(self.config_path)
        env.pop("ECRLINK_TERMINAL", None)
        env.update(self.environ)
        return env

    def start(self, wait: bool = True) -> BridgeProcess:
        """Start the bridge; with ``wait``, until ``/v1/health`` answers."""
        assert self.process is None or self.process.poll() is not None
        self.starts += 1
        with self._log.open("ab") as err, self._out.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "ecrlink", "serve", "--config", str(self.config_path)],
                env=self.env(), stdout=out, stderr=err,
            )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until the bridge answers its health check."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"bridge exited {self.process.returncode}:\n{self.log()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/v1/health", timeout=1).status_code == 200:
                    return
            time.sleep(0.05)
        raise AssertionError(f"bridge not up in {timeout} s:\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no last words."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not end in 15 s."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self) -> None:
        """Stop and start again (same port, config and data)."""
        self.stop()
        self.start()

    def log(self) -> str:
        """Everything the bridge wrote on stderr so far."""
        return self._log.read_text("utf-8", "replace") if self._log.exists() else ""

    def output(self) -> str:
        """Everything the bridge wrote on stdout so far."""
        return self._out.read_text("utf-8", "replace") if self._out.exists() else ""

    def key(self, role: str | None) -> str | None:
        """The key of a role (None: no key)."""
        return {"manager": self.manager_key, "register": self.register_key}.get(role or "")

    def client(self, role: str | None = "register", **kwargs: Any) -> httpx.Client:
        """An HTTP client for the bridge, with the key of ``role`` (None: no key)."""
        key = self.key(role)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=kwargs.pop(
            "timeout", 30.0), **kwargs)


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Simulator]:
    """One instant simulated terminal on a free port, its batch kept in ``tmp_path``."""
    with Simulator(http=("127.0.0.1", 0), state_file=tmp_path / "sim.json",
                   no_answer_timeout=5.0) as running:
        yield running


@pytest.fixture
def make_bridge(tmp_path: Path, sim: Simulator) -> Iterator[Callable[..., BridgeProcess]]:
    """Make bridges in front of ``sim`` (``start=False`` to start one yourself)."""
    made: list[BridgeProcess] = []

    def make(*, start: bool = True, terminals: dict[str, str] | None = None,
             name: str = "b", **options: Any) -> BridgeProcess:
        process = BridgeProcess(tmp_path / f"{name}{len(made)}",
                                terminals or {"lane1": sim.http_url}, **options)
        made.append(process)
        return process.start() if start else process

    yield make
    for process in made:
        process.stop()


@pytest.fixture
def bridge(make_bridge: Callable[..., BridgeProcess]) -> BridgeProcess:
    """A running bridge serving ``sim`` as ``lane1``, with a manager and a register key."""
    return make_bridge()
