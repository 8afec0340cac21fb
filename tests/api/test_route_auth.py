"""Every route of the app, walked from app.routes: with SERVING_API_KEYS set, each one that is not
a probe, /metrics or the docs refuses an anonymous caller (management routes too: they need
the admin token). A route added later is covered without editing this file.
"""

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from starlette.routing import Mount

from serving.api.app import create_app
from serving.api.routes.lean import LeanRoute
from tests.conftest import SettingsFactory
from tests.uploads import ADMIN_TOKEN

API_KEY = "api-key-for-route-walk"
OPEN_PATHS = frozenset(
    {
        "/health/live", "/health/ready", "/v2/health/live", "/v2/health/ready", "/metrics",
        "/", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json",
    }
)  # fmt: skip
_PATH_VALUES = {"name": "iris", "version": "1", "alias": "production"}
_PARAMETER = re.compile(r"{(\w+)(?::\w+)?}")


def _operations(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path template) of every route, included routers' routes among them."""
    operations = []
    for route in iter_route_contexts(app.routes):
        if isinstance(route.original_route, Mount):  # the docs' static assets
            continue
        operations += [(method, str(route.path)) for method in sorted(route.methods or [])]
    return operations


def _concrete(path: str) -> str:
    return _PARAMETER.sub(lambda match: _PATH_VALUES[match.group(1)], path)


@pytest.fixture
async def keyed_app(
    settings_for: SettingsFactory,
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(settings_for(api_keys=[API_KEY], admin_tokens=[ADMIN_TOKEN]))
    async with LifespanManager(app, startup_timeout=60) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield app, client


async def test_every_route_but_probes_metrics_and_docs_refuses_an_anonymous_call(
    keyed_app: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    app, client = keyed_app
    operations = _operations(app)
    guarded = [(method, path) for method, path in operations if path not in OPEN_PATHS]

    answers = {
        (method, path): await client.request(method, _concrete(path)) for method, path in guarded
    }

    # The walk found the routes it must: predictions, reads, management and /v2 among them.
    paths = {path for _, path in guarded}
    assert {"/predict", "/models", "/models/{name}/versions", "/v2/models/{name}/infer"} <= paths
    assert len(guarded) >= 20
    refused = {
        operation: (answer.status_code, answer.headers.get("www-authenticate"))
        for operation, answer in answers.items()
    }
    assert all(outcome == (401, "Bearer") for outcome in refused.values()), refused


async def test_the_admin_token_passes_every_guard_the_walk_found(
    keyed_app: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    """The 401s above came from the key check: with a token the same calls get past it."""
    app, client = keyed_app
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    guarded = [(m, p) for m, p in _operations(app) if p not in OPEN_PATHS and m != "DELETE"]

    statuses = {
        (method, path): (await client.request(method, _concrete(path), headers=headers)).status_code
        for method, path in guarded
    }

    assert not [operation for operation, status in statuses.items() if status in (401, 403)]


async def test_open_paths_answer_without_credentials(
    keyed_app: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    app, client = keyed_app
    open_gets = sorted({p for m, p in _operations(app) if p in OPEN_PATHS and m == "GET"})

    statuses = {path: (await client.get(path)).status_code for path in open_gets}

    assert len(open_gets) == len(OPEN_PATHS)
    assert all(status in (200, 307) for status in statuses.values()), statuses


def test_lean_routes_carry_no_dependency_they_would_skip(settings_for: SettingsFactory) -> None:
    """LeanRoute calls its endpoint directly; a dependency added around it would never run."""
    app = create_app(settings_for())
    lean = [r for r in iter_route_contexts(app.routes) if isinstance(r.original_route, LeanRoute)]

    assert len(lean) == 3
    assert all(route.dependant.dependencies == [] for route in lean)
