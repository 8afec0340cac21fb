"""Test helpers for the gRPC service: the real app with its gRPC server, typed requests."""

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx
import numpy as np
import numpy.typing as npt
from asgi_lifespan import LifespanManager
from grpc import aio
from grpc_health.v1 import health_pb2

from serving.api.app import create_app
from serving.core.settings import Settings
from serving.grpcapi.protocol import open_inference_pb2 as pb
from serving.grpcapi.protocol.open_inference_pb2_grpc import GRPCInferenceServiceStub
from tests.processes import free_port

if TYPE_CHECKING:  # the stub's asyncio type exists in the generated .pyi only
    from serving.grpcapi.protocol.open_inference_pb2_grpc import GRPCInferenceServiceAsyncStub

Metadata = Sequence[tuple[str, str]]


@dataclass
class GrpcApp:
    """The app through its lifespan: an HTTP client wired to it and its gRPC address."""

    http: httpx.AsyncClient
    target: str  # host:port of the worker's gRPC server
    channel: aio.Channel
    stub: "GRPCInferenceServiceAsyncStub"


GrpcAppFactory = Callable[[Settings], AbstractAsyncContextManager[GrpcApp]]


@asynccontextmanager
async def running_grpc_app(settings: Settings) -> AsyncIterator[GrpcApp]:
    app = create_app(settings)
    async with LifespanManager(app, startup_timeout=60) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        target = f"127.0.0.1:{app.state.grpc_port}"
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://test") as http,
            aio.insecure_channel(target) as channel,
        ):
            yield GrpcApp(http, target, channel, GRPCInferenceServiceStub(channel))


def grpc_settings(settings_for: Callable[..., Settings], **overrides: object) -> Settings:
    """Test settings with gRPC on a free loopback port."""
    return settings_for(grpc_port=free_port(), host="127.0.0.1", **overrides)


def typed_request(
    model: str, rows: npt.NDArray[np.float64], *, version: str = "", request_id: str = ""
) -> pb.ModelInferRequest:
    """One FP64 matrix input in `contents` (tritonclient always sends raw contents)."""
    request = pb.ModelInferRequest(model_name=model, model_version=version, id=request_id)
    tensor = request.inputs.add(name="input", datatype="FP64", shape=list(rows.shape))
    tensor.contents.fp64_contents.extend(rows.ravel().tolist())
    return request


def raw_request(model: str, rows: npt.NDArray[np.float64]) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name=model)
    request.inputs.add(name="input", datatype="FP64", shape=list(rows.shape))
    request.raw_input_contents.append(rows.astype("<f8").tobytes())
    return request


def typed_outputs(response: pb.ModelInferResponse) -> dict[str, npt.NDArray[np.generic]]:
    """Each output's typed contents, shaped."""
    arrays: dict[str, npt.NDArray[np.generic]] = {}
    for output in response.outputs:
        field = {"FP64": "fp64_contents", "INT64": "int64_contents", "BYTES": "bytes_contents"}
        values = list(getattr(output.contents, field[output.datatype]))
        arrays[output.name] = np.array(values).reshape(tuple(output.shape))
    return arrays


async def health_check(channel: aio.Channel, service: str) -> health_pb2.HealthCheckResponse:
    """grpc.health.v1.Health/Check (its typing stubs leave the stub's methods out)."""
    check = channel.unary_unary(
        "/grpc.health.v1.Health/Check",
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )
    answer: health_pb2.HealthCheckResponse = await check(
        health_pb2.HealthCheckRequest(service=service)
    )
    return answer
