"""What the HTTP transport costs a cold start: the modules it loads, and when.

Each check runs in a fresh interpreter, where ``sys.modules`` shows what an import
really pulled in; a real server on 127.0.0.1 answers (a thread and plain sockets,
so that the server itself loads nothing the transport must not).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

HEAVY = ("httpx", "httpcore", "anyio", "asyncio", "ssl", "h11", "serial", "certifi",
         "hashlib", "click", "rich")


def fresh(code: str) -> dict[str, list[str]]:
    """Run ``code`` in a new interpreter; it prints a JSON object as its last line."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    result: dict[str, list[str]] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_importing_the_transports_loads_none_of_the_heavy_modules() -> None:
    found = fresh(f"""
        import json, sys
        import ecrlink.transports.http, ecrlink.transports.serial, ecrlink.transports
        print(json.dumps({{"loaded": [m for m in {HEAVY!r} if m in sys.modules]}}))
    """)
    assert found["loaded"] == []


def test_a_blocking_http_sale_loads_h11_only_after_the_request_left() -> None:
    found = fresh(f"""
        import json, socket, sys, threading
        from ecrlink.transports import HttpTransport

        server = socket.create_server(("127.0.0.1", 0))
        def serve():
            conn, _ = server.accept()
            with conn:
                data = b""
                while b"\\r\\n\\r\\n" not in data:
                    data += conn.recv(4096)
                body = b'{{"status":"DONE"}}'
                conn.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Length: %d\\r\\n\\r\\n" % len(body)
                             + body)
        threading.Thread(target=serve, daemon=True).start()

        at_send = []
        transport = HttpTransport(f"http://127.0.0.1:{{server.getsockname()[1]}}")
        reply = transport.exchange(
            "/ecr?rqt=1|2&cmd=last trans", timeout=5,
            on_sent=lambda: at_send.extend(m for m in {HEAVY!r} if m in sys.modules))
        assert reply == b'{{"status":"DONE"}}', reply
        print(json.dumps({{"at_send": at_send,
                          "after": [m for m in {HEAVY!r} if m in sys.modules]}}))
    """)
    assert found["at_send"] == []  # nothing heavy before the first byte
    assert found["after"] == ["h11"]  # and then only the reply's parser
