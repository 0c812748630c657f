"""Plain ASGI wrappers around the app: access log, body limit, CORS with Private
Network Access, security headers.

- The access log line is method, path, status and milliseconds: never the query,
  a header (the API key) or a body (card data, invoices). uvicorn's own access log
  is off.
- Bodies: ``json_limit`` bytes (64 KiB) for every route but the reconciliation
  upload (``upload_limit``); a larger ``Content-Length`` is refused before reading,
  a body that grows past the limit while streaming is cut off: 413.
- CORS: only for ``allowed_origins``. A preflight from one of them is answered 204
  with the methods and headers the API uses and, when Chrome asks
  (``Access-Control-Request-Private-Network: true``),
  ``Access-Control-Allow-Private-Network: true``; a preflight from any other origin
  gets 403. Same-origin requests (the console) need none of it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from .errors import error_body

__all__ = ["BridgeMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

access_log = logging.getLogger("ecrlink.bridge.access")

ALLOWED_HEADERS = "Authorization, Content-Type, Idempotency-Key, Last-Event-ID"
ALLOWED_METHODS = "GET, POST, OPTIONS"
EXPOSED_HEADERS = "Location"
UPLOAD_PATHS = ("/v1/reconciliations",)
CONSOLE_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


def _printable(path: str) -> str:
    """The path as one log line: control characters escaped, at most 200 characters."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in path[:200])
    return text + ("…" if len(path) > 200 else "")


class _TooLarge(Exception):
    pass


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


async def _send_json(send: Send, status: int, body: dict[str, Any],
                     headers: list[tuple[bytes, bytes]] | None = None) -> None:
    data = json.dumps(body, ensure_ascii=False).encode("utf-8")
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
        *(headers or [])]})
    await send({"type": "http.response.body", "body": data})


class BridgeMiddleware:
    """Everything that wraps each HTTP request (see the module docstring)."""

    def __init__(
        self, app: ASGIApp, *, allowed_origins: tuple[str, ...], json_limit: int,
        upload_limit: int,
    ) -> None:
        self.app = app
        self.origins = frozenset(allowed_origins)
        self.json_limit = json_limit
        self.upload_limit = upload_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 0}
        path = scope.get("path", "")
        origin = _header(scope, b"origin")
        allowed = origin is not None and origin in self.origins

        async def send_wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-content-type-options", b"nosniff"))
                if allowed and origin is not None:
                    headers += [(b"access-control-allow-origin", origin.encode("latin-1")),
                                (b"access-control-expose-headers", EXPOSED_HEADERS.encode()),
                                (b"vary", b"Origin")]
                if path.startswith("/v1/") and path != "/v1/client.js":
                    headers.append((b"cache-control", b"no-store"))
                else:
                    headers.append((b"content-security-policy", CONSOLE_CSP.encode()))
                message["headers"] = headers
            await send(message)

        try:
            if scope["method"] == "OPTIONS" and _header(
                    scope, b"access-control-request-method") is not None:
                await self._preflight(scope, send_wrapped, origin, allowed)
                return
            limit = self.upload_limit if path in UPLOAD_PATHS else self.json_limit
            length = _header(scope, b"content-length")
            if length is not None and (not length.isdigit() or int(length) > limit):
                await _send_json(send_wrapped, 413, error_body(
                    "payload_too_large", f"the body may have at most {limit} bytes"))
                return
            await self._limited(scope, receive, send_wrapped, limit, status)
        finally:
            access_log.info("%s %s %d %.1fms", scope["method"], _printable(path),
                            status["code"], (time.perf_counter() - started) * 1000)

    async def _limited(self, scope: Scope, receive: Receive, send: Send, limit: int,
                       status: dict[str, int]) -> None:
        seen = 0

        async def receive_limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, receive_limited, send)
        except _TooLarge:
            if status["code"]:
                raise
            await _send_json(send, 413, error_body(
                "payload_too_large", f"the body may have at most {limit} bytes"))

    async def _preflight(self, scope: Scope, send: Send, origin: str | None,
                         allowed: bool) -> None:
        if not allowed:
            await _send_json(send, 403, error_body(
                "forbidden", f"origin {origin or '(none)'} is not in [serve] allowed_origins"))
            return
        headers = [(b"access-control-allow-methods", ALLOWED_METHODS.encode()),
                   (b"access-control-allow-headers", ALLOWED_HEADERS.encode()),
                   (b"access-control-max-age", b"600"),
                   (b"content-length", b"0")]
        if (_header(scope, b"access-control-request-private-network") or "").lower() == "true":
            headers.append((b"access-control-allow-private-network", b"true"))
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
