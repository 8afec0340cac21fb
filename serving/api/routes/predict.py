"""POST /predict and the per-model predict routes."""

import dataclasses
from typing import Any

import anyio
from fastapi import APIRouter, Request
from starlette.responses import Response

from serving.api.deps import PredictorDep, RegistryDep, SettingsDep
from serving.api.middleware import LOG_FIELDS, PAYLOAD_FIELDS
from serving.api.routes.lean import LeanRoute
from serving.api.schemas import ErrorResponse, PredictRequest, PredictResponse
from serving.core.errors import MalformedRequestError
from serving.core.tracing import span
from serving.dataplane.inputs import PredictBody, parse_predict_body, parse_version
from serving.dataplane.predictor import Prediction

router = APIRouter(tags=["predict"], route_class=LeanRoute)

_ANY_MODEL = frozenset({"model", "version", "instances", "probabilities"})
_NAMED_MODEL = frozenset({"version", "instances", "probabilities"})
_PINNED_VERSION = frozenset({"instances", "probabilities"})
_INLINE_BODY_BYTES = 64 * 1024  # larger bodies are decoded in a worker thread

_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": PredictResponse, "description": "Predictions (header X-Cache: HIT or MISS)"},
    404: {"model": ErrorResponse, "description": "Unknown model, version or alias"},
    413: {"model": ErrorResponse, "description": "Body larger than SERVING_MAX_BODY_BYTES"},
    422: {"model": ErrorResponse, "description": "Invalid body, rows or feature values"},
}


def _request_body_doc(fields: frozenset[str]) -> dict[str, Any]:
    schema = PredictRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    schema["properties"] = {k: v for k, v in schema["properties"].items() if k in fields}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


async def _read_body(request: Request, fields: frozenset[str], max_rows: int) -> PredictBody:
    raw = await request.body()
    with span("decode"):
        if len(raw) <= _INLINE_BODY_BYTES:
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


@router.post("/predict", responses=_RESPONSES, openapi_extra=_request_body_doc(_ANY_MODEL))
async def predict(
    request: Request, predictor: PredictorDep, registry: RegistryDep, settings: SettingsDep
) -> Response:
    """Score `instances` with `model` (optional when one model is served) at `version`."""
    body = await _read_body(request, _ANY_MODEL, settings.max_rows)
    name = body.model or registry.sole_model_name()
    return _respond(request, await predictor.predict(name, body))


@router.post(
    "/models/{name}/predict", responses=_RESPONSES, openapi_extra=_request_body_doc(_NAMED_MODEL)
)
async def predict_model(
    name: str, request: Request, predictor: PredictorDep, settings: SettingsDep
) -> Response:
    """Score `instances` with model `name` at `version` (default: its production version)."""
    body = await _read_body(request, _NAMED_MODEL, settings.max_rows)
    return _respond(request, await predictor.predict(name, body))


@router.post(
    "/models/{name}/versions/{version}/predict",
    responses=_RESPONSES,
    openapi_extra=_request_body_doc(_PINNED_VERSION),
)
async def predict_version(
    name: str, version: str, request: Request, predictor: PredictorDep, settings: SettingsDep
) -> Response:
    """Score `instances` with one version (a number or an alias) of model `name`."""
    body = await _read_body(request, _PINNED_VERSION, settings.max_rows)
    pinned = parse_version(version)
    if pinned is None:
        raise MalformedRequestError("version is required")
    return _respond(request, await predictor.predict(name, _pinned(body, pinned)))


def _pinned(body: PredictBody, version: int | str) -> PredictBody:
    return dataclasses.replace(body, version=version)
