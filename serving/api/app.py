"""create_app(settings): wires the lifespan, middleware, error handlers, routers and /metrics."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry
from starlette.responses import RedirectResponse, Response

from serving.api.admission import AdmissionControl
from serving.api.deps import ApiKeyRequired
from serving.api.error_handlers import EXCEPTION_HANDLERS
from serving.api.grpc_hook import grpc_server
from serving.api.http_metrics import instrument_http
from serving.api.middleware import GZipIfAccepted, RequestContextMiddleware
from serving.api.observability import Observability
from serving.api.openapi import install_model_examples
from serving.api.routes import health, management, models, predict, traffic, v2
from serving.cache.base import NullCache, PredictionCache
from serving.cache.memory import InProcessCache
from serving.cache.redis_cache import RedisCache
from serving.core.logging import configure_logging
from serving.core.metrics import ServingMetrics, exposition
from serving.core.settings import Settings, get_settings
from serving.dataplane.batching import build_scorer
from serving.dataplane.predictor import Predictor
from serving.dataplane.shadow import ShadowCopier, ShadowMetrics
from serving.registry.management import ModelManagement
from serving.registry.notify import ChangeNotifier, listen_forever
from serving.registry.poller import RefreshWakeup, follow_registry
from serving.registry.registry import ModelRegistry
from serving.repository.signing import trusted_keys_from
from serving.repository.store import ModelStore

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level)
    metrics = ServingMetrics(CollectorRegistry())
    shadow_metrics = ShadowMetrics(metrics.registry)
    observability = Observability.build(settings, metrics.registry)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        keys = trusted_keys_from(settings)
        store = ModelStore(settings.model_dir, keys, settings.runtime)
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
        scorer = build_scorer(settings, metrics)
        shadow = ShadowCopier(registry, scorer, shadow_metrics, settings.shadow_sample)
        log.info("started", extra={"models": sorted(registry.models), "trusted_keys": len(keys)})
        async with anyio.create_task_group() as tasks, observability.running(tasks):
            drift = observability.drift  # set once running: the counts files are the worker's
            app.state.predictor = Predictor(registry, cache, scorer, metrics, shadow, drift)
            tasks.start_soon(follow_registry, registry, wakeup, settings.poll_interval_seconds)
            tasks.start_soon(shadow.run)
            if settings.redis_url:
                tasks.start_soon(listen_forever, settings.redis_url, wakeup.wake)
            try:
                async with grpc_server(
                    settings,
                    registry,
                    store,
                    app.state.predictor,
                    metrics.registry,
                    observability.tracing,
                ) as port:
                    app.state.grpc_port = port
                    yield
            finally:
                tasks.cancel_scope.cancel()
                await notifier.aclose()
                await cache.aclose()
                scorer.close()

    app = FastAPIOffline(
        title="serving",
        summary="Versioned scikit-learn models over HTTP",
        lifespan=lifespan,
        exception_handlers=EXCEPTION_HANDLERS,
    )
    app.state.metrics = metrics
    app.include_router(health.router)
    predict.add_routes(app)
    app.include_router(models.router, dependencies=[ApiKeyRequired])
    app.include_router(management.router)
    app.include_router(traffic.router)
    app.include_router(v2.router)
    _add_metrics_route(app, metrics, observability)
    _add_root_redirect(app)
    install_model_examples(app)
    _add_middleware(app, settings, metrics, observability)
    instrument_http(app, metrics.registry)  # outermost: it also sees 413s from the middleware
    return app


def _add_metrics_route(app: FastAPI, metrics: ServingMetrics, observed: Observability) -> None:
    render = exposition(metrics.registry, observed.drift_collector)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return Response(await anyio.to_thread.run_sync(render), media_type=CONTENT_TYPE_LATEST)


def _add_root_redirect(app: FastAPI) -> None:
    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        """A person who opens the server's address in a browser lands on the API's docs."""
        return RedirectResponse(app.docs_url or "/docs")


def _build_cache(settings: Settings, metrics: ServingMetrics) -> PredictionCache:
    if settings.redis_url is not None:
        return RedisCache.from_url(settings.redis_url, settings.cache_ttl_seconds, metrics)
    if settings.cache_max_entries == 0:
        return NullCache()
    return InProcessCache(
        settings.cache_max_entries, settings.cache_max_bytes, settings.cache_ttl_seconds
    )


def _add_middleware(
    app: FastAPI, settings: Settings, metrics: ServingMetrics, observed: Observability
) -> None:
    """Added innermost first: request context ends up outermost, so it sees every answer.

    Admission sits inside CORS and the request context, so a 503 or 504 carries their
    headers and is logged, and outside everything that costs more per request.
    """
    app.add_middleware(GZipIfAccepted, minimum_size=1024, compresslevel=6)
    app.add_middleware(
        AdmissionControl,
        max_inflight=settings.max_inflight,
        timeout_seconds=settings.request_timeout_seconds,
        metrics=metrics,
    )
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
