"""create_app(settings): wires the lifespan, middleware, error handlers, routers and /metrics."""

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from serving.api.deps import ApiKeyRequired
from serving.api.http_metrics import instrument_http
from serving.api.middleware import GZipIfAccepted, RequestContextMiddleware
from serving.api.observability import Observability
from serving.api.openapi import install_model_examples
from serving.api.responses import JSONBytes
from serving.api.routes import health, management, models, predict, v2
from serving.cache.base import NullCache, PredictionCache
from serving.cache.memory import InProcessCache
from serving.cache.redis_cache import RedisCache
from serving.core.errors import (
    MalformedRequestError,
    MethodNotAllowedError,
    RouteNotFoundError,
    ServingError,
)
from serving.core.logging import configure_logging
from serving.core.metrics import ServingMetrics, exposition
from serving.core.settings import Settings, get_settings
from serving.dataplane.batching import build_scorer
from serving.dataplane.predictor import Predictor
from serving.registry.management import ModelManagement
from serving.registry.notify import ChangeNotifier, listen_forever
from serving.registry.poller import RefreshWakeup, follow_registry
from serving.registry.registry import ModelRegistry
from serving.repository.signing import trusted_keys_from
from serving.repository.store import ModelStore
from serving.v2.errors import is_protocol_path, protocol_error, protocol_status

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level)
    metrics = ServingMetrics(CollectorRegistry())
    observability = Observability.build(settings, metrics.registry)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        keys = trusted_keys_from(settings)
        store = ModelStore(settings.model_dir, keys)
        registry = ModelRegistry(
            store,
            settings.max_extra_versions,
            observer=metrics,
            unload_idle_seconds=settings.unload_idle_seconds,
        )
        await registry.refresh()
        cache = _build_cache(settings, metrics)
        wakeup = RefreshWakeup()
        notifier = ChangeNotifier(wakeup.wake, settings.redis_url)
        app.state.settings, app.state.store, app.state.registry = settings, store, registry
        app.state.management = ModelManagement(store, notifier)
        log.info("started", extra={"models": sorted(registry.models), "trusted_keys": len(keys)})
        async with anyio.create_task_group() as tasks, observability.running(tasks):
            scorer = build_scorer(settings, metrics)
            app.state.predictor = Predictor(registry, cache, scorer, metrics, observability.drift)
            tasks.start_soon(follow_registry, registry, wakeup, settings.poll_interval_seconds)
            if settings.redis_url:
                tasks.start_soon(listen_forever, settings.redis_url, wakeup.wake)
            try:
                yield
            finally:
                tasks.cancel_scope.cancel()
                await notifier.aclose()
                await cache.aclose()

    app = FastAPIOffline(
        title="serving",
        summary="Versioned scikit-learn models over HTTP",
        lifespan=lifespan,
        exception_handlers=_EXCEPTION_HANDLERS,
    )
    app.include_router(health.router)
    app.include_router(predict.router, dependencies=[ApiKeyRequired])
    app.include_router(models.router, dependencies=[ApiKeyRequired])
    app.include_router(management.router)
    app.include_router(v2.router)
    _add_metrics_route(app, metrics, observability)
    install_model_examples(app)
    _add_middleware(app, settings, observability)
    instrument_http(app, metrics.registry)  # outermost: it also sees 413s from the middleware
    return app


def _add_metrics_route(app: FastAPI, metrics: ServingMetrics, observed: Observability) -> None:
    render = exposition(metrics.registry, observed.drift_collector)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return Response(await anyio.to_thread.run_sync(render), media_type=CONTENT_TYPE_LATEST)


def _build_cache(settings: Settings, metrics: ServingMetrics) -> PredictionCache:
    if settings.redis_url is not None:
        return RedisCache.from_url(settings.redis_url, settings.cache_ttl_seconds, metrics)
    if settings.cache_max_entries == 0:
        return NullCache()
    return InProcessCache(
        settings.cache_max_entries, settings.cache_max_bytes, settings.cache_ttl_seconds
    )


def _add_middleware(app: FastAPI, settings: Settings, observed: Observability) -> None:
    """Added innermost first: request context ends up outermost, so it sees every answer."""
    app.add_middleware(GZipIfAccepted, minimum_size=1024, compresslevel=6)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "X-Cache"],
        )
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=settings.max_body_bytes,
        max_upload_bytes=settings.max_upload_bytes,
        tracing=observed.tracing,
        payload_log=observed.payload_log,
    )


def _error(
    request: Request, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    if is_protocol_path(request.url.path):  # Open Inference Protocol clients read another shape
        return JSONBytes(protocol_error(message), protocol_status(status), headers)
    return JSONBytes({"error": {"code": code, "message": message}}, status, headers)


async def _serving_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServingError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
    return _error(request, exc.status_code, exc.code, str(exc), headers)


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
        return _error(request, 405, MethodNotAllowedError.code, message)
    return _error(request, exc.status_code, "http_error", str(exc.detail), exc.headers)


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error", exc_info=exc)
    return _error(request, 500, "internal_error", "internal error; see the server log")


_EXCEPTION_HANDLERS: dict[Any, Any] = {
    ServingError: _serving_error,
    RequestValidationError: _validation_error,
    StarletteHTTPException: _http_error,
    Exception: _unexpected_error,
}
