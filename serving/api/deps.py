"""Typed dependencies: the only reader of app.state.

Async on purpose: FastAPI runs a plain `def` dependency in the thread pool, a thread hop
per dependency per request for what is an attribute read.
"""

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPBearer

from serving.api.auth import require_admin, require_api_key
from serving.core.metrics import ServingMetrics
from serving.core.settings import Settings
from serving.dataplane.predictor import Predictor
from serving.registry.management import ModelManagement
from serving.registry.registry import ModelRegistry
from serving.repository.store import ModelStore


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings  # annotated: app.state is Any
    return settings


def predictor_of(request: Request) -> Predictor:
    predictor: Predictor = request.app.state.predictor
    return predictor


def registry_of(request: Request) -> ModelRegistry:
    registry: ModelRegistry = request.app.state.registry
    return registry


def metrics_of(request: Request) -> ServingMetrics:
    metrics: ServingMetrics = request.app.state.metrics
    return metrics


async def get_settings_dep(request: Request) -> Settings:
    return settings_of(request)


async def get_predictor(request: Request) -> Predictor:
    return predictor_of(request)


async def get_registry(request: Request) -> ModelRegistry:
    return registry_of(request)


async def get_store(request: Request) -> ModelStore:
    store: ModelStore = request.app.state.store
    return store


async def get_management(request: Request) -> ModelManagement:
    management: ModelManagement = request.app.state.management
    return management


def check_api_key(request: Request) -> None:
    """Prediction and read routes: open unless SERVING_API_KEYS is set.

    Called in the body of the predict endpoints (LeanRoute resolves no dependency) and,
    through ApiKeyRequired, as a dependency of the other guarded routes.
    """
    settings = settings_of(request)
    require_api_key(request.headers.get("authorization"), settings.api_keys, settings.admin_tokens)


# Documents the scheme in OpenAPI (the /docs "Authorize" button); checking is ours.
_bearer_scheme = HTTPBearer(auto_error=False)
BEARER_SECURITY: list[dict[str, list[str]]] = [
    {"HTTPBearer": []}
]  # the same entry, for routes that take no dependency


def _admin_token_dependency(
    request: Request, _: Annotated[object, Depends(_bearer_scheme)]
) -> None:
    """Management routes: 403 while no admin token is configured, 401 without a valid one."""
    require_admin(request.headers.get("authorization"), settings_of(request).admin_tokens)


def _api_key_dependency(request: Request, _: Annotated[object, Depends(_bearer_scheme)]) -> None:
    check_api_key(request)


AdminTokenRequired = Depends(_admin_token_dependency)
ApiKeyRequired = Depends(_api_key_dependency)
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
PredictorDep = Annotated[Predictor, Depends(get_predictor)]
RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
StoreDep = Annotated[ModelStore, Depends(get_store)]
ManagementDep = Annotated[ModelManagement, Depends(get_management)]
