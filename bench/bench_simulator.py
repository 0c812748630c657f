"""Simulator throughput in instant mode over HTTP: sales per second on loopback.

The simulator runs in its own process (``ecrlink simulate --card-delay 0 -q``), as
it does in a load test, so client and server do not share one interpreter lock.
Two figures, each checked against the terminals' own receipt counters:

* one client, sequential: httpx.Client, one connection per sale (as terminals do);
* 50 concurrent clients with asyncio (httpx.AsyncClient), each on its own terminal,
  since a terminal serves one sale at a time.

Goal: at least 500 sales/s on a 2-core machine, so that load tests are never limited
by the simulator.

    .venv/bin/python bench/bench_simulator.py [--seconds 5] [--state]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

GOAL = 500.0
HEADERS = {"Connection": "close", "Accept-Encoding": "identity"}


def start_simulator(terminals: int, state: Path | None) -> tuple[subprocess.Popen[str], list[str]]:
    command = [
        sys.executable, "-c", "from ecrlink.cli import main; main()", "simulate",
        "--http", "127.0.0.1:0", "--terminals", str(terminals), "--card-delay", "0", "-q",
    ]
    if state is not None:
        command += ["--state", str(state)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    urls = []
    for _ in range(terminals):
        found = re.search(r"http://\S+", proc.stdout.readline())
        if found is None:
            proc.kill()
            raise SystemExit("the simulator did not start")
        urls.append(found.group())
    return proc, urls


def target(n: int) -> str:
    return f"/ecr?rqt=b{n}|BENCH&cmd=sale|100000|1|2|INV{n}|4|REF{n}"


def check(response: httpx.Response) -> None:
    if response.status_code != 200 or b'"returnCode":"00"' not in response.content:
        raise SystemExit(f"unexpected reply: {response.status_code} {response.content[:200]!r}")


def sequential(url: str, seconds: float) -> int:
    done = 0
    with httpx.Client(base_url=url, headers=HEADERS, trust_env=False,
                      limits=httpx.Limits(max_keepalive_connections=0)) as http:
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            line = target(done)
            check(http.get(line, extensions={"target": line.encode()}))
            done += 1
    return done


async def concurrent(urls: list[str], seconds: float) -> int:
    deadline = time.perf_counter() + seconds

    async def one_terminal(url: str, offset: int) -> int:
        done = 0
        async with httpx.AsyncClient(
            base_url=url, headers=HEADERS, trust_env=False,
            limits=httpx.Limits(max_keepalive_connections=0),
        ) as http:
            while time.perf_counter() < deadline:
                line = target(offset + done)
                check(await http.get(line, extensions={"target": line.encode()}))
                done += 1
        return done

    counts = await asyncio.gather(*(one_terminal(u, i * 10**6) for i, u in enumerate(urls)))
    return sum(counts)


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) a process has used so far; None off Linux."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured(pid: int, phase: Callable[[], int]) -> tuple[int, float, float | None]:
    """Run ``phase``; return sales, sales/s, and the simulator's CPU ms per sale."""
    cpu_before = cpu_seconds(pid)
    started = time.perf_counter()
    count = phase()
    rate = count / (time.perf_counter() - started)
    cpu_after = cpu_seconds(pid)
    per_sale = None
    if cpu_before is not None and cpu_after is not None and count:
        per_sale = (cpu_after - cpu_before) / count * 1000
    return count, rate, per_sale


def receipts(urls: list[str]) -> int:
    # The terminals' own counters: every sale the bench counted was really recorded.
    return sum(int(httpx.get(u + "/_sim/state").json()["last_receipt"]) for u in urls)


def run(seconds: float, clients: int, state: bool) -> None:
    with tempfile.TemporaryDirectory() as folder:
        state_file = Path(folder) / "state.json" if state else None
        proc, urls = start_simulator(clients, state_file)
        try:
            before = receipts(urls)
            one, one_rate, one_cpu = measured(proc.pid, lambda: sequential(urls[0], seconds))
            many, many_rate, many_cpu = measured(
                proc.pid, lambda: asyncio.run(concurrent(urls, seconds))
            )
            recorded = receipts(urls) - before
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    mode = "with a state file" if state else "in memory"
    print(f"simulator, instant mode, HTTP on loopback, {mode}:")
    print(f"  1 client, sequential   : {one_rate:8.0f} sales/s  ({one} sales, "
          f"{one_rate / GOAL:.1f}x the {GOAL:.0f}/s goal){_cpu(one_cpu)}")
    print(f"  {clients} clients, concurrent: {many_rate:8.0f} sales/s  ({many} sales, "
          f"{many_rate / GOAL:.1f}x the goal){_cpu(many_cpu)}")
    if recorded != one + many:
        raise SystemExit(f"the terminals recorded {recorded} sales, the bench counted {one + many}")
    print(f"  every sale recorded by the terminals ({recorded})")


def _cpu(per_sale: float | None) -> str:
    # The simulator's own cost per sale tells what one core of it could serve; when
    # that is far above the measured rate, the clients are the limit, not the simulator.
    if per_sale is None or per_sale <= 0:
        return ""
    return f"; simulator CPU {per_sale:.2f} ms/sale = {1000 / per_sale:.0f} sales/s per core"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each phase")
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients/terminals")
    parser.add_argument("--state", action="store_true", help="also run with a state file")
    args = parser.parse_args()
    run(args.seconds, args.clients, state=False)
    if args.state:
        run(args.seconds, args.clients, state=True)


if __name__ == "__main__":
    main()
