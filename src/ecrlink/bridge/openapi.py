"""The OpenAPI 3.1 document the bridge serves at ``/openapi.json``.

Written by hand next to the routes: it is where the contract
(``docs/bridge-v1.md``) is made precise. The property-based tests
(``tests/bridge/test_property.py``) generate requests from it, so what it says
is checked against the running bridge.
"""

from __future__ import annotations

from typing import Any

from .._version import __version__

__all__ = ["openapi_document"]

_REF = "#/components/schemas/"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF + name}


def _error(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": _ref("Error")}}}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_AUTH_ERRORS = {
    "401": _error("No key, or an unknown one (`unauthorized`)."),
    "403": _error("The key's role may not do this (`forbidden`)."),
}
_NAME = {"name": "name", "in": "path", "required": True,
         "description": "A terminal named in the config file (`[terminals.NAME]`).",
         "schema": {"type": "string"}}
_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"},
       "description": "A payment id (`pay_…`)."}
_KEY = {
    "name": "Idempotency-Key", "in": "header", "required": True,
    "description": "1-64 printable ASCII characters, new for each payment and the same "
                   "when retrying it: the same key with the same body answers 200 with the "
                   "same payment (nothing is sent again), across restarts; with another body "
                   "409 `idempotency_conflict`. A request refused with 409 `in_doubt`, "
                   "`terminal_busy` or `duplicate_invoice` used no key.",
    "schema": {"type": "string", "pattern": "^[ -~]{1,64}$"},
}
_CREATED_RESPONSES = {
    "201": {**_json(_ref("Payment"), "Written down and started: `processing` (poll it, "
                    "stream it or wait for the webhook), or already final."),
            "headers": {"Location": {"schema": {"type": "string"}}}},
    "200": _json(_ref("Payment"), "A repeated `Idempotency-Key` with the same body: the "
                 "same payment, nothing sent again."),
    **_AUTH_ERRORS,
    "404": _error("Unknown terminal (`not_found`)."),
    "409": _error("`idempotency_conflict`, `terminal_busy` (another payment is processing "
                  "on that terminal; `payments` names it), `in_doubt` (a payment on that "
                  "terminal is in doubt; `payments` names it; sales only) or "
                  "`duplicate_invoice` (sales only). Nothing was sent."),
    "413": _error("The body is larger than 64 KiB (`payload_too_large`)."),
    "422": _error("`bad_input`: `field` names the input and the message the rule. Nothing "
                  "was written or sent."),
    "503": _error("`journal_error`: the journal could not record the payment; nothing was "
                  "sent."),
}

# Printable ASCII without | & = ? # % (the protocol's field rule), at most 20 characters.
_TEXT = {"type": ["string", "null"], "maxLength": 20, "pattern": "^[ -\"$'-<>@-{}~]*$"}

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object", "required": ["error"],
        "properties": {"error": {
            "type": "object", "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "`bad_input`, `unauthorized`, "
                         "`forbidden`, `not_found`, `method_not_allowed`, "
                         "`payload_too_large`, `idempotency_conflict`, `terminal_busy`, "
                         "`in_doubt`, `duplicate_invoice`, `not_in_doubt`, "
                         "`terminal_unreachable`, `terminal_error`, `journal_error`, "
                         "`internal`."},
                "message": {"type": "string"},
                "field": {"type": "string", "description": "The input at fault."},
                "rule_code": {"type": "string", "description": "For `bad_input` from the "
                              "protocol's field rules: the rule's code (`too_long`, "
                              "`not_ascii`, ...); `message` says it in the caller's "
                              "language."},
                "payments": {"type": "array", "items": {"type": "string"},
                             "description": "For `in_doubt`, `terminal_busy`, "
                             "`duplicate_invoice`: the payments concerned."},
                "journal_ids": {"type": "array", "items": {"type": "integer"}},
                "payment": {"type": "string",
                            "description": "For `idempotency_conflict`: the key's payment."},
            },
        }},
    },
    "Result": {
        "type": ["object", "null"],
        "description": "`Result.to_dict()` of the Python library: the terminal's answer "
                       "(command, status, outcome, approved, return_code, message, advice, "
                       "detail, request_id, client_id, journal_id, unrecorded, transaction "
                       "with the masked card number).",
        "additionalProperties": True,
    },
    "Payment": {
        "type": "object",
        "required": ["id", "terminal", "command", "amount", "invoice", "reference",
                     "receipt_no", "state", "result", "message", "created_at", "updated_at",
                     "journal_id"],
        "properties": {
            "id": {"type": "string", "pattern": "^pay_"},
            "terminal": {"type": "string"},
            "command": {"enum": ["sale", "void", "settle"]},
            "amount": {"type": ["integer", "null"], "description": "VND; null for "
                       "settle and void."},
            "invoice": {"type": ["string", "null"], "description": "F3"},
            "reference": {"type": ["string", "null"], "description": "F5"},
            "receipt_no": {"type": ["string", "null"]},
            "state": {"enum": ["processing", "approved", "declined", "canceled", "failed",
                               "amount_mismatch", "in_doubt"]},
            "result": _ref("Result"),
            "message": {"type": ["string", "null"], "description": "For the cashier, in "
                        "the request's `Accept-Language` (vi or en), else the key's `lang`, else "
                        "`[serve] lang`."},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
            "journal_id": {"type": ["integer", "null"]},
        },
    },
    "PaymentList": {
        "type": "object", "required": ["data", "next_cursor"],
        "properties": {"data": {"type": "array", "items": _ref("Payment")},
                       "next_cursor": {"type": ["string", "null"]}},
    },
    "Terminal": {
        "type": "object", "required": ["name", "url", "state", "tid", "last_seen"],
        "properties": {
            "name": {"type": "string"}, "url": {"type": "string"},
            "state": {"enum": ["idle", "busy", "in_doubt", "unreachable"]},
            "tid": {"type": ["string", "null"]},
            "last_seen": {"type": ["string", "null"], "format": "date-time"},
        },
    },
    "Sync": {
        "type": "object",
        "required": ["enabled", "state", "site", "central", "reachable", "shipped",
                     "shipped_at", "latest", "behind", "last_error", "last_error_at",
                     "reason"],
        "properties": {
            "enabled": {"type": "boolean"},
            "state": {"enum": ["off", "starting", "waiting", "in_sync", "behind",
                               "unreachable", "error", "stopped"]},
            "site": {"type": ["string", "null"]},
            "central": {"type": ["string", "null"],
                        "description": "Head office's URL, its password hidden."},
            "reachable": {"type": ["boolean", "null"]},
            "shipped": {"type": ["integer", "null"]},
            "shipped_at": {"type": ["string", "null"], "format": "date-time",
                           "description": "When `shipped` last moved (UTC)."},
            "latest": {"type": ["integer", "null"]},
            "behind": {"type": ["integer", "null"]},
            "last_error": {"type": ["string", "null"]},
            "last_error_at": {"type": ["string", "null"], "format": "date-time"},
            "reason": {"type": ["string", "null"]},
        },
    },
    "SaleBody": {
        "type": "object", "required": ["amount"], "additionalProperties": False,
        "properties": {
            "amount": {"type": "integer", "minimum": 1, "maximum": 9999999999},
            "invoice": {**_TEXT, "description": "F3: printable ASCII without | & = ? # %, "
                        "at most 20 characters"},
            "reference": {**_TEXT, "description": "F5, same rule"},
            "fields": {"type": "object", "additionalProperties": False,
                       "properties": {k: {**_TEXT, "type": "string"} for k in ("1", "2", "4")}},
            "allow_duplicate": {"type": "boolean", "default": False},
        },
    },
    "VoidBody": {
        "type": "object", "required": ["receipt_no"], "additionalProperties": False,
        "properties": {"receipt_no": {"type": "string", "pattern": "^[0-9]{1,12}$"}},
    },
    "SettleBody": {"type": "object", "additionalProperties": False, "properties": {}},
    "ResolveBody": {
        "type": "object", "required": ["who"], "additionalProperties": False,
        "properties": {
            "approved_receipt": {"type": "string", "pattern": "^[0-9]{1,12}$"},
            "not_approved": {"const": True},
            "who": {"type": "string", "minLength": 1, "maxLength": 80},
            "note": {"type": "string", "maxLength": 500},
        },
        "description": "Exactly one of `approved_receipt` or `not_approved`.",
    },
}


def _post(summary: str, body: str, description: str, name: dict[str, Any]) -> dict[str, Any]:
    return {
        "summary": summary, "description": description,
        "parameters": [name, _KEY],
        "requestBody": {"required": True,
                        "content": {"application/json": {"schema": _ref(body)}}},
        "responses": _CREATED_RESPONSES,
    }


def openapi_document(terminals: list[str] | None = None) -> dict[str, Any]:
    """The document (a fresh dict each call); ``terminals``: the configured names, listed
    as the values of ``{name}``."""
    name = dict(_NAME)
    if terminals:
        name["schema"] = {"type": "string", "enum": list(terminals)}
    payments_query = [
        {"name": "terminal", "in": "query", "schema": {"type": "string"}},
        {"name": "state", "in": "query", "schema": _SCHEMAS["Payment"]["properties"]["state"]},
        {"name": "since", "in": "query", "schema": {"type": "string"},
         "description": "YYYY-MM-DD or an ISO date-time (Vietnam time if no offset)."},
        {"name": "until", "in": "query", "schema": {"type": "string"},
         "description": "Excluded; a bare date includes that whole day."},
        {"name": "invoice", "in": "query", "schema": {"type": "string"}},
        {"name": "limit", "in": "query",
         "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}},
        {"name": "cursor", "in": "query", "schema": {"type": "string"},
         "description": "`next_cursor` of the previous page."},
    ]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ecrlink bridge", "version": __version__,
            "description": "Card payments through the shop's terminals, for registers that "
                           "are not Python programs. The contract is docs/bridge-v1.md; "
                           "errors are always {\"error\": {\"code\", \"message\", "
                           "\"field\"?}}. Payment states: processing, then approved, "
                           "declined, canceled, failed (never reached the terminal), "
                           "amount_mismatch, or in_doubt (later approved or declined). "
                           "Texts for people (`message`, `result.message/advice`, "
                           "FieldError messages, the events) follow `Accept-Language` "
                           "(the first of vi/en it names; q-values are not weighed, "
                           "`q=0` skips one), else the key's `lang`, else `[serve] lang`.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "An API key of [[serve.keys]]: "
                                           "role register or manager."}},
            "schemas": _SCHEMAS,
        },
        "paths": {
            "/v1/health": {"get": {
                "summary": "Is the bridge up", "security": [],
                "responses": {"200": _json({"type": "object", "required": ["status", "version"],
                                            "properties": {"status": {"const": "ok"},
                                                           "version": {"type": "string"}}},
                                           "Up.")}}},
            "/v1/terminals": {"get": {
                "summary": "The configured terminals and their state",
                "responses": {"200": _json({"type": "array", "items": _ref("Terminal")},
                                           "Every terminal of the config file."),
                              **_AUTH_ERRORS}}},
            "/v1/sync": {"get": {
                "summary": "Shipping to head office (manager)",
                "description": "With `site` and `[central] url` in the config file and a "
                               "journal file, the bridge ships the journal to head office "
                               "as `ecrlink journal sync --follow` does; sales never wait "
                               "for it. `state`: `starting`, `waiting`, `in_sync`, "
                               "`behind` (changes written since the last shipping, which "
                               "follows within about a second), `unreachable` (retrying), "
                               "`error` (stopped by an error, tried again in a minute), "
                               "`stopped`, or `off` (`enabled` false; `reason` says why). "
                               "`shipped`: head office holds every change up to this "
                               "number; `latest`: the journal's latest change.",
                "responses": {"200": _json(_ref("Sync"), "The shipping's state."),
                              **_AUTH_ERRORS}}},
            "/v1/terminals/{name}/payments": {"post": _post(
                "Start a sale", "SaleBody",
                "Checks the body (422 names the field), writes the payment down, starts the "
                "sale and answers as soon as the journal has it (201, `processing`).",
                name)},
            "/v1/terminals/{name}/voids": {"post": _post(
                "Void a sale of the current batch", "VoidBody", "By its receipt number.",
                name)},
            "/v1/terminals/{name}/settlements": {"post": _post(
                "Settle the batch", "SettleBody", "Sends settle|YES.", name)},
            "/v1/terminals/{name}/last-transaction": {"get": {
                "summary": "The terminal's last successful transaction (last trans)",
                "parameters": [name],
                "responses": {"200": _json(_ref("Result"), "Result.to_dict()."),
                              **_AUTH_ERRORS,
                              "404": _error("Unknown terminal."),
                              "409": _error("`terminal_busy`."),
                              "502": _error("`terminal_error`: an answer we cannot use."),
                              "503": _error("`terminal_unreachable`.")}}},
            "/v1/payments": {"get": {
                "summary": "Payments, newest first", "parameters": payments_query,
                "responses": {"200": _json(_ref("PaymentList"), "One page."),
                              **_AUTH_ERRORS, "422": _error("`bad_input`.")}}},
            "/v1/payments/{id}": {"get": {
                "summary": "One payment; with ?wait= a long-poll",
                "parameters": [_ID, {"name": "wait", "in": "query",
                                     "description": "Hold the request up to this many "
                                     "seconds (0-60) while the payment is processing.",
                                     "schema": {"type": "number", "minimum": 0,
                                                "maximum": 60}}],
                "responses": {"200": _json(_ref("Payment"), "The payment."), **_AUTH_ERRORS,
                              "404": _error("Unknown payment."),
                              "422": _error("`bad_input` (wait).")}}},
            "/v1/payments/{id}/resolve": {"post": {
                "summary": "Resolve an in-doubt payment (manager)",
                "description": "From the terminal's printed receipt: approved with its "
                               "receipt number, or not approved. Recorded in the journal "
                               "with `who`.",
                "parameters": [_ID],
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": _ref("ResolveBody")}}},
                "responses": {"200": _json(_ref("Payment"), "The payment, now final."),
                              **_AUTH_ERRORS, "404": _error("Unknown payment."),
                              "409": _error("`not_in_doubt`."),
                              "413": _error("Body too large."),
                              "422": _error("`bad_input`.")}}},
            "/v1/events": {"get": {
                "summary": "Server-Sent Events",
                "description": "`event: payment.updated` (data: the payment) or "
                               "`terminal.updated` (data: the terminal); `id:` increasing "
                               "and durable. Send `Last-Event-ID` (or ?last_event_id=) to "
                               "resume: every later event kept (at least 24 h) is sent. "
                               "Without it, the stream starts with the next event. "
                               "`: heartbeat` comments keep the connection open.",
                "parameters": [
                    {"name": "Last-Event-ID", "in": "header",
                     "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"}},
                    {"name": "last_event_id", "in": "query",
                     "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"}}],
                "responses": {"200": {"description": "The stream.", "content": {
                    "text/event-stream": {"schema": {"type": "string"}}}},
                    **_AUTH_ERRORS, "422": _error("`bad_input` (Last-Event-ID).")}}},
            "/v1/reconciliations": {"post": {
                "summary": "Reconcile against the bank's statement (manager)",
                "description": "multipart/form-data: `bank` (CSV or XLSX) and optional "
                               "`invoices`; up to `[serve.tuning] max_upload_mb` (20 MiB). "
                               "Answers the JSON of `ecrlink reconcile --json` plus `id` "
                               "and `xlsx_url` (the XLSX report, written with xlsxwriter). What "
                               "the statement proves is recorded in the journal.",
                "requestBody": {"required": True, "content": {"multipart/form-data": {
                    "schema": {"type": "object", "required": ["bank"], "properties": {
                        "bank": {"type": "string", "format": "binary"},
                        "invoices": {"type": "string", "format": "binary"}}}}}},
                "responses": {"201": _json({"type": "object", "additionalProperties": True},
                                           "The report."),
                              **_AUTH_ERRORS, "413": _error("Upload too large."),
                              "422": _error("`bad_input`: a file that cannot be read "
                                            "(`field` bank or invoices).")}}},
            "/v1/reconciliations/{id}.xlsx": {"get": {
                "summary": "A reconciliation report as XLSX (manager)",
                "parameters": [{"name": "id", "in": "path", "required": True,
                                "schema": {"type": "string"}}],
                "responses": {"200": {"description": "The workbook.", "content": {
                    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {
                        "schema": {"type": "string", "format": "binary"}}}},
                    **_AUTH_ERRORS, "404": _error("No such report.")}}},
            "/openapi.json": {"get": {"summary": "This document", "security": [],
                                      "responses": {"200": _json({"type": "object"},
                                                                 "OpenAPI 3.1.")}}},
            "/": {"get": {"summary": "The web console", "security": [], "responses": {
                "200": {"description": "HTML", "content": {"text/html": {
                    "schema": {"type": "string"}}}}}}},
            "/v1/client.js": {"get": {"summary": "ES module for web registers",
                                      "security": [], "responses": {
                "200": {"description": "JavaScript", "content": {"text/javascript": {
                    "schema": {"type": "string"}}}},
                "404": _error("Not installed.")}}},
        },
    }
