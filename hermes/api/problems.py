"""RFC 9457 problem details: the one shape every error of the API takes."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import msgspec
import psycopg
from litestar import MediaType, Request, Response
from litestar.exceptions import (
    HTTPException,
    MethodNotAllowedException,
    NotFoundException,
    ValidationException,
)
from litestar.status_codes import HTTP_413_REQUEST_ENTITY_TOO_LARGE, HTTP_415_UNSUPPORTED_MEDIA_TYPE
from litestar.types import ExceptionHandlersMap

from hermes.domain.errors import Code, FieldError, HermesError, entry

PROBLEM_JSON = "application/problem+json"
TYPE_PREFIX = "urn:hermes:error:"

log = logging.getLogger("hermes.api")


class Problem(msgspec.Struct, omit_defaults=True):
    type: str
    title: str
    status: int
    code: str
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldError] = msgspec.field(default_factory=list)


def request_id(request: Request[Any, Any, Any]) -> str:
    state = request.scope.setdefault("state", {})
    # Requests that match no route never pass the route middleware; give them an id here.
    rid = state.get("request_id") or f"req_{uuid.uuid4().hex}"
    state["request_id"] = rid
    return str(rid)


def problem_response(
    request: Request[Any, Any, Any],
    code: str,
    detail: str | None = None,
    *,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> Response[bytes]:
    info = entry(code)
    body = msgspec.to_builtins(
        Problem(
            type=TYPE_PREFIX + code,
            title=info.title,
            status=info.status,
            code=code,
            detail=detail,
            instance=request_id(request),
            errors=errors or [],
        )
    )
    if extra:
        body.update(extra)
    return Response(
        content=msgspec.json.encode(body),
        status_code=info.status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def _hermes_error(request: Request[Any, Any, Any], exc: HermesError) -> Response[bytes]:
    return problem_response(
        request, exc.code, exc.detail, errors=exc.errors, headers=exc.headers, extra=exc.extra
    )


def _validation_error(request: Request[Any, Any, Any], exc: ValidationException) -> Response[bytes]:
    # Litestar raises this both for undecodable JSON and for schema mismatches.
    errors = []
    for item in exc.extra or []:
        if isinstance(item, dict):
            errors.append(FieldError(code=Code.REQUEST_INVALID, field=item.get("key"),
                                     detail=item.get("message")))
    detail = exc.detail or ""
    code = Code.REQUEST_MALFORMED if "malformed" in detail.lower() else Code.REQUEST_INVALID
    return problem_response(request, code, detail or None, errors=errors)


def _http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    if isinstance(exc, NotFoundException):
        code = Code.REQUEST_NOT_FOUND
    elif isinstance(exc, MethodNotAllowedException):
        code = Code.REQUEST_METHOD_NOT_ALLOWED
    elif exc.status_code == HTTP_413_REQUEST_ENTITY_TOO_LARGE:
        code = Code.REQUEST_TOO_LARGE
    elif exc.status_code == HTTP_415_UNSUPPORTED_MEDIA_TYPE:
        code = Code.REQUEST_UNSUPPORTED_MEDIA_TYPE
    elif exc.status_code == 400 and "malformed" in (exc.detail or "").lower():
        # A JSON body a `data` parameter could not parse at all.
        code = Code.REQUEST_MALFORMED
    elif exc.status_code == 401:
        code = Code.AUTH_INVALID
    elif exc.status_code == 403:
        code = Code.AUTH_FORBIDDEN
    elif exc.status_code < 500:
        code = Code.REQUEST_INVALID
    else:
        code = Code.INTERNAL_ERROR
    return problem_response(request, code, exc.detail or None, headers=exc.headers)


def _unhandled(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    if isinstance(exc, psycopg.OperationalError | ConnectionError):
        # PostgreSQL is down or unreachable: nothing was committed, and a retry may succeed.
        log.warning("dependency unavailable: %s", exc, extra={"request_id": request_id(request)})
        return problem_response(request, Code.DEPENDENCY_UNAVAILABLE,
                                "the database is unavailable; nothing was stored, try again")
    log.exception("unhandled error", extra={"request_id": request_id(request)})
    return problem_response(request, Code.INTERNAL_ERROR)


exception_handlers: ExceptionHandlersMap = {
    HermesError: _hermes_error,
    ValidationException: _validation_error,
    HTTPException: _http_error,
    Exception: _unhandled,
}

__all__ = ["PROBLEM_JSON", "MediaType", "exception_handlers", "problem_response"]
