"""What the API answers when it cannot do what was asked: one JSON shape, `{"error": code, "detail": line}`, with
the status that fits and, where it helps, a few more fields (`parameter`, `problems`).

Handlers raise `ApiError`; the error middleware in app.py turns it, and anything else that escapes, into that
shape. Nothing here may put a traceback, a secret or a SQL statement in a response.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..errors import KamiyoError

# the short codes, one per kind of refusal; the OpenAPI document lists them
BAD_PARAMETER, BAD_BODY = "invalid_parameter", "invalid_body"
UNAUTHORIZED, FORBIDDEN, QUOTA, RATE_LIMITED = "unauthorized", "forbidden", "quota", "rate_limited"
NOT_FOUND, METHOD_NOT_ALLOWED, CONFLICT, TOO_LARGE = "not_found", "method_not_allowed", "conflict", "too_large"
READ_ONLY, UNSUPPORTED, UNAVAILABLE, NOT_READY, INTERNAL = ("read_only", "unsupported", "unavailable", "not_ready",
                                                             "internal")
BAD_REQUEST, HTTP_ERROR = "bad_request", "http_error"  # what aiohttp itself refused, before a handler ran
UPGRADE_REQUIRED = "upgrade_required"  # a plain request to the WebSocket route
CODES = (BAD_PARAMETER, BAD_BODY, UNAUTHORIZED, FORBIDDEN, QUOTA, RATE_LIMITED, NOT_FOUND, METHOD_NOT_ALLOWED,
         CONFLICT, TOO_LARGE, READ_ONLY, UNSUPPORTED, UNAVAILABLE, NOT_READY, INTERNAL, BAD_REQUEST, HTTP_ERROR,
         UPGRADE_REQUIRED)


class ApiError(KamiyoError):
    """A refusal with its HTTP status and short code; `extra` adds fields to the body, `headers` to the response."""

    def __init__(self, status: int, code: str, detail: str, *, headers: dict[str, str] | None = None,
                 **extra: Any) -> None:
        super().__init__(detail, status=status, code=code)
        self.status, self.code, self.headers, self.extra = status, code, headers or {}, extra

    def response(self) -> web.Response:
        return error_response(self.status, self.code, self.message, headers=self.headers, **self.extra)


class BadParameter(ApiError):
    """A query or path parameter that cannot be used: 400, naming it."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(400, BAD_PARAMETER, f"{name}: {problem}", parameter=name)


def not_found(what: str) -> ApiError:
    return ApiError(404, NOT_FOUND, what)


def error_response(status: int, code: str, detail: str, *, headers: dict[str, str] | None = None,
                   **extra: Any) -> web.Response:
    line = " ".join(str(detail).split())[:500]  # one readable line, whatever the message held
    return web.json_response({"error": code, "detail": line, **extra}, status=status, headers=headers)
