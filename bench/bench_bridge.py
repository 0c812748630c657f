"""The bridge's cost, measured side by side in one run (not a test: it prints figures).

1. Added latency: a payment through the bridge (POST, then ``GET ?wait=`` until
   final, over loopback HTTP on one keep-alive connection) vs a direct
   ``Terminal.sale`` on the same instant simulator, both journaled, rounds
   alternating. Goal: the bridge's p99 at most 5 ms above the direct p99.
2. Throughput: N simulated terminals (``ecrlink simulate --terminals N``), one
   bridge, one register per terminal paying in a loop for ``--seconds``. Goal:
   >= 200 payments/s sustained, 0 errors, the bridge's memory flat.
3. Fan-out: 100 SSE listeners, a burst of payments; every listener must get every
   event. Reports the delivery lag (event stored -> listener read it).

Simulator and bridge are separate processes (``ecrlink simulate``, ``ecrlink
serve``); the load generator is this process (asyncio + httpx). On a shared
2-core machine the three compete for the same cores: the figures are a floor.

    python bench/bench_bridge.py [--sales 300] [--terminals 50] [--seconds 60]
                                 [--listeners 100] [--skip throughput]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from ecrlink import Terminal

KEY = "bench-manager-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_http(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(url, timeout=1)
            return
        time.sleep(0.05)
    raise SystemExit(f"{url} did not come up")


class Rig:
    """A simulator process with ``terminals`` terminals and a bridge in front of it."""

    def __init__(self, root: Path, terminals: int) -> None:
        self.root = root
        for _ in range(10):  # N consecutive ports: another program may hold one of them
            self.sim_port = free_port()
            self.sim = subprocess.Popen(
                [sys.executable, "-m", "ecrlink", "simulate", "--http",
                 f"127.0.0.1:{self.sim_port}", "--terminals", str(terminals), "--card-delay",
                 "0", "-q", "--state", str(root / "sim.json")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            with contextlib.suppress(SystemExit):
                wait_http(f"http://127.0.0.1:{self.sim_port}/_sim/state", 15)
                if self.sim.poll() is None:
                    break
            self.sim.kill()
        else:
            raise SystemExit("the simulator did not start")
        self.urls = [f"http://127.0.0.1:{self.sim_port + i}" for i in range(terminals)]
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = root / "config.toml"
        lines = [f'[terminals.t{i}]\nurl = "{u}"\n' for i, u in enumerate(self.urls)]
        lines.append(f'[serve]\nlisten = "127.0.0.1:{self.port}"\n\n[[serve.keys]]\n'
                     f'name = "bench"\nkey = "{KEY}"\nrole = "manager"\n')
        config.write_text("\n".join(lines))
        env = {**os.environ, "ECRLINK_HOME": str(root / "home")}
        with (root / "bridge.log").open("wb") as log:
            self.bridge = subprocess.Popen(
                [sys.executable, "-m", "ecrlink", "serve", "--config", str(config), "-q"],
                env=env, stdout=subprocess.DEVNULL, stderr=log)
        wait_http(f"{self.url}/v1/health")

    def rss_mib(self) -> float:
        status = Path(f"/proc/{self.bridge.pid}/status").read_text()
        kib = next(int(line.split()[1]) for line in status.splitlines()
                   if line.startswith("VmRSS:"))
        return kib / 1024

    def cpu_seconds(self) -> tuple[float, float]:
        """CPU time used so far by the bridge and the simulator (user + system)."""
        tick = os.sysconf("SC_CLK_TCK")

        def of(pid: int) -> float:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / tick

        return of(self.bridge.pid), of(self.sim.pid)

    def close(self) -> None:
        for process in (self.bridge, self.sim):
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()


def quantiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return (statistics.median(ordered), ordered[min(len(ordered) - 1,
                                                    int(len(ordered) * 0.99))])


# --- 1. added latency -------------------------------------------------------------------

async def bridge_payment(client: httpx.AsyncClient, terminal: str, amount: int,
                         key: str) -> dict[str, Any]:
    reply = await client.post(f"/v1/terminals/{terminal}/payments", json={"amount": amount},
                              headers={"Idempotency-Key": key})
    reply.raise_for_status()
    payment: dict[str, Any] = reply.json()
    while payment["state"] == "processing":
        reply = await client.get(f"/v1/payments/{payment['id']}", params={"wait": 30})
        reply.raise_for_status()
        payment = reply.json()
    return payment


def bench_latency(root: Path, sales: int, rounds: int) -> None:
    print(f"1. added latency: bridge vs direct Terminal.sale, {sales} sales each, "
          "instant simulator (goal: p99 added <= 5 ms)")
    rig = Rig(root / "latency", 1)
    direct_journal = root / "latency" / "direct.sqlite3"
    direct: list[float] = []
    bridged: list[float] = []
    try:
        # The same simulated terminal for both, taking turns (never at the same time).
        with Terminal(rig.urls[0], journal=direct_journal) as pos:
            async def run_bridge(n: int, base: int) -> None:
                client = LeanClient(rig.port)
                try:
                    await client.pay("t0", 1000, f"warm-{base}")
                    for i in range(n):
                        start = time.perf_counter()
                        done = await client.pay("t0", 1000 * (i + 2), f"l-{base}-{i}")
                        bridged.append(time.perf_counter() - start)
                        assert done["state"] == "approved", done
                finally:
                    client.close()

            per_round = max(1, sales // rounds)
            for r in range(rounds):
                pos.sale(1000, allow_duplicate=True)  # warm
                for i in range(per_round):
                    start = time.perf_counter()
                    result = pos.sale(1000 * (i + 2))  # ends in 000: approved
                    direct.append(time.perf_counter() - start)
                    assert result.approved
                asyncio.run(run_bridge(per_round, r))
    finally:
        rig.close()
    d50, d99 = quantiles(direct)
    b50, b99 = quantiles(bridged)
    print(f"   {'':24}{'p50 ms':>10}{'p99 ms':>10}")
    print(f"   {'direct Terminal.sale':24}{d50 * 1000:>10.2f}{d99 * 1000:>10.2f}")
    print(f"   {'through the bridge':24}{b50 * 1000:>10.2f}{b99 * 1000:>10.2f}")
    print(f"   {'added':24}{(b50 - d50) * 1000:>10.2f}{(b99 - d99) * 1000:>10.2f}   "
          f"goal p99 <= 5 ms: {'met' if (b99 - d99) * 1000 <= 5 else 'NOT met'}")


# --- 2. throughput ------------------------------------------------------------------------

class LeanClient:
    """A minimal HTTP/1.1 keep-alive client (one connection) for the load generator:
    httpx costs more CPU per request than the bridge does, and all three processes
    share the same cores."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, target: str, body: bytes = b"",
                      headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        lines = [f"{method} {target} HTTP/1.1", "Host: bench",
                 f"Authorization: {AUTH['Authorization']}", f"Content-Length: {len(body)}",
                 "Content-Type: application/json"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        data = await self.reader.readexactly(length)
        return status, json.loads(data)

    async def pay(self, terminal: str, amount: int, key: str) -> dict[str, Any]:
        status, payment = await self.request(
            "POST", f"/v1/terminals/{terminal}/payments",
            json.dumps({"amount": amount}).encode(), {"Idempotency-Key": key})
        if status not in (200, 201):
            raise RuntimeError(f"{status} {payment}")
        while payment["state"] == "processing":
            status, payment = await self.request("GET", f"/v1/payments/{payment['id']}?wait=30")
        return payment

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def throughput(rig: Rig, seconds: float) -> tuple[int, int, list[float]]:
    done = 0
    errors = 0
    rss: list[float] = []
    stop = time.monotonic() + seconds

    async def register(index: int) -> None:
        nonlocal done, errors
        client = LeanClient(rig.port)
        n = 0
        try:
            while time.monotonic() < stop:
                n += 1
                try:
                    payment = await client.pay(f"t{index}", 1000 * (1 + n % 900),
                                               f"tp-{index}-{n}-{stop}")
                    if payment["state"] == "approved":
                        done += 1
                    else:
                        errors += 1
                except (OSError, RuntimeError, asyncio.IncompleteReadError, ValueError):
                    errors += 1
                    client.close()
                    client = LeanClient(rig.port)
        finally:
            client.close()

    async def sample() -> None:
        while time.monotonic() < stop:
            rss.append(rig.rss_mib())
            await asyncio.sleep(max(1.0, seconds / 12))

    await asyncio.gather(sample(), *(register(i) for i in range(len(rig.urls))))
    rss.append(rig.rss_mib())
    return done, errors, rss


def bench_throughput(root: Path, terminals: int, seconds: float) -> None:
    print(f"2. throughput: {terminals} terminals paid concurrently through one bridge for "
          f"{seconds:g} s (goal >= 200 payments/s, 0 errors, memory flat)")
    rig = Rig(root / "throughput", terminals)
    try:
        asyncio.run(throughput(rig, min(5.0, seconds)))  # warm up
        started = time.monotonic()
        cpu_before, own_before = rig.cpu_seconds(), time.process_time()
        done, errors, rss = asyncio.run(throughput(rig, seconds))
        took = time.monotonic() - started
        cpu_after, own_after = rig.cpu_seconds(), time.process_time()
    finally:
        rig.close()
    rate = done / took
    third = max(1, len(rss) // 3)
    early, late = statistics.mean(rss[:third]), statistics.mean(rss[-third:])
    verdict = "met" if rate >= 200 else "NOT met"
    print(f"   approved payments/s {rate:8.1f}   goal >= 200: {verdict}")
    print(f"   errors              {errors:8d}")
    per = 1000 / max(1, done)
    print(f"   CPU ms per payment  bridge {(cpu_after[0] - cpu_before[0]) * per:.2f}, "
          f"simulator {(cpu_after[1] - cpu_before[1]) * per:.2f}, "
          f"load generator {(own_after - own_before) * per:.2f} "
          f"(machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f})")
    print(f"   bridge RSS MiB      first third {early:.1f}, last third {late:.1f} "
          f"({(late - early) / early * 100:+.1f} %)")


# --- 3. SSE fan-out ------------------------------------------------------------------------

async def fan_out(rig: Rig, listeners: int, payments: int) -> tuple[list[int], list[float]]:
    counts = [0] * listeners
    lags: list[float] = []
    ready = asyncio.Event()
    connected = 0
    expected_last: dict[str, int] = {}

    async def listen(index: int, client: httpx.AsyncClient) -> None:
        nonlocal connected
        async with client.stream("GET", "/v1/events") as reply:
            connected += 1
            if connected == listeners:
                ready.set()
            async for line in reply.aiter_lines():
                if line.startswith("id: "):
                    counts[index] += 1
                    if int(line[4:]) >= expected_last.get("id", 1 << 62):
                        return
                elif line.startswith("data: ") and '"state":"approved"' in line:
                    data = json.loads(line[6:])
                    at = sent_at.get(data["id"])
                    if at is not None:
                        lags.append(time.perf_counter() - at)

    sent_at: dict[str, float] = {}
    async with httpx.AsyncClient(base_url=rig.url, headers=AUTH, timeout=120,
                                 limits=httpx.Limits(max_connections=listeners + 10)) as client:
        tasks = [asyncio.create_task(listen(i, client)) for i in range(listeners)]
        await asyncio.wait_for(ready.wait(), 60)
        await asyncio.sleep(0.5)
        before = await client.get("/v1/payments", params={"limit": 1})
        before.raise_for_status()
        for n in range(payments):
            start = time.perf_counter()
            reply = await client.post("/v1/terminals/t0/payments", json={"amount": 1000 * (5 + n)},
                                      headers={"Idempotency-Key": f"fan-{n}"})
            payment = reply.json()
            sent_at[payment["id"]] = start
            while payment["state"] == "processing":
                payment = (await client.get(f"/v1/payments/{payment['id']}",
                                            params={"wait": 30})).json()
        await asyncio.sleep(0.5)
        # the last event id so far: every listener must reach it
        async with client.stream("GET", "/v1/events", headers={"Last-Event-ID": "0"}) as r:
            last = 0
            async for line in r.aiter_lines():
                if line.startswith("id: "):
                    last = int(line[4:])
                elif line.startswith(": heartbeat"):
                    break
        expected_last["id"] = last
        # wake listeners waiting for more: one more event
        await client.post("/v1/terminals/t0/payments", json={"amount": 9000},
                          headers={"Idempotency-Key": "fan-last"})
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
    return counts, lags


def bench_fan_out(root: Path, listeners: int, payments: int) -> None:
    print(f"3. SSE fan-out: {listeners} listeners, {payments} payments")
    rig = Rig(root / "fanout", 1)
    try:
        counts, lags = asyncio.run(fan_out(rig, listeners, payments))
    finally:
        rig.close()
    p50, p99 = quantiles(lags) if lags else (float("nan"), float("nan"))
    complete = len(set(counts)) == 1
    print(f"   events per listener: min {min(counts)}, max {max(counts)} "
          f"({'every listener got every event' if complete else 'LISTENERS DIFFER'})")
    print(f"   payment start -> approved event read: p50 {p50 * 1000:.1f} ms, "
          f"p99 {p99 * 1000:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sales", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--terminals", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--listeners", type=int, default=100)
    parser.add_argument("--payments", type=int, default=20)
    parser.add_argument("--skip", action="append", default=[],
                        choices=["latency", "throughput", "fanout"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ecrlink-bench-bridge-") as tmp:
        root = Path(tmp)
        os.environ["ECRLINK_HOME"] = str(root / "home")  # never the user's locks
        for name in ("latency", "throughput", "fanout"):
            (root / name).mkdir()
        if "latency" not in args.skip:
            bench_latency(root, args.sales, args.rounds)
        if "throughput" not in args.skip:
            bench_throughput(root, args.terminals, args.seconds)
        if "fanout" not in args.skip:
            bench_fan_out(root, args.listeners, args.payments)


if __name__ == "__main__":
    main()
