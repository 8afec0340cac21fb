"""LeanRoute: the predict routes' APIRoute, without FastAPI's per-request dependency solving."""

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request
from fastapi import routing as fastapi_routing
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.responses import Response

from serving.api.deps import (
    check_api_key,
    get_management,
    get_predictor,
    get_registry,
    get_settings_dep,
    get_store,
)


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
    get_management: get_management,
    check_api_key: _api_key_checked,
}
