"""The worker's gRPC server, started from the app's lifespan with the API layer's own checks.

API keys and admin tokens are checked by the very functions that guard the HTTP routes
(serving/api/auth.py), applied to the `authorization` metadata of each call.
"""

from contextlib import AbstractAsyncContextManager
from functools import partial

from prometheus_client import CollectorRegistry

from serving.api.auth import require_admin, require_api_key
from serving.core.settings import Settings
from serving.core.tracing import Tracing
from serving.dataplane.predictor import Predictor
from serving.grpcapi.admission import CallAdmission
from serving.grpcapi.calls import Guard
from serving.grpcapi.server import GrpcOptions, serving_grpc
from serving.grpcapi.service import DataPlane
from serving.registry.registry import ModelRegistry
from serving.repository.store import ModelStore


def grpc_server(
    settings: Settings,
    registry: ModelRegistry,
    store: ModelStore,
    predictor: Predictor,
    metrics: CollectorRegistry,
    tracing: Tracing,
) -> AbstractAsyncContextManager[int | None]:
    """Serves gRPC while entered (nothing when SERVING_GRPC_PORT is 0); yields the port."""
    options = GrpcOptions(
        host=settings.host,
        port=settings.grpc_port,
        max_message_bytes=settings.max_body_bytes,
        grace_seconds=settings.graceful_timeout_seconds,
        readiness_poll_seconds=settings.poll_interval_seconds,
    )
    guard = Guard(
        api_key=partial(
            require_api_key, api_keys=settings.api_keys, admin_tokens=settings.admin_tokens
        ),
        admin=partial(require_admin, admin_tokens=settings.admin_tokens),
    )
    admission = CallAdmission(settings.max_inflight, settings.request_timeout_seconds)
    plane = DataPlane(registry, store, predictor, settings.max_rows, admission, tracing)
    return serving_grpc(options, plane, guard, metrics)
