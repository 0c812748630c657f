"""The HTTP API (Starlette): routes that read a request, ask ``Bridge``, answer JSON.

Routes follow ``docs/bridge-v1.md``; what the contract leaves open is in the
OpenAPI document (``openapi.py``, served at ``/openapi.json``). Every error has the
one shape of ``errors.py``, Starlette's own 404/405 included.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .._exceptions import EcrError, TerminalBusy, TransportError
from .._version import __version__
from ..protocol import VIETNAM_TIME, Settle
from .auth import Caller, Keys, accept_language, require
from .errors import ApiError, bad_input, error_body
from .events import sse_stream
from .middleware import BridgeMiddleware
from .model import STATES, payment_json, read_resolve, read_sale, read_settle, read_void
from .openapi import openapi_document
from .reconciliation import Reconciliations
from .service import Bridge, body_hash
from .store import EventRow, PaymentRow
from .webhooks import WebhookSender

__all__ = ["JSON_LIMIT", "STATIC_DIR", "build_app"]

log = logging.getLogger("ecrlink.bridge")

STATIC_DIR = Path(__file__).parent / "static"
JSON_LIMIT = 64 * 1024
_STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml",
                 ".png": "image/png", ".ico": "image/x-icon", ".json": "application/json"}
_PLACEHOLDER = (
    "<!doctype html><meta charset=utf-8><title>ecrlink</title>"
    "<p>ecrlink bridge: the console is not installed. API: <a href=/openapi.json>"
    "/openapi.json</a></p>"
)
MAX_WAIT = 60.0


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(data, status_code=status, headers=headers)


class Api:
    """The route handlers, bound to one ``Bridge``."""

    def __init__(self, bridge: Bridge, keys: Keys, reconciliations: Reconciliations) -> None:
        self.bridge = bridge
        self.keys = keys
        self.reconciliations = reconciliations

    # --- helpers ----------------------------------------------------------------------

    def caller(self, request: Request, role: str = "register") -> Caller:
        caller = self.keys.caller(request.headers.get("authorization"))
        if role == "manager":
            require(caller, "manager")
        # The register's own choice (client.js sends it) before the key's setting.
        asked = accept_language(request.headers.get("accept-language"))
        return replace(caller, lang=asked) if asked and asked != caller.lang else caller

    @staticmethod
    async def body(request: Request, *, empty_ok: bool = False) -> Any:
        raw = await request.body()
        if not raw.strip() and empty_ok:
            return {}
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise bad_input("body", "must be JSON (Content-Type: application/json)") from None

    @staticmethod
    def idempotency_key(request: Request) -> str:
        key = request.headers.get("idempotency-key")
        if key is None:
            raise bad_input("Idempotency-Key", "this header is required (1-64 printable ASCII "
                            "characters, new for each payment, the same when retrying it)")
        if not 1 <= len(key) <= 64 or not all(" " <= c <= "~" for c in key):
            raise bad_input("Idempotency-Key", "must be 1-64 printable ASCII characters")
        return key

    async def payment_row(self, payment_id: str) -> PaymentRow:
        row = await asyncio.to_thread(self.bridge.store.payment, payment_id)
        if row is None:
            raise ApiError(404, "not_found", f"no payment {payment_id!r}", field="id")
        return row

    # --- routes -----------------------------------------------------------------------

    async def health(self, request: Request) -> Response:
        return _json({"status": "ok", "version": __version__})

    async def terminals(self, request: Request) -> Response:
        self.caller(request)
        data = [await asyncio.to_thread(self.bridge.terminal_json, name)
                for name in self.bridge.workers]
        return _json(data)

    async def sync(self, request: Request) -> Response:
        self.caller(request, "manager")
        return _json(await asyncio.to_thread(self.bridge.sync_status))

    async def _submit(self, request: Request, command: str) -> Response:
        caller = self.caller(request)
        name = request.path_params["name"]
        worker = self.bridge.worker(name)
        key = self.idempotency_key(request)
        body = await self.body(request, empty_ok=command == "settle")
        digest = body_hash(f"{command} {name}", body)
        # Checked before the key is looked up: a body that was accepted once is accepted
        # again, so a repeat is never refused here.
        terminal = worker.terminal
        request_id = self.bridge.request_ids()
        allow = False
        if command == "sale":
            sale = read_sale(body, request_id=request_id, client_id=terminal.client_id,
                             transliterate=terminal.transliterate, lang=caller.lang)
            outgoing: Any = sale.request
            allow = sale.allow_duplicate
        elif command == "void":
            outgoing = read_void(body, request_id=request_id, client_id=terminal.client_id,
                                 lang=caller.lang)
        else:
            read_settle(body)
            outgoing = Settle(request_id=request_id, client_id=terminal.client_id)
        row, created = await self.bridge.submit(
            name, outgoing, key=key, digest=digest, key_name=caller.name, allow_duplicate=allow)
        if not created:
            return await self._replay(row, caller)
        return _json(payment_json(row, caller.lang), 201,
                     {"Location": f"/v1/payments/{row.id}"})

    async def _replay(self, row: PaymentRow, caller: Caller) -> Response:
        row = await self.bridge.admitted(row)
        return _json(payment_json(row, caller.lang), 200,
                     {"Location": f"/v1/payments/{row.id}", "Idempotent-Replayed": "true"})

    async def sale(self, request: Request) -> Response:
        return await self._submit(request, "sale")

    async def void(self, request: Request) -> Response:
        return await self._submit(request, "void")

    async def settle(self, request: Request) -> Response:
        return await self._submit(request, "settle")

    async def last_transaction(self, request: Request) -> Response:
        caller = self.caller(request)
        name = request.path_params["name"]
        try:
            result = await self.bridge.last_transaction(name)
        except TerminalBusy as exc:
            raise ApiError(409, "terminal_busy", f"terminal {name}: {exc}") from None
        except TransportError as exc:
            raise ApiError(503, "terminal_unreachable", f"terminal {name}: {exc}") from None
        except EcrError as exc:
            raise ApiError(502, "terminal_error", f"terminal {name}: {exc}") from None
        return _json(result.to_dict(caller.lang))

    async def payment(self, request: Request) -> Response:
        caller = self.caller(request)
        row = await self.payment_row(request.path_params["id"])
        wait = request.query_params.get("wait")
        if wait is not None:
            seconds = _wait_seconds(wait)
            if row.state == "processing" and seconds > 0:
                row = await self.bridge.wait(row.id, seconds) or row
        elif row.state == "in_doubt":
            row = await self.bridge.refresh(row)
        return _json(payment_json(row, caller.lang))

    async def payments(self, request: Request) -> Response:
        caller = self.caller(request)
        q = request.query_params
        unknown = sorted(set(q) - {"terminal", "state", "since", "until", "invoice", "limit",
                                   "cursor"})
        if unknown:
            raise bad_input(unknown[0], "unknown query parameter (known: terminal, state, "
                            "since, until, invoice, limit, cursor)")
        state = q.get("state")
        if state is not None and state not in STATES:
            raise bad_input("state", f"must be one of {', '.join(STATES)}")
        limit = _int(q.get("limit", "50"), "limit", 1, 500)
        before = _cursor(q["cursor"]) if "cursor" in q else None
        rows = await asyncio.to_thread(
            lambda: self.bridge.store.list_payments(
                terminal=q.get("terminal"), state=state,
                since=_when(q["since"], "since", end=False) if "since" in q else None,
                until=_when(q["until"], "until", end=True) if "until" in q else None,
                invoice=q.get("invoice"), before_seq=before, limit=limit + 1))
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = _make_cursor(rows[-1].seq) if more and rows else None
        return _json({"data": [payment_json(r, caller.lang) for r in rows],
                      "next_cursor": next_cursor})

    async def resolve(self, request: Request) -> Response:
        caller = self.caller(request, "manager")
        row = await self.payment_row(request.path_params["id"])
        state, receipt, who, note = read_resolve(await self.body(request))
        row = await self.bridge.resolve(row, state, receipt, who, note)
        return _json(payment_json(row, caller.lang))

    async def events(self, request: Request) -> Response:
        caller = self.caller(request)
        last = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
        if last is not None:
            after = _int(last, "Last-Event-ID", 0, 2**62)
        else:
            after = await asyncio.to_thread(self.bridge.store.last_event_id)

        def render(event: EventRow) -> dict[str, Any]:
            data = event.data
            if event.type == "payment.updated":
                picked: dict[str, Any] = data.get(caller.lang) or data.get("vi") or data
                return picked
            return data

        stream = sse_stream(self.bridge.hub, after, self.bridge.config.tuning.heartbeat, render,
                            caller.lang)
        return StreamingResponse(stream, media_type="text/event-stream", headers={
            "Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    async def reconcile(self, request: Request) -> Response:
        self.caller(request, "manager")
        data = await self.reconciliations.run(request)
        return _json(data, 201, {"Location": data["xlsx_url"]})

    async def reconciliation_xlsx(self, request: Request) -> Response:
        self.caller(request, "manager")
        path = self.reconciliations.xlsx(request.path_params["id"])
        return FileResponse(path, media_type="application/vnd.openxmlformats-officedocument."
                            "spreadsheetml.sheet", filename=path.name)

    async def openapi(self, request: Request) -> Response:
        return _json(openapi_document(sorted(self.bridge.workers)))

    async def console(self, request: Request) -> Response:
        return _static("index.html", placeholder=True)

    async def client_js(self, request: Request) -> Response:
        return _static("client.js")

    async def static(self, request: Request) -> Response:
        return _static(request.path_params["file"])


def _static(name: str, *, placeholder: bool = False) -> Response:
    path = STATIC_DIR / name
    kind = _STATIC_TYPES.get(Path(name).suffix)
    if kind is None or "/" in name or name.startswith(".") or not path.is_file():
        if placeholder:
            return Response(_PLACEHOLDER, media_type="text/html; charset=utf-8")
        raise ApiError(404, "not_found", f"no such file: /{name[:60]}")
    return FileResponse(path, media_type=kind, headers={"Cache-Control": "no-cache"})


def _int(text: str, field: str, low: int, high: int) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        raise bad_input(field, f"must be a whole number from {low} to {high}")
    value = int(text)
    if not low <= value <= high:
        raise bad_input(field, f"must be a whole number from {low} to {high}")
    return value


def _wait_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= MAX_WAIT:  # also refuses nan and inf
        raise bad_input("wait", f"must be a number of seconds from 0 to {MAX_WAIT:g}")
    return value


def _when(text: str, field: str, *, end: bool) -> str:
    """``YYYY-MM-DD`` (a whole day; ``until`` includes it) or an ISO date-time (without
    an offset: Vietnam time), as the UTC text the store compares with."""
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            at = datetime.combine(day, time(0), VIETNAM_TIME)
            if end:
                at = datetime.combine(day.fromordinal(day.toordinal() + 1), time(0),
                                      VIETNAM_TIME)
        else:
            at = datetime.fromisoformat(text)
            if at.tzinfo is None:
                at = at.replace(tzinfo=VIETNAM_TIME)
    except (ValueError, OverflowError):
        raise bad_input(field, "must be a date YYYY-MM-DD or an ISO 8601 date-time") from None
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def _make_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"s{seq}".encode()).decode().rstrip("=")


def _cursor(text: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("ascii")
        if raw[:1] == "s" and raw[1:].isdigit() and len(raw) < 20:
            return int(raw[1:])
    except (ValueError, UnicodeDecodeError):
        pass
    raise bad_input("cursor", "must be a next_cursor value from an earlier page")


# --- errors ---------------------------------------------------------------------------

async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return _json(exc.body(), exc.status, exc.headers)


_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 413: "payload_too_large",
               415: "unsupported_media_type", 422: "bad_input"}


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "error")
    message = {404: f"no such route: {request.method} {request.url.path}",
               405: f"{request.method} is not allowed on {request.url.path}"}.get(
        exc.status_code, str(exc.detail))
    return _json(error_body(code, message), exc.status_code, dict(exc.headers or {}))


async def _server_error(request: Request, exc: Exception) -> Response:
    log.error("bridge: %s %s failed: %s", request.method, request.url.path,
              type(exc).__name__, exc_info=exc)
    return _json(error_body("internal", "the bridge failed on this request; it is logged"),
                 500)


def build_app(bridge: Bridge, keys: Keys, *, data_dir: Path) -> Any:
    """The ASGI application: routes, error handlers, the lifespan, the middleware."""
    reconciliations = Reconciliations(bridge, data_dir / "bridge-reports",
                                      int(bridge.config.tuning.max_upload_mb * 1024 * 1024))
    api = Api(bridge, keys, reconciliations)
    routes = [
        Route("/v1/health", api.health, methods=["GET"]),
        Route("/v1/terminals", api.terminals, methods=["GET"]),
        Route("/v1/sync", api.sync, methods=["GET"]),
        Route("/v1/terminals/{name}/payments", api.sale, methods=["POST"]),
        Route("/v1/terminals/{name}/voids", api.void, methods=["POST"]),
        Route("/v1/terminals/{name}/settlements", api.settle, methods=["POST"]),
        Route("/v1/terminals/{name}/last-transaction", api.last_transaction, methods=["GET"]),
        Route("/v1/payments", api.payments, methods=["GET"]),
        Route("/v1/payments/{id}", api.payment, methods=["GET"]),
        Route("/v1/payments/{id}/resolve", api.resolve, methods=["POST"]),
        Route("/v1/events", api.events, methods=["GET"]),
        Route("/v1/reconciliations", api.reconcile, methods=["POST"]),
        Route("/v1/reconciliations/{id}.xlsx", api.reconciliation_xlsx, methods=["GET"]),
        Route("/openapi.json", api.openapi, methods=["GET"]),
        Route("/", api.console, methods=["GET"]),
        Route("/v1/client.js", api.client_js, methods=["GET"]),
        Route("/{file}", api.static, methods=["GET"]),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await bridge.start()
        sender_task = None
        config = bridge.config
        if config.webhook_url and config.webhook_secret:
            sender = WebhookSender(bridge.hub, config.webhook_url, config.webhook_secret,
                                   config.tuning.webhook_backoff, bridge.webhook_data)
            sender_task = asyncio.create_task(sender.run())
        try:
            yield
        finally:
            if sender_task is not None:
                sender_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sender_task
            await bridge.stop()

    app = Starlette(
        routes=routes,
        exception_handlers={ApiError: _api_error, HTTPException: _http_error,
                            Exception: _server_error},
        lifespan=lifespan,
    )
    return BridgeMiddleware(app, allowed_origins=bridge.config.allowed_origins,
                            json_limit=JSON_LIMIT, upload_limit=reconciliations.limit)
