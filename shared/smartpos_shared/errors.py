"""Typed domain errors and the single RFC 9457 problem+json renderer.

Services raise subclasses of `DomainError`; one handler renders them. Validation errors list the offending
fields; unexpected exceptions become an opaque 500 (details only in the log).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import asyncpg
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://smartpos.dev/problems/"

log = structlog.get_logger("smartpos.errors")


class DomainError(Exception):
    """Base of every error a service raises on purpose. `code` is stable; clients may switch on it."""

    status: int = 400
    code: str = "bad_request"
    title: str = "Bad request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.detail = detail or self.title
        if code is not None:
            self.code = code
        self.headers = headers or {}
        self.extra = extra or {}
        super().__init__(self.detail)


class NotFound(DomainError):
    status, code, title = 404, "not_found", "Not found"


class Conflict(DomainError):
    status, code, title = 409, "conflict", "Conflict"


class Forbidden(DomainError):
    status, code, title = 403, "forbidden", "Forbidden"


class Unauthorized(DomainError):
    status, code, title = 401, "unauthorized", "Unauthorized"

    def __init__(self, detail: str | None = None, *, error: str = "invalid_token") -> None:
        super().__init__(
            detail or "A valid bearer access token is required",
            headers={"WWW-Authenticate": f'Bearer error="{error}"'},
        )


class Unprocessable(DomainError):
    status, code, title = 422, "validation_failed", "Unprocessable request"


class ServiceUnavailable(DomainError):
    status, code, title = 503, "service_unavailable", "Service unavailable"


class PayloadTooLarge(StarletteHTTPException):
    """A streamed (chunked) body passed the size limit while the app was reading it.

    An HTTPException on purpose: FastAPI turns any other exception raised while it reads a body into a 400."""

    def __init__(self) -> None:
        super().__init__(413, "payload too large")


def problem(
    status: int,
    code: str,
    title: str,
    detail: str,
    *,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {"type": PROBLEM_BASE + code, "title": title, "status": status, "detail": detail}
    if instance:
        body["instance"] = instance
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


MALFORMED_BODY = "The body could not be read as JSON (not UTF-8, or not JSON at all)"


def problem_schema(description: str) -> dict[str, Any]:
    """OpenAPI `responses` entry for an error answered as problem+json."""
    return {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def _code_for_status(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"


def install_error_handlers(app: FastAPI) -> None:
    async def domain_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, DomainError)
        return problem(
            exc.status,
            exc.code,
            exc.title,
            exc.detail,
            instance=request.url.path,
            headers=exc.headers,
            **exc.extra,
        )

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {
                "loc": list(err.get("loc", ())),
                "msg": str(err.get("msg", "")),
                "type": str(err.get("type", "")),
            }
            for err in exc.errors()
        ]
        return problem(
            422,
            "validation_failed",
            "Unprocessable request",
            "The request has invalid or missing fields",
            instance=request.url.path,
            errors=errors,
        )

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        try:
            title = HTTPStatus(exc.status_code).phrase
        except ValueError:
            title = "Error"
        detail = exc.detail if isinstance(exc.detail, str) else title
        return problem(
            exc.status_code,
            _code_for_status(exc.status_code),
            title,
            detail,
            instance=request.url.path,
            headers=dict(exc.headers or {}),
        )

    async def dependency_down(request: Request, exc: Exception) -> JSONResponse:
        log.warning("dependency_unavailable", path=request.url.path, error_type=type(exc).__name__)
        return problem(
            503,
            "service_unavailable",
            "Service unavailable",
            "a backing service is unavailable; retry shortly",
            headers={"Retry-After": "1"},
        )

    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        # Already logged, with the request id, by the observability middleware.
        return problem(500, "internal_error", "Internal server error", "An unexpected error occurred")

    app.add_exception_handler(DomainError, domain_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    for exc_type in (
        sa_exc.OperationalError,
        sa_exc.InterfaceError,
        sa_exc.TimeoutError,
        asyncpg.PostgresConnectionError,
        asyncpg.InterfaceError,
        asyncpg.CannotConnectNowError,
        asyncpg.TooManyConnectionsError,
        ConnectionError,
        OSError,
        TimeoutError,
    ):
        app.add_exception_handler(exc_type, dependency_down)
    app.add_exception_handler(Exception, unexpected_error)


PROBLEM_COMPONENT: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "description": "RFC 9457 problem details",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
}
