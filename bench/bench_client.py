"""Client overhead, measured side by side in one run (not a test: it prints figures).

1. Parsing each fixture with ``parse_reply`` vs ``json.loads`` of the same bytes
   (goal: at most 3x).
2. A full ``Terminal.sale`` against a local instant-reply HTTP server vs a bare
   ``httpx.get`` + ``json.loads`` of the same URL (goal: at most 1.15x). A stricter
   baseline, a reused ``httpx.Client``, is printed too.
3. The high-water mark: a journaled sale whose mark comes from the journal vs one
   that asks ``last trans`` before sending (first use, after a gap), and that cost
   next to a customer's card time (9 s in the document's serial capture) and to the
   serial wire's floor for one ``last trans`` at 115200 baud.

Rounds alternate between the contenders so that drift on a shared machine hits both.

    python bench/bench_client.py [--sales 400] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from ecrlink import Terminal
from ecrlink.protocol import parse_reply

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
REPLY = (FIXTURES / "sale_approved_swipe.json").read_bytes()


def best_of(
    rounds: int, contenders: dict[str, Callable[[], None]], repeat: int
) -> dict[str, float]:
    """Seconds per call, the median of ``rounds`` alternating rounds."""
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            start = time.perf_counter()
            for _ in range(repeat):
                fn()
            samples[name].append((time.perf_counter() - start) / repeat)
    return {name: statistics.median(values) for name, values in samples.items()}


def bench_parse(rounds: int) -> None:
    print("1. parse_reply vs json.loads, per fixture (goal <= 3.0x)")
    worst = 0.0
    for path in sorted(FIXTURES.glob("*.json")):
        raw = path.read_bytes()
        times = best_of(
            rounds,
            {"json": lambda raw=raw: json.loads(raw), "ecrlink": lambda raw=raw: parse_reply(raw)},
            repeat=20_000,
        )
        ratio = times["ecrlink"] / times["json"]
        worst = max(worst, ratio)
        print(
            f"   {path.stem:<22} json.loads {times['json'] * 1e6:6.2f} us   "
            f"parse_reply {times['ecrlink'] * 1e6:6.2f} us   ratio {ratio:4.2f}x"
        )
    print(f"   worst ratio {worst:.2f}x  {'OK' if worst <= 3.0 else 'OVER GOAL'}")


class InstantTerminal:
    """A loopback HTTP server that answers every GET at once with the sale fixture,
    echoing the request id, one connection per request (like a real terminal)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.template = REPLY.replace(b'"Request:001"', b'"%s"', 1)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    head += chunk
                target = head.split(b" ", 2)[1]
                rid = target.split(b"rqt=", 1)[1].split(b"|", 1)[0]
                body = self.template.replace(b"%s", rid, 1)
                if b"last%20trans" in target:
                    body = body.replace(b'"command":"sale"', b'"command":"last_trans"', 1)
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
                )


def bench_sale(sales: int, rounds: int) -> None:
    print(f"2. Terminal.sale vs bare httpx.get + json.loads ({sales} sales x {rounds} rounds)")
    server = InstantTerminal()
    url = server.url + "/ecr?rqt=Request:001|UserName:Manh123&cmd=sale|123456|1|2|3|4|5"
    # The journal's own cost is measured in bench_journal.py; this is the client alone.
    pos = Terminal(server.url, client_id="UserName:Manh123", journal=False)
    client = httpx.Client()
    times = best_of(
        rounds,
        {
            "httpx.get": lambda: json.loads(httpx.get(url).content),
            "httpx.Client.get": lambda: json.loads(client.get(url).content),
            "Terminal.sale": lambda: pos.sale(123456, fields="12345"),
        },
        repeat=sales // rounds or 1,
    )
    for name, seconds in times.items():
        print(f"   {name:<18} {seconds * 1e3:6.3f} ms per sale")
    ratio = times["Terminal.sale"] / times["httpx.get"]
    strict = times["Terminal.sale"] / times["httpx.Client.get"]
    print(f"   ratio vs httpx.get        {ratio:4.2f}x  {'OK' if ratio <= 1.15 else 'OVER GOAL'}")
    print(f"   ratio vs reused Client    {strict:4.2f}x  (stricter baseline, for information)")
    pos.close()
    client.close()


def bench_mark(sales: int, rounds: int, folder: Path) -> None:
    print(f"3. journaled sale: mark from the journal vs last trans first ({sales} sales)")
    server = InstantTerminal()
    pos = Terminal(server.url, client_id="UserName:Manh123", journal=folder / "j.sqlite3")
    journal = pos.journal
    assert journal is not None

    def sale() -> None:  # one invoice sold again and again: the duplicate guard allows it
        pos.sale(123456, fields="12345", allow_duplicate=True)

    def asking_first() -> None:
        journal.learn(pos.terminal, {"mark_valid": 0})  # as after a gap: mark unknown
        sale()

    times = best_of(
        rounds,
        {"mark from journal": sale, "last trans first": asking_first},
        repeat=sales // rounds or 1,
    )
    for name, seconds in times.items():
        print(f"   {name:<18} {seconds * 1e3:6.3f} ms per sale")
    extra = times["last trans first"] - times["mark from journal"]
    wire = 2 * len(REPLY) * 10 / 115_200  # request + reply, 10 bits a byte
    print(f"   asking first costs {extra * 1e3:.3f} ms on loopback HTTP "
          f"({extra / 9.0:.4%} of a 9 s card wait); over RS232 at least "
          f"{wire * 1e3:.0f} ms ({wire / 9.0:.2%})")
    pos.close()


def main() -> int:
    # Terminals keep their lock files in $ECRLINK_HOME: never the user's own.
    os.environ["ECRLINK_HOME"] = tempfile.mkdtemp(prefix="ecrlink-bench-")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sales", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, httpx {httpx.__version__}")
    bench_parse(args.rounds)
    bench_sale(args.sales, args.rounds)
    with tempfile.TemporaryDirectory() as folder:
        bench_mark(args.sales // 2, args.rounds, Path(folder))
    return 0


if __name__ == "__main__":
    sys.exit(main())
