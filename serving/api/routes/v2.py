"""Open Inference Protocol (V2) routes: health, metadata, readiness, infer, model repository.

Each route only translates HTTP; the protocol's data plane is in serving/v2/. Errors under
/v2 are rendered as `{"error": "<message>"}` by app.py's handlers (see serving/v2/errors.py).

Repository load and unload act on the worker process that answers the request. With several
gunicorn workers or replicas, the others keep their own state: an operator who needs a model
out of service everywhere moves its alias or deletes it instead.
"""

from typing import Any

import anyio
from fastapi import APIRouter, Request
from starlette.responses import Response

from serving.api.deps import (
    AdminTokenRequired,
    ApiKeyRequired,
    PredictorDep,
    RegistryDep,
    SettingsDep,
    StoreDep,
)
from serving.api.middleware import LOG_FIELDS
from serving.api.responses import JSONBytes
from serving.api.routes.traffic import ROUTING_KEY
from serving.core.errors import MalformedRequestError, ModelNotFoundError, NotReadyError
from serving.core.settings import Settings
from serving.dataplane.inputs import VersionSpec, decode_object, parse_version
from serving.dataplane.predictor import Predictor
from serving.registry.registry import ModelRegistry
from serving.repository.manifest import ModelManifest
from serving.repository.store import ModelStore
from serving.v2 import inference
from serving.v2.metadata import model_metadata, repository_index, server_metadata

router = APIRouter(prefix="/v2", tags=["Open Inference Protocol (V2)"])
_API_KEY = [ApiKeyRequired]
_ADMIN = [AdminTokenRequired]
_ERROR = {"description": 'Protocol error: {"error": "<message>"}'}
_RESPONSES: dict[int | str, dict[str, Any]] = {400: _ERROR, 404: _ERROR, 503: _ERROR, 504: _ERROR}
_INFER_BODY = {
    "requestBody": {
        "required": True,
        "description": "An inference request; binary tensor data may follow the JSON "
        "(header Inference-Header-Content-Length).",
        "content": {"application/json": {"schema": {"type": "object", "required": ["inputs"]}}},
    }
}


# --- server --------------------------------------------------------------------------------
@router.get("", dependencies=_API_KEY)
async def get_server_metadata() -> JSONBytes:
    return JSONBytes(server_metadata())


@router.get("/health/live")
@router.head("/health/live", include_in_schema=False)
async def server_live() -> JSONBytes:
    return JSONBytes({"live": True})


@router.get("/health/ready", responses=_RESPONSES)
@router.head("/health/ready", include_in_schema=False)
async def server_ready(registry: RegistryDep) -> JSONBytes:
    """200 once every model has been tried and at least one serves; 503 before."""
    if not registry.is_ready():
        raise NotReadyError("no model is loaded yet")
    return JSONBytes({"ready": True})


# --- models --------------------------------------------------------------------------------
@router.get("/models/{name}", dependencies=_API_KEY, responses=_RESPONSES)
async def get_model_metadata(name: str, registry: RegistryDep, store: StoreDep) -> JSONBytes:
    """Inputs, outputs and versions of the model's default version."""
    return JSONBytes(await _metadata(registry, store, name, None))


@router.get("/models/{name}/versions/{version}", dependencies=_API_KEY, responses=_RESPONSES)
async def get_version_metadata(
    name: str, version: str, registry: RegistryDep, store: StoreDep
) -> JSONBytes:
    """Inputs, outputs and versions of one version (a number or an alias)."""
    return JSONBytes(await _metadata(registry, store, name, parse_version(version)))


@router.get("/models/{name}/ready", dependencies=_API_KEY, responses=_RESPONSES)
async def model_ready(name: str, registry: RegistryDep) -> JSONBytes:
    """200 while the model's default version is loaded in this worker; 503 otherwise."""
    state = registry.models.get(name)
    if state is None:
        raise ModelNotFoundError(f"unknown model {name!r}")
    if state.served is None or registry.is_unloaded(name):
        raise NotReadyError(f"model {name!r} is not loaded")
    return JSONBytes({"name": name, "ready": True})


@router.get("/models/{name}/versions/{version}/ready", dependencies=_API_KEY, responses=_RESPONSES)
async def version_ready(name: str, version: str, registry: RegistryDep) -> JSONBytes:
    """200 when this version can answer now: loaded, or loaded on demand by this check."""
    model = await registry.resolve(name, parse_version(version))
    return JSONBytes({"name": name, "version": str(model.manifest.version), "ready": True})


@router.post(
    "/models/{name}/infer",
    dependencies=_API_KEY,
    responses=_RESPONSES,
    openapi_extra=_INFER_BODY,
)
async def infer(
    name: str,
    request: Request,
    registry: RegistryDep,
    predictor: PredictorDep,
    settings: SettingsDep,
) -> Response:
    """Score the input tensors with the model's default version."""
    return await _infer(request, registry, predictor, settings, name, None)


@router.post(
    "/models/{name}/versions/{version}/infer",
    dependencies=_API_KEY,
    responses=_RESPONSES,
    openapi_extra=_INFER_BODY,
)
async def infer_version(
    name: str,
    version: str,
    request: Request,
    registry: RegistryDep,
    predictor: PredictorDep,
    settings: SettingsDep,
) -> Response:
    """Score the input tensors with one version (a number or an alias)."""
    return await _infer(request, registry, predictor, settings, name, parse_version(version))


# --- model repository extension (admin) ----------------------------------------------------
@router.post("/repository/index", dependencies=_ADMIN)
async def get_repository_index(request: Request, registry: RegistryDep) -> JSONBytes:
    """Every model with its state in this worker; body `{"ready": true}` keeps READY ones."""
    options = await _optional_object(request)
    return JSONBytes(repository_index(registry, only_ready=options.get("ready") is True))


@router.post("/repository/models/{name}/load", dependencies=_ADMIN, responses=_RESPONSES)
async def load_model(name: str, request: Request, registry: RegistryDep) -> JSONBytes:
    """Serve the model's default version in this worker again (loads it if needed)."""
    parameters = (await _optional_object(request)).get("parameters") or {}
    if isinstance(parameters, dict) and ("config" in parameters or _has_files(parameters)):
        raise MalformedRequestError("load takes no config or files; publish a version instead")
    await registry.load(name)
    return JSONBytes({"name": name, "load": True})


@router.post("/repository/models/{name}/unload", dependencies=_ADMIN, responses=_RESPONSES)
async def unload_model(name: str, request: Request, registry: RegistryDep) -> JSONBytes:
    """Stop serving the model in this worker until it is loaded again."""
    await _optional_object(request)
    await registry.unload(name)
    return JSONBytes({"name": name, "unload": True})


# --- helpers ---------------------------------------------------------------------------------
async def _metadata(
    registry: ModelRegistry, store: ModelStore, name: str, version: VersionSpec
) -> dict[str, Any]:
    state = registry.models.get(name)
    if state is None:
        raise ModelNotFoundError(f"unknown model {name!r}")
    if version is None and state.served is not None:
        return model_metadata(state.served.manifest, state.versions)
    manifest = await anyio.to_thread.run_sync(_read_manifest, store, name, version)
    return model_metadata(manifest, state.versions)


def _read_manifest(store: ModelStore, name: str, version: VersionSpec) -> ModelManifest:
    return store.read_manifest(name, store.resolve(name, version))


async def _infer(
    request: Request,
    registry: ModelRegistry,
    predictor: Predictor,
    settings: Settings,
    name: str,
    version: VersionSpec,
) -> Response:
    headers = request.headers
    decoded = await inference.decode(
        await request.body(),
        headers.get("inference-header-content-length"),
        headers.get("content-encoding", "").lower() or None,
        settings.max_body_bytes,
    )
    answer = await inference.infer(
        registry, predictor, name, version, decoded, settings.max_rows, headers.get(ROUTING_KEY)
    )
    cache = "HIT" if answer.is_cache_hit else "MISS"
    request.scope[LOG_FIELDS].update(model=answer.model, version=answer.version, cache=cache)
    if answer.json_length is None:
        return Response(answer.body, media_type="application/json", headers={"X-Cache": cache})
    binary_headers = {"X-Cache": cache, "Inference-Header-Content-Length": str(answer.json_length)}
    return Response(answer.body, media_type="application/octet-stream", headers=binary_headers)


async def _optional_object(request: Request) -> dict[str, Any]:
    """An optional JSON object body (repository routes); empty means `{}`."""
    raw = await request.body()
    if not raw.strip():
        return {}
    return decode_object(raw)


def _has_files(parameters: dict[str, Any]) -> bool:
    return any(key.startswith("file:") for key in parameters)
