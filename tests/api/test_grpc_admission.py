"""gRPC inference calls follow the HTTP admission rules: a bound on calls in flight
(RESOURCE_EXHAUSTED) and the server's deadline (DEADLINE_EXCEEDED); health is never refused."""

from collections.abc import Awaitable, Iterator
from pathlib import Path

import anyio
import grpc
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests import estimators
from tests.conftest import SettingsFactory
from tests.grpc_helpers import grpc_settings, running_grpc_app, typed_request

BOUND_SECONDS = 10.0  # hang guard
HELD_ROW = np.array([[estimators.HOLD, 3.5, 1.4, 0.2]])
IRIS_ROW = np.array([[5.1, 3.5, 1.4, 0.2]])


@pytest.fixture
def marked(registry_dir: Path, signing_key: Ed25519PrivateKey) -> Iterator[None]:
    estimators.publish_marked(registry_dir, signing_key)
    estimators.reset()
    yield
    estimators.GATE.set()  # never leave a scoring thread waiting
    estimators.reset()


async def _code(call: Awaitable[object]) -> grpc.StatusCode:
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def test_a_call_beyond_max_inflight_is_resource_exhausted_and_health_still_answers(
    settings_for: SettingsFactory, marked: None
) -> None:
    settings = grpc_settings(settings_for, max_inflight=1, batching=False)
    async with running_grpc_app(settings) as app, anyio.create_task_group() as tasks:
        codes: list[grpc.StatusCode] = []

        async def held() -> None:
            codes.append(await _code(app.stub.ModelInfer(typed_request("marked", HELD_ROW))))

        tasks.start_soon(held)
        with anyio.fail_after(BOUND_SECONDS):
            await anyio.to_thread.run_sync(estimators.ENTERED.wait, BOUND_SECONDS)
        refused = await _code(app.stub.ModelInfer(typed_request("iris", IRIS_ROW)))
        health = health_pb2_grpc.HealthStub(app.channel)
        checked = await health.Check(  # type: ignore[attr-defined]  # stubs name it at runtime
            health_pb2.HealthCheckRequest(service="")
        )
        estimators.GATE.set()

    assert estimators.ENTERED.is_set()  # the first call really was in flight
    assert refused == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert checked.status == health_pb2.HealthCheckResponse.SERVING
    assert codes == [grpc.StatusCode.OK]  # the admitted call was answered


async def test_a_call_past_the_server_deadline_is_deadline_exceeded(
    settings_for: SettingsFactory, marked: None
) -> None:
    settings = grpc_settings(settings_for, request_timeout_seconds=0.5, batching=False)
    async with running_grpc_app(settings) as app:
        with anyio.fail_after(BOUND_SECONDS):
            late = await _code(app.stub.ModelInfer(typed_request("marked", HELD_ROW)))
        estimators.GATE.set()
        after = await _code(app.stub.ModelInfer(typed_request("iris", IRIS_ROW)))

    assert estimators.ENTERED.is_set()  # it was scoring when the deadline passed
    assert late == grpc.StatusCode.DEADLINE_EXCEEDED
    assert after == grpc.StatusCode.OK  # the bound was given back
