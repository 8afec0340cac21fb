"""Typed dependencies: the only reader of app.state.

Async on purpose: FastAPI runs a plain `def` dependency in the thread pool, a thread hop
per dependency per request for what is an attribute read.
"""

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi import routing as fastapi_routing
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer
from starlette.responses import Response

from serving.auth import require_admin, require_api_key
from serving.lifecycle import Lifecycle
from serving.predictor import Predictor
from serving.registry import ModelRegistry
from serving.settings import Settings
from serving.store import ModelStore


def _settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings  # annotated: app.state is Any
    return settings


async def get_settings_dep(request: Request) -> Settings:
    return _settings_of(request)


async def get_predictor(request: Request) -> Predictor:
    predictor: Predictor = request.app.state.predictor
    return predictor


async def get_registry(request: Request) -> ModelRegistry:
    registry: ModelRegistry = request.app.state.registry
    return registry


async def get_store(request: Request) -> ModelStore:
    store: ModelStore = request.app.state.store
    return store


async def get_lifecycle(request: Request) -> Lifecycle:
    lifecycle: Lifecycle = request.app.state.lifecycle
    return lifecycle


# Only documents the scheme in OpenAPI (the /docs "Authorize" button); checking is ours.
_bearer_scheme = HTTPBearer(auto_error=False)


def check_admin_token(request: Request, _: Annotated[object, Depends(_bearer_scheme)]) -> None:
    """Management routes: 403 while no admin token is configured, 401 without a valid one."""
    require_admin(request.headers.get("authorization"), _settings_of(request).admin_tokens)


def check_api_key(request: Request, _: Annotated[object, Depends(_bearer_scheme)]) -> None:
    """Prediction and read routes: open unless SERVING_API_KEYS is set."""
    settings = _settings_of(request)
    require_api_key(request.headers.get("authorization"), settings.api_keys, settings.admin_tokens)


AdminTokenRequired = Depends(check_admin_token)
ApiKeyRequired = Depends(check_api_key)
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
PredictorDep = Annotated[Predictor, Depends(get_predictor)]
RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
StoreDep = Annotated[ModelStore, Depends(get_store)]
LifecycleDep = Annotated[Lifecycle, Depends(get_lifecycle)]


class LeanRoute(APIRoute):
    """An APIRoute for the hot path: same OpenAPI entry, but no per-request dependency solving.

    FastAPI's generic resolver costs about a fifth of a small predict request's CPU. This
    handler calls the endpoint directly, which is exact for the endpoints it accepts: path
    parameters typed `str`, a `Request` parameter, and the dependencies listed in `_LEAN`
    (including the router-level API key check). Anything else is refused when the route is
    built.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        dependant = _effective_dependant(self)
        endpoint, request_name = dependant.call, dependant.request_param_name
        _check_lean(self.path, dependant)
        assert endpoint is not None and request_name is not None
        resolvers = [(dep.name, _LEAN[dep.call]) for dep in dependant.dependencies]
        path_names = [param.name for param in dependant.path_params]

        async def handle(request: Request) -> Response:
            values: dict[str, Any] = {}
            for name, resolve in resolvers:
                value = await resolve(request)
                if name is not None:  # a router-level check has no parameter name
                    values[name] = value
            values[request_name] = request
            for name in path_names:
                values[name] = request.path_params[name]
            response: Response = await endpoint(**values)
            return response

        return handle


def _check_lean(path: str, dependant: Dependant) -> None:
    problems = [
        *(f"query/header/cookie/body parameter {p.name}" for p in _non_path_params(dependant)),
        *(
            f"path parameter {p.name} is not str"
            for p in dependant.path_params
            if p.field_info.annotation is not str
        ),
        *(
            f"dependency {dep.name} is not an async function of the request"
            for dep in dependant.dependencies
            if dep.call not in _LEAN
        ),
    ]
    if dependant.request_param_name is None:
        problems.append("no Request parameter")
    if problems:
        raise TypeError(f"LeanRoute {path} cannot take: {'; '.join(problems)}")


def _non_path_params(dependant: Dependant) -> list[Any]:
    return [
        *dependant.query_params,
        *dependant.header_params,
        *dependant.cookie_params,
        *dependant.body_params,
    ]


def _effective_dependant(route: APIRoute) -> Dependant:
    """The dependant FastAPI itself would use: with `include_router(dependencies=...)` (the API
    key check) that is the inclusion's, not the route's own. FastAPI passes it in a context
    variable; without that variable this FastAPI is one LeanRoute does not know, and it
    refuses rather than risk skipping a router-level check.
    """
    context_var = getattr(fastapi_routing, "_effective_route_context_var", None)
    if context_var is None:
        raise TypeError("LeanRoute: this FastAPI version hides router-level dependencies")
    effective = context_var.get()
    if effective is not None and effective.original_route is route:
        dependant: Dependant = effective.dependant
        return dependant
    return route.dependant


async def _api_key_checked(request: Request) -> None:
    check_api_key(request, None)  # its bearer-scheme sub-dependency only documents OpenAPI


# Dependencies LeanRoute can resolve, each as an async function of the request alone.
_LEAN: dict[object, Callable[[Request], Coroutine[Any, Any, Any]]] = {
    get_settings_dep: get_settings_dep,
    get_predictor: get_predictor,
    get_registry: get_registry,
    get_store: get_store,
    get_lifecycle: get_lifecycle,
    check_api_key: _api_key_checked,
}
