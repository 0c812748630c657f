"""The terminal's small web server: ``GET /ecr?...`` and the ``/_sim/...`` controls.

Hand-written HTTP/1.x on ``asyncio.start_server``: it is fast, and it has the exact
control a misbehaving terminal needs (close without a reply, send half a reply,
hold a connection forever). One request per connection, ``Connection: close``, as
the real terminals do. The request target is taken as sent, so the raw form
(``|`` and ``:`` unencoded, even a raw space in ``last trans``) and the
percent-encoded form both reach the protocol parser.

Nothing a client sends can stop the server: oversized lines get 414/431, bodies 413,
half-written requests are dropped after ``head_timeout``, and any other failure is
logged and closes that one connection only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import asdict
from typing import Any

from .._exceptions import ConfigError
from .replies import encode, error_body
from .terminal import MAX_REQUEST_BYTES, AnswerKind, SimulatedTerminal

__all__ = ["HttpFrontEnd"]

log = logging.getLogger("ecrlink.simulator")

_MAX_LINE = 8 * 1024
_MAX_HEADERS = 64
_MAX_BODY = 64 * 1024
_HOLD_LIMIT = 3600.0
"""A request never answered keeps its connection at most this long."""

_REASONS = {
    200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
    408: "Request Timeout", 411: "Length Required", 413: "Content Too Large",
    414: "URI Too Long", 431: "Request Header Fields Too Large", 500: "Internal Server Error",
    501: "Not Implemented", 503: "Service Unavailable",
}


def _response(status: int, body: bytes, length: int | None = None) -> bytes:
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}\r\n"
        "Content-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(body) if length is None else length}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class _Refused(Exception):
    """The request cannot be served: answer ``status`` with ``message`` and close."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Link:
    """One connection's read side, watched for the ECR hanging up when needed."""

    __slots__ = ("_event", "_reader", "_task")

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader
        self._event: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    def hangup(self) -> asyncio.Event:
        if self._event is None:
            self._event = asyncio.Event()
            self._task = asyncio.ensure_future(self._watch(self._event))
        return self._event

    async def _watch(self, event: asyncio.Event) -> None:
        try:
            while await self._reader.read(4096):
                pass  # an ECR has nothing more to say; anything it sends is ignored
        except (ConnectionError, OSError):
            pass
        finally:
            event.set()

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()


class HttpFrontEnd:
    """Serve one terminal over HTTP on ``host:port`` (port 0 picks a free one)."""

    def __init__(
        self,
        terminal: SimulatedTerminal,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        head_timeout: float = 10.0,
    ) -> None:
        self.terminal = terminal
        self.host = host
        self.port = port
        self.head_timeout = head_timeout
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def url(self) -> str:
        """``http://host:port`` of the listening socket."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        """Start listening; ``port`` then holds the real port."""
        try:
            self._server = await asyncio.start_server(
                self._serve, self.host, self.port, limit=_MAX_LINE, backlog=1024
            )
        except OSError as exc:
            raise ConfigError(f"cannot listen on {self.host}:{self.port} ({exc})") from exc
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop listening and drop every open connection."""
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)

    # --- one connection -------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        link = _Link(reader)
        try:
            await self._exchange(reader, writer, link)
        except _Refused as exc:
            log.info("%s HTTP %d: %s", self.terminal.name, exc.status, exc)
            writer.write(_response(exc.status, error_body(str(exc))))
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            pass  # the ECR vanished or never finished its request: nothing to answer
        except asyncio.CancelledError:
            # close() ends the handler; a handler task that ends cancelled is logged by
            # asyncio's stream machinery as an error, so end it normally.
            pass
        except Exception:
            log.exception("%s: unexpected error serving a request", self.terminal.name)
            with contextlib.suppress(Exception):
                writer.write(_response(500, error_body("internal simulator error")))
        finally:
            link.close()
            writer.close()
            if task is not None:
                self._tasks.discard(task)

    async def _exchange(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: _Link
    ) -> None:
        async with asyncio.timeout(self.head_timeout):
            method, target, headers = await _read_head(reader)
            body = await _read_body(reader, method, headers)
        path_target = _origin_form(target)
        path = path_target.split(b"?", 1)[0]
        if path.startswith(b"/_sim/"):
            status, doc = await self._control(method, path.decode("ascii", "replace"), body)
            writer.write(_response(status, encode(doc)))
            return
        if path not in (b"/ecr", b"/ecr/"):
            raise _Refused(404, f"no such path {path[:60].decode('ascii', 'replace')!r}; use /ecr")
        if method not in (b"GET", b"POST"):
            raise _Refused(405, "use GET /ecr?rqt=...&cmd=...")
        answer = await self.terminal.handle(path_target, link.hangup)
        kind = answer.kind
        if kind is AnswerKind.REPLY:
            writer.write(_response(200, answer.body))
        elif kind is AnswerKind.ERROR:
            writer.write(_response(400, answer.body))
        elif kind is AnswerKind.BUSY:
            writer.write(_response(503, answer.body))
        elif kind is AnswerKind.TRUNCATED:
            writer.write(_response(200, answer.body))
        elif kind is AnswerKind.SILENT and answer.hold is not None:
            # Never answer; the terminal is freed when the ECR hangs up (or its timer).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(answer.hold.wait(), _HOLD_LIMIT)
        # LOST and SILENT: close without a byte of reply.

    async def _control(self, method: bytes, path: str, body: bytes) -> tuple[int, Any]:
        terminal = self.terminal
        try:
            if path == "/_sim/state" and method == b"GET":
                return 200, terminal.state()
            if path == "/_sim/script":
                if method == b"POST":
                    terminal.script.extend(_json_body(body, list))
                elif method == b"DELETE":
                    terminal.script.clear()
                elif method != b"GET":
                    return 405, {"status": "ERROR", "message": "use GET, POST or DELETE"}
                return 200, {"status": "OK", "script": terminal.script.pending()}
            if path == "/_sim/reset" and method == b"POST":
                await terminal.reset()
                return 200, {"status": "OK", "batch_no": terminal.ledger.batch_no}
            if path == "/_sim/config":
                if method == b"POST":
                    terminal.settings.update(_json_body(body, dict))
                elif method != b"GET":
                    return 405, {"status": "ERROR", "message": "use GET or POST"}
                return 200, {"status": "OK", "settings": asdict(terminal.settings)}
        except (ConfigError, ValueError) as exc:
            return 400, {"status": "ERROR", "message": str(exc)}
        return 404, {
            "status": "ERROR",
            "message": "control endpoints: GET /_sim/state, GET|POST|DELETE /_sim/script, "
            "POST /_sim/reset, GET|POST /_sim/config",
        }


async def _read_line(reader: asyncio.StreamReader, status: int, what: str) -> bytes:
    try:
        line = await reader.readline()
    except ValueError:  # longer than the stream limit
        raise _Refused(status, f"{what} longer than {_MAX_LINE} bytes") from None
    if not line.endswith(b"\n"):
        raise asyncio.IncompleteReadError(line, None)
    return line


async def _read_head(reader: asyncio.StreamReader) -> tuple[bytes, bytes, dict[bytes, bytes]]:
    line = await _read_line(reader, 414, "request line")
    parts = line.strip().split(b" ")
    if len(parts) < 3 or not parts[-1].startswith(b"HTTP/1."):
        raise _Refused(400, "not an HTTP/1.x request line")
    method = parts[0]
    # A raw space inside the target (``cmd=last trans``) splits it; join it back.
    target = b" ".join(parts[1:-1])
    if len(target) > MAX_REQUEST_BYTES:
        raise _Refused(414, f"request target longer than {MAX_REQUEST_BYTES} bytes")
    headers: dict[bytes, bytes] = {}
    for _ in range(_MAX_HEADERS + 1):
        header = await _read_line(reader, 431, "header line")
        if header in (b"\r\n", b"\n"):
            return method, target, headers
        name, sep, value = header.partition(b":")
        if not sep:
            raise _Refused(400, "malformed header line")
        headers[name.strip().lower()] = value.strip()
    raise _Refused(431, f"more than {_MAX_HEADERS} header lines")


async def _read_body(
    reader: asyncio.StreamReader, method: bytes, headers: dict[bytes, bytes]
) -> bytes:
    if b"transfer-encoding" in headers:
        raise _Refused(501, "chunked request bodies are not supported; send Content-Length")
    length_text = headers.get(b"content-length")
    if length_text is None:
        return b""
    if not length_text.isdigit():
        raise _Refused(400, "Content-Length must be a number")
    length = int(length_text)
    if length > _MAX_BODY:
        raise _Refused(413, f"request body longer than {_MAX_BODY} bytes")
    return await reader.readexactly(length) if length else b""


def _origin_form(target: bytes) -> bytes:
    """``http://host/ecr?...`` (absolute form) → ``/ecr?...``."""
    if target.startswith((b"http://", b"https://")):
        slash = target.find(b"/", target.find(b"//") + 2)
        return target[slash:] if slash >= 0 else b"/"
    return target


def _json_body(body: bytes, kind: type[Any]) -> Any:
    try:
        doc = json.loads(body.decode("utf-8")) if body.strip() else None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"body is not JSON ({exc})") from None
    if not isinstance(doc, kind):
        raise ValueError(f"body must be a JSON {'list' if kind is list else 'object'}")
    return doc
