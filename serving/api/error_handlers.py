"""Exception handlers: every error answer is rendered here, in the shape its route's caller reads.

`{"error": {"code", "message"}}` outside /v2, the Open Inference Protocol's `{"error": ...}`
under it. An error on a model's route is also counted by model and code
(serving_request_errors_total).
"""

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

from serving.api.deps import metrics_of, registry_of
from serving.api.middleware import REQUESTED_MODEL
from serving.api.responses import JSONBytes
from serving.core.errors import (
    MalformedRequestError,
    MethodNotAllowedError,
    OverloadedError,
    RouteNotFoundError,
    ServingError,
)
from serving.core.metrics import UNKNOWN_MODEL
from serving.v2.errors import is_protocol_path, protocol_error, protocol_status

log = logging.getLogger(__name__)


def _error(
    request: Request, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    _count(request, code)
    if is_protocol_path(request.url.path):  # Open Inference Protocol clients read another shape
        return JSONBytes(protocol_error(message), protocol_status(status), headers)
    return JSONBytes({"error": {"code": code, "message": message}}, status, headers)


def _count(request: Request, code: str) -> None:
    """Errors of model routes only: a model named in the path, or the one a body named."""
    name = request.path_params.get("name") or request.scope.get(REQUESTED_MODEL)
    if name is None and request.url.path != "/predict":
        return
    served = registry_of(request).models
    metrics_of(request).request_errors.labels(name if name in served else UNKNOWN_MODEL, code).inc()


async def _serving_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServingError)
    return _error(request, exc.status_code, exc.code, str(exc), _headers_for(exc))


def _headers_for(exc: ServingError) -> dict[str, str] | None:
    if exc.status_code == 401:
        return {"WWW-Authenticate": "Bearer"}
    if isinstance(exc, OverloadedError):
        return {"Retry-After": str(exc.retry_after_seconds)}
    return None


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = "; ".join(
        f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors()
    )
    return _error(request, 422, MalformedRequestError.code, problems or "invalid request")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        return _error(request, 404, RouteNotFoundError.code, f"no route {request.url.path}")
    if exc.status_code == 405:
        message = f"{request.method} is not allowed here"
        allow = {"Allow": ", ".join(_allowed_methods(request))}
        return _error(request, 405, MethodNotAllowedError.code, message, allow)
    return _error(request, exc.status_code, "http_error", str(exc.detail), exc.headers)


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route takes at this path. Starlette's own Allow names only the first
    route that matched the path, though another (PUT and DELETE of an alias) may take more.
    """
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.routes):
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods |= route.methods or set()
    return sorted(methods)


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error", exc_info=exc)
    return _error(request, 500, "internal_error", "internal error; see the server log")


EXCEPTION_HANDLERS: dict[Any, Any] = {
    ServingError: _serving_error,
    RequestValidationError: _validation_error,
    StarletteHTTPException: _http_error,
    Exception: _unexpected_error,
}
