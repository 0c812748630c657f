"""A throwaway PostgreSQL server for tests: initdb and pg_ctl in a temporary directory.

Listens on 127.0.0.1 only, on a free port, with its unix socket in the same temporary
directory. When the tests run as root (CI, containers) the server runs as the
``postgres`` user, which PostgreSQL requires. ``stop()``/``start()`` take it down and
bring it back on the same port and data (the outage faults); ``destroy()`` removes it.

Binaries: ``$ECRLINK_PG_BINDIR`` (only there when set), else ``pg_ctl`` on the PATH, else Debian's
``/usr/lib/postgresql/<version>/bin`` (``apt-get install postgresql``).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["PgServer", "find_bindir"]


def find_bindir() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``, or None if there is none."""
    exe = ".exe" if sys.platform == "win32" else ""
    if os.environ.get("ECRLINK_PG_BINDIR"):  # exactly this one, or none
        chosen = Path(os.environ["ECRLINK_PG_BINDIR"])
        ok = (chosen / f"initdb{exe}").is_file() and (chosen / f"pg_ctl{exe}").is_file()
        return chosen if ok else None
    candidates: list[Path] = []
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)

    def version(p: Path) -> float:
        try:
            return float(p.parent.name)
        except ValueError:
            return 0.0

    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
    for directory in candidates:
        if (directory / f"initdb{exe}").is_file() and (directory / f"pg_ctl{exe}").is_file():
            return directory
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


class PgServer:
    """One PostgreSQL cluster in a temporary directory (``fsync`` off unless asked)."""

    def __init__(self, bindir: Path, *, fsync: bool = False) -> None:
        self.bindir = bindir
        self.fsync = fsync
        self.root = Path(tempfile.mkdtemp(prefix="ecrlink-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = 0
        self.running = False
        self._databases = 0
        if _as_root():
            import pwd

            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
        atexit.register(self.destroy)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust",
                  "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")

    def _run(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / tool), *args]
        if _as_root():
            runuser = shutil.which("runuser")
            command = (
                [runuser, "-u", "postgres", "--", *command] if runuser
                else ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(command)]
            )
        done = subprocess.run(
            command, cwd=self.root, capture_output=True, text=True, timeout=120,
            stdin=subprocess.DEVNULL,
        )
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(
                f"{tool} failed ({done.returncode}): {done.stderr.strip()}\n{log}"
            )
        return done

    def _configure(self) -> None:
        settings = {
            "port": str(self.port),
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.root}'",
            "fsync": "on" if self.fsync else "off",
            "synchronous_commit": "on",
            "full_page_writes": "on" if self.fsync else "off",
            "max_connections": "60",
            "shared_buffers": "32MB",
            "log_min_messages": "warning",
        }
        conf = self.data / "postgresql.auto.conf"
        conf.write_text("".join(f"{k} = {v}\n" for k, v in settings.items()))
        if _as_root():
            import pwd

            user = pwd.getpwnam("postgres")
            os.chown(conf, user.pw_uid, user.pw_gid)

    def start(self) -> None:
        """Start (again, on the same port once it has one) and wait until it accepts."""
        if self.running:
            return
        attempts = 1 if self.port else 3
        for attempt in range(attempts):
            if not self.port or attempt:
                self.port = _free_port()
            self._configure()
            try:
                self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w",
                          "-t", "60", "start")
            except RuntimeError:
                if attempt == attempts - 1:
                    raise
                continue
            self.running = True
            return

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: clients cut off; ``immediate``: like a crash)."""
        if not self.running:
            return
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")
        self.running = False

    def url(self, database: str = "postgres") -> str:
        """A URL to ``database`` as the superuser, over TCP on 127.0.0.1."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; returns its URL."""
        import psycopg

        self._databases += 1
        name = f"t{self._databases}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def destroy(self) -> None:
        """Stop the server (if running) and remove its directory."""
        with contextlib.suppress(RuntimeError, OSError, subprocess.TimeoutExpired):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
