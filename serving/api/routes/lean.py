"""LeanRoute: the predict routes' APIRoute, without FastAPI's per-request dependency solving."""

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.responses import Response


class LeanRoute(APIRoute):
    """An APIRoute for the hot path: same OpenAPI entry, no per-request dependency solving.

    FastAPI's generic resolver costs about a fifth of a small predict request's CPU. This
    handler calls the endpoint with the request and its `str` path parameters, nothing else,
    so an endpoint does its own checks (the API key) in its body, where they cannot be
    skipped. An endpoint that declares anything more (a dependency, a query, header or body
    parameter, a path parameter of another type) is refused when the route is built, so
    nothing it declares is silently left out.

    Add a LeanRoute with `app.router.add_api_route(..., route_class_override=LeanRoute)`, not
    through `include_router(dependencies=...)`: dependencies of an inclusion never reach the
    route's own dependant, so this class could not see them to refuse them.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        _check_lean(self.path, self.dependant)
        endpoint, request_name = self.endpoint, self.dependant.request_param_name
        assert request_name is not None  # _check_lean refused the route otherwise
        path_names = [param.name for param in self.dependant.path_params]

        async def handle(request: Request) -> Response:
            values = {name: request.path_params[name] for name in path_names}
            values[request_name] = request
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
        *(f"dependency {dep.call!r}" for dep in dependant.dependencies),
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
