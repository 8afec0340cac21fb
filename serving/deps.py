"""Typed dependencies: the only reader of app.state.

Async on purpose: FastAPI runs a plain `def` dependency in the thread pool, a thread hop
per dependency per request for what is an attribute read.
"""

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.responses import Response

from serving.predictor import Predictor
from serving.registry import ModelRegistry
from serving.settings import Settings
from serving.store import ModelStore


async def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings  # annotated: app.state is Any
    return settings


async def get_predictor(request: Request) -> Predictor:
    predictor: Predictor = request.app.state.predictor
    return predictor


async def get_registry(request: Request) -> ModelRegistry:
    registry: ModelRegistry = request.app.state.registry
    return registry


async def get_store(request: Request) -> ModelStore:
    store: ModelStore = request.app.state.store
    return store


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
PredictorDep = Annotated[Predictor, Depends(get_predictor)]
RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
StoreDep = Annotated[ModelStore, Depends(get_store)]


class LeanRoute(APIRoute):
    """An APIRoute for the hot path: same OpenAPI entry, but no per-request dependency solving.

    FastAPI's generic resolver costs about a fifth of a small predict request's CPU. This
    handler calls the endpoint directly, which is exact for the endpoints it accepts: path
    parameters typed `str`, a `Request` parameter, and dependencies that are async functions
    of the request alone (the ones above). Anything else is refused when the route is built.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        dependant = self.dependant
        endpoint, request_name = dependant.call, dependant.request_param_name
        _check_lean(self.path, dependant)
        assert endpoint is not None and request_name is not None
        resolvers = [(str(dep.name), _request_only(dep.call)) for dep in dependant.dependencies]
        path_names = [param.name for param in dependant.path_params]

        async def handle(request: Request) -> Response:
            values: dict[str, Any] = {name: await call(request) for name, call in resolvers}
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
            if dep.call not in _REQUEST_ONLY_DEPENDENCIES
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


_REQUEST_ONLY_DEPENDENCIES: frozenset[object] = frozenset(
    {get_settings_dep, get_predictor, get_registry, get_store}
)


def _request_only(call: object) -> Callable[[Request], Coroutine[Any, Any, Any]]:
    assert call in _REQUEST_ONLY_DEPENDENCIES  # checked by _check_lean first
    return call  # type: ignore[return-value]
