"""Cold start: how long after process start the first byte of a sale reaches the terminal.

Side by side in one run, interleaved, each the median of ``--runs`` cold processes:

- ``python -c pass``                      the interpreter alone
- ``python -c "import httpx"``            the yardstick for ``ecrlink --help``
- ``curl``                                first byte of a GET, no Python at all
- ``python + httpx`` script               first byte of a bare httpx GET
- ``ecrlink sale`` (journal on)           first byte of the CLI's sale (its pre-send
                                          ``last trans`` on a fresh journal)
- ``ecrlink --help``                      whole command, to exit

The "terminal" is a socket on 127.0.0.1 that notes when the first request byte
arrives; the measured process is then killed (each sale gets its own throw-away
ECRLINK_HOME). Goals (issue 11): sale's first byte within 150 ms of process start,
``--help`` within 1.2x ``import httpx``.

    python bench/bench_start.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ecrlink.journal import Journal

PY = sys.executable
ECRLINK = [PY, "-m", "ecrlink"] if shutil.which("ecrlink") is None else ["ecrlink"]


class FirstByte:
    """A listening socket that records when the first byte of each connection arrives."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.arrived = threading.Event()
        self.at = 0.0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                if conn.recv(1):
                    self.at = time.perf_counter()
                    self.arrived.set()

    def expect(self) -> None:
        self.arrived.clear()


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


LAST_CPU = [0.0]
"""CPU seconds the last measured process used up to its first byte (killed then) or
its exit: steadier than wall time on a busy machine."""


def first_byte(server: FirstByte, argv: list[str], env: dict[str, str]) -> float:
    server.expect()
    cpu = _children_cpu()
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        if not server.arrived.wait(10):
            raise RuntimeError(f"no byte from {argv}")
        return server.at - start
    finally:
        proc.kill()
        proc.wait()
        LAST_CPU[0] = _children_cpu() - cpu


def whole(argv: list[str], env: dict[str, str]) -> float:
    cpu = _children_cpu()
    start = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=True)
    elapsed = time.perf_counter() - start
    LAST_CPU[0] = _children_cpu() - cpu
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    server = FirstByte()
    url = f"http://127.0.0.1:{server.port}"
    home = Path(tempfile.mkdtemp(prefix="ecrlink-bench-start-"))
    env = {**os.environ, "ECRLINK_HOME": str(home), "ECRLINK_CONFIG": str(home / "none.toml")}
    # As installed: Python caches compiled modules (pip does it for site-packages at
    # install time; the warm-up runs do it for an editable checkout). Some shells set
    # PYTHONDONTWRITEBYTECODE, which would make every start compile ecrlink afresh.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    counter = iter(range(10**9))

    # The register's journal exists (made once, at installation); each run gets a copy
    # with nothing in it, as the first sale of the day with no high-water mark known:
    # its first byte is the `last trans` asked before the sale.
    template = home / "template"
    template.mkdir()
    Journal(template / "journal.sqlite3").close()

    def sale() -> float:
        run_home = home / f"run{next(counter)}"
        shutil.copytree(template, run_home)
        run_env = {**env, "ECRLINK_HOME": str(run_home)}
        return first_byte(server, [*ECRLINK, "sale", "1000", "-t", url], run_env)

    httpx_get = f"import httpx; httpx.get({url + '/ecr'!r}, timeout=5)"
    contenders: dict[str, Callable[[], float]] = {
        "python -c pass": lambda: whole([PY, "-c", "pass"], env),
        "python -c 'import httpx'": lambda: whole([PY, "-c", "import httpx"], env),
        "curl, first byte": lambda: first_byte(
            server, ["curl", "-s", "-m", "5", url + "/ecr"], env),
        "python + httpx GET, first byte": lambda: first_byte(
            server, [PY, "-c", httpx_get], env),
        "ecrlink sale, first byte": sale,
        "ecrlink --help": lambda: whole([*ECRLINK, "--help"], env),
    }
    if shutil.which("curl") is None:
        del contenders["curl, first byte"]
    times: dict[str, list[float]] = {name: [] for name in contenders}
    cpu: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(2):  # warm the page cache; not counted
        for run in contenders.values():
            run()
    for _ in range(args.runs):
        for name, run in contenders.items():
            times[name].append(run())
            cpu[name].append(LAST_CPU[0])
    shutil.rmtree(home, ignore_errors=True)

    median = {name: statistics.median(values) * 1000 for name, values in times.items()}
    base = median["python -c 'import httpx'"]
    print(f"cold start, median of {args.runs} runs each, interleaved ({os.cpu_count()} cores)")
    print(f"{'':34} {'median ms':>10} {'min ms':>8} {'cpu ms':>7} {'x import httpx':>15}")
    for name, values in times.items():
        print(f"{name:34} {median[name]:10.1f} {min(values) * 1000:8.1f} "
              f"{statistics.median(cpu[name]) * 1000:7.1f} {median[name] / base:15.2f}")
    sale_ms, help_ratio = median["ecrlink sale, first byte"], median["ecrlink --help"] / base
    print(f"\ngoal: sale first byte <= 150 ms: {sale_ms:.0f} ms "
          f"{'ok' if sale_ms <= 150 else 'MISSED'}; "
          f"--help <= 1.2x import httpx: {help_ratio:.2f}x "
          f"{'ok' if help_ratio <= 1.2 else 'MISSED'}")


if __name__ == "__main__":
    main()
