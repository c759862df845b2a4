"""The contract's error shape, in one place for every route.

``{"error": {"code": "snake_case_code", "message": "what went wrong and what to do"}}``
A route raises :class:`ApiError`; the app's error handler renders it. Anything else
that escapes a route is a bug: it is logged and answered 500 without a traceback.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["ApiError", "error_body"]


class ApiError(Exception):
    """An error a client caused or must know about, with its HTTP status."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def body(self) -> bytes:
        return error_body(self.code, self.message)


def error_body(code: str, message: str, **extra: Any) -> bytes:
    """The JSON bytes of an error document."""
    error: dict[str, Any] = {"code": code, "message": message}
    error.update(extra)
    return json.dumps({"error": error}).encode("utf-8")
