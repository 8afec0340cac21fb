"""The gRPC server of one worker: grpc.aio on the worker's own event loop, beside HTTP.

Every worker binds SERVING_GRPC_PORT with SO_REUSEPORT, so the kernel spreads incoming
connections over the workers as it does for the HTTP port, and each worker answers with
the registry, cache and metrics its HTTP side uses: a promotion reaches gRPC answers
exactly when it reaches REST ones. A gRPC connection is long-lived and stays with the
worker that accepted it, so a client spreads its load over workers by opening several.

Also served: grpc.health.v1.Health/Check, SERVING for "" and the inference service while
the registry is ready (as /health/ready), NOT_SERVING before and once shutdown has begun.
Health/Watch is not offered (UNIMPLEMENTED, which gRPC's client-side health checking reads
as "no health checking"): a watch is a stream that never ends, and one open watch would
hold its worker's shutdown for the whole grace period.
"""

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio
import grpc
from grpc import aio
from grpc_health.v1 import health_pb2
from grpc_health.v1.health import aio as health_aio
from prometheus_client import CollectorRegistry

from serving.grpcapi.calls import CallMetrics, Guard
from serving.grpcapi.protocol import open_inference_pb2
from serving.grpcapi.protocol.open_inference_pb2_grpc import (
    add_GRPCInferenceServiceServicer_to_server,
)
from serving.grpcapi.service import DataPlane, InferenceServicer

SERVICE_NAME = open_inference_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name
# Calls one worker holds at once; more are refused with RESOURCE_EXHAUSTED by grpc itself.
MAX_CONCURRENT_CALLS = 1024


@dataclass(frozen=True)
class GrpcOptions:
    host: str
    port: int  # 0: no gRPC server
    max_message_bytes: int  # SERVING_MAX_BODY_BYTES: a request message is a request body
    grace_seconds: float  # in-flight calls get this long to finish on shutdown
    readiness_poll_seconds: float


@contextlib.asynccontextmanager
async def serving_grpc(
    options: GrpcOptions, plane: DataPlane, guard: Guard, registry: CollectorRegistry
) -> AsyncIterator[int | None]:
    """Serve while the block runs; yields the bound port (None when switched off).

    On leaving, new calls are refused and those in flight get `grace_seconds` to finish.
    """
    if options.port == 0:
        yield None
        return
    server = aio.server(
        options=[
            ("grpc.so_reuseport", 1),
            ("grpc.max_receive_message_length", options.max_message_bytes),
        ],
        maximum_concurrent_rpcs=MAX_CONCURRENT_CALLS,
    )
    add_GRPCInferenceServiceServicer_to_server(
        InferenceServicer(plane, guard, CallMetrics(registry)), server
    )
    health = health_aio.HealthServicer()
    server.add_generic_rpc_handlers([_check_only(health)])
    port = server.add_insecure_port(_address(options.host, options.port))
    await server.start()
    try:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(_follow_readiness, health, plane, options.readiness_poll_seconds)
            try:
                yield port
            finally:
                tasks.cancel_scope.cancel()
    finally:
        await health.enter_graceful_shutdown()
        await server.stop(options.grace_seconds)


def _check_only(health: health_aio.HealthServicer) -> grpc.GenericRpcHandler:
    check = grpc.unary_unary_rpc_method_handler(
        health.Check,
        request_deserializer=health_pb2.HealthCheckRequest.FromString,
        response_serializer=health_pb2.HealthCheckResponse.SerializeToString,
    )
    return grpc.method_handlers_generic_handler("grpc.health.v1.Health", {"Check": check})


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def _follow_readiness(
    health: health_aio.HealthServicer, plane: DataPlane, interval: float
) -> None:
    serving = health_pb2.HealthCheckResponse.SERVING
    not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
    while True:
        status = serving if plane.registry.is_ready() else not_serving
        for service in ("", SERVICE_NAME):
            await health.set(service, status)
        await anyio.sleep(interval)
