"""POST /predict and the per-model predict routes.

They are LeanRoutes (routes/lean.py), added to the app by `add_routes`: each endpoint takes
the request and its path parameters only, and checks the API key itself before it reads
the body.
"""

import dataclasses
from collections.abc import Callable, Coroutine
from typing import Any

import anyio
from fastapi import FastAPI, Request
from starlette.responses import Response

from serving.api.content_encoding import decoded_body
from serving.api.deps import (
    BEARER_SECURITY,
    check_api_key,
    predictor_of,
    registry_of,
    settings_of,
)
from serving.api.middleware import LOG_FIELDS, PAYLOAD_FIELDS, REQUESTED_MODEL
from serving.api.routes.lean import LeanRoute
from serving.api.routes.traffic import ROUTING_KEY
from serving.api.schemas import ErrorResponse, PredictRequest, PredictResponse
from serving.core.errors import MalformedRequestError
from serving.core.tracing import span
from serving.dataplane.inputs import PredictBody, parse_predict_body, parse_version
from serving.dataplane.offload import decodes_inline
from serving.dataplane.predictor import Prediction

_ANY_MODEL = frozenset({"model", "version", "instances", "probabilities"})
_NAMED_MODEL = frozenset({"version", "instances", "probabilities"})
_PINNED_VERSION = frozenset({"instances", "probabilities"})

_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": PredictResponse, "description": "Predictions (header X-Cache: HIT or MISS)"},
    401: {"model": ErrorResponse, "description": "Missing or invalid API key"},
    404: {"model": ErrorResponse, "description": "Unknown model, version or alias"},
    413: {"model": ErrorResponse, "description": "Body larger than SERVING_MAX_BODY_BYTES"},
    415: {"model": ErrorResponse, "description": "A Content-Encoding other than gzip or deflate"},
    422: {
        "model": ErrorResponse,
        "description": "Invalid body, rows or feature values, or rows the model itself refuses",
    },
    503: {
        "model": ErrorResponse,
        "description": "overloaded: the worker holds SERVING_MAX_INFLIGHT requests (Retry-After)",
    },
    504: {"model": ErrorResponse, "description": "timeout: SERVING_REQUEST_TIMEOUT_SECONDS passed"},
}


def _operation_doc(fields: frozenset[str]) -> dict[str, Any]:
    schema = PredictRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    schema["properties"] = {k: v for k, v in schema["properties"].items() if k in fields}
    content = {"application/json": {"schema": schema}}
    return {"requestBody": {"required": True, "content": content}, "security": BEARER_SECURITY}


async def _read_body(request: Request, fields: frozenset[str]) -> PredictBody:
    """The API key is checked first: an anonymous caller's body is never read."""
    check_api_key(request)
    settings = settings_of(request)
    raw = await decoded_body(
        await request.body(), request.headers.get("content-encoding"), settings.max_body_bytes
    )
    max_rows = settings.max_rows
    with span("decode"):
        if decodes_inline(len(raw)):
            body = parse_predict_body(raw, allowed=fields, max_rows=max_rows)
        else:
            body = await anyio.to_thread.run_sync(
                lambda: parse_predict_body(raw, allowed=fields, max_rows=max_rows, convert=True)
            )
    sampled = request.scope.get(PAYLOAD_FIELDS)  # the payload log drew this request
    if sampled is not None:
        sampled["inputs"] = raw
    return body


def _respond(request: Request, prediction: Prediction) -> Response:
    cache = "HIT" if prediction.is_cache_hit else "MISS"
    request.scope[LOG_FIELDS].update(
        model=prediction.model, version=prediction.version, cache=cache
    )
    sampled = request.scope.get(PAYLOAD_FIELDS)
    if sampled is not None:
        sampled["outputs"] = prediction.payload
    return Response(prediction.payload, media_type="application/json", headers={"X-Cache": cache})


async def predict(request: Request) -> Response:
    """Score `instances` with `model` (optional when one model is served) at `version`."""
    body = await _read_body(request, _ANY_MODEL)
    name = body.model or registry_of(request).sole_model_name()
    request.scope[REQUESTED_MODEL] = name
    routing_key = request.headers.get(ROUTING_KEY)
    return _respond(request, await predictor_of(request).predict(name, body, routing_key))


async def predict_model(name: str, request: Request) -> Response:
    """Score `instances` with model `name` at `version` (default: its production version)."""
    body = await _read_body(request, _NAMED_MODEL)
    routing_key = request.headers.get(ROUTING_KEY)
    return _respond(request, await predictor_of(request).predict(name, body, routing_key))


async def predict_version(name: str, version: str, request: Request) -> Response:
    """Score `instances` with one version (a number or an alias) of model `name`."""
    body = await _read_body(request, _PINNED_VERSION)
    pinned = parse_version(version)
    if pinned is None:
        raise MalformedRequestError("version is required")
    return _respond(request, await predictor_of(request).predict(name, _pinned(body, pinned)))


def _pinned(body: PredictBody, version: int | str) -> PredictBody:
    return dataclasses.replace(body, version=version)


_Endpoint = Callable[..., Coroutine[Any, Any, Response]]
_ROUTES: list[tuple[str, _Endpoint, frozenset[str]]] = [
    ("/predict", predict, _ANY_MODEL),
    ("/models/{name}/predict", predict_model, _NAMED_MODEL),
    ("/models/{name}/versions/{version}/predict", predict_version, _PINNED_VERSION),
]


def add_routes(app: FastAPI) -> None:
    """On the app's own router, not through an inclusion (see LeanRoute)."""
    for path, endpoint, fields in _ROUTES:
        app.router.add_api_route(
            path,
            endpoint,
            methods=["POST"],
            tags=["predict"],
            responses=_RESPONSES,
            openapi_extra=_operation_doc(fields),
            route_class_override=LeanRoute,
        )
