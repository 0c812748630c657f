"""The API's one error shape: ``{"error": {"code", "message", "field"?}}``.

Every refusal, from a route or from Starlette itself (404, 405), goes through
:class:`ApiError` and :func:`error_response`, so a client parses one shape.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ApiError", "error_body"]


class ApiError(Exception):
    """A refusal with its HTTP status, a stable ``code`` and a one-line message.

    ``field`` names the input at fault (``amount``, ``Idempotency-Key``); ``extra``
    adds documented keys (``payments`` for ``in_doubt``/``terminal_busy``).
    """

    def __init__(
        self, status: int, code: str, message: str, *, field: str | None = None,
        extra: dict[str, Any] | None = None, headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.extra = extra or {}
        self.headers = headers

    def body(self) -> dict[str, Any]:
        """The JSON body."""
        return error_body(self.code, self.message, self.field, self.extra)


def error_body(
    code: str, message: str, field: str | None = None, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """``{"error": {...}}`` with ``field`` only when there is one."""
    error: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    error.update(extra or {})
    return {"error": error}


def bad_input(field: str, rule: str) -> ApiError:
    """422 ``bad_input``: nothing was written or sent."""
    return ApiError(422, "bad_input", f"{field}: {rule}", field=field)
