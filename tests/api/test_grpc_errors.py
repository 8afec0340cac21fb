"""gRPC status codes: every error path of the service, and the credentials it asks for."""

from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import numpy as np
import pytest
from grpc import aio

from serving.dataplane.predictor import Predictor
from serving.grpcapi.protocol import open_inference_pb2 as pb
from tests.conftest import SettingsFactory
from tests.grpc_helpers import GrpcApp, grpc_settings, raw_request, running_grpc_app, typed_request

ROWS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])
API_KEY, ADMIN_TOKEN = "grpc-key", "grpc-admin"


@pytest.fixture
async def served(settings_for: SettingsFactory) -> AsyncIterator[GrpcApp]:
    settings = grpc_settings(settings_for, max_rows=100, max_body_bytes=64 * 1024)
    async with running_grpc_app(settings) as app:
        yield app


@pytest.fixture
async def guarded(settings_for: SettingsFactory) -> AsyncIterator[GrpcApp]:
    settings = grpc_settings(settings_for, api_keys=[API_KEY], admin_tokens=[ADMIN_TOKEN])
    async with running_grpc_app(settings) as app:
        yield app


async def _code(call: Awaitable[object]) -> grpc.StatusCode:
    """The status a call ends with; its message must say something."""
    try:
        await call
    except aio.AioRpcError as error:
        assert error.details(), error
        return error.code()
    return grpc.StatusCode.OK


def _bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


def _edited(edit: Callable[[pb.ModelInferRequest], object]) -> pb.ModelInferRequest:
    request = typed_request("iris", ROWS)
    edit(request)
    return request


BAD_TENSORS: dict[str, pb.ModelInferRequest] = {
    "no inputs": pb.ModelInferRequest(model_name="iris"),
    "three features": typed_request("iris", ROWS[:, :3]),
    "unknown datatype": _edited(lambda r: setattr(r.inputs[0], "datatype", "FP128")),
    "count differs from shape": _edited(lambda r: r.inputs[0].shape.__setitem__(0, 3)),
    "negative shape": _edited(lambda r: r.inputs[0].shape.__setitem__(0, -2)),
    "FP16 typed": _edited(lambda r: setattr(r.inputs[0], "datatype", "FP16")),
    "raw and typed": _edited(lambda r: r.raw_input_contents.append(ROWS.tobytes())),
    "unknown output": _edited(lambda r: r.outputs.add(name="decision_function")),
    "repeated output": _edited(lambda r: [r.outputs.add(name="predict") for _ in range(2)]),
    "non-bool binary_data_output": _edited(
        lambda r: setattr(r.parameters["binary_data_output"], "int64_param", 1)
    ),
    "bad version": typed_request("iris", ROWS, version="-1"),
    "NaN": typed_request("iris", np.array([[np.nan, 1.0, 1.0, 1.0]])),
    "too many rows": typed_request("iris", np.ones((101, 4))),
    "no rows": typed_request("iris", np.ones((0, 4))),
}


@pytest.mark.parametrize("case", BAD_TENSORS)
async def test_bad_tensors_are_invalid_argument(served: GrpcApp, case: str) -> None:
    assert (
        await _code(served.stub.ModelInfer(BAD_TENSORS[case])) == grpc.StatusCode.INVALID_ARGUMENT
    )


async def test_raw_contents_must_match_inputs(served: GrpcApp) -> None:
    short = raw_request("iris", ROWS)
    short.raw_input_contents[0] = ROWS.tobytes()[:-8]
    extra = raw_request("iris", ROWS)
    extra.raw_input_contents.append(b"")

    assert await _code(served.stub.ModelInfer(short)) == grpc.StatusCode.INVALID_ARGUMENT
    assert await _code(served.stub.ModelInfer(extra)) == grpc.StatusCode.INVALID_ARGUMENT


async def test_int8_contents_out_of_range(served: GrpcApp) -> None:
    request = pb.ModelInferRequest(model_name="iris")
    tensor = request.inputs.add(name="input", datatype="INT8", shape=[1, 4])
    tensor.contents.int_contents.extend([1, 2, 3, 300])

    assert await _code(served.stub.ModelInfer(request)) == grpc.StatusCode.INVALID_ARGUMENT


async def test_unknown_model_and_version_are_not_found(served: GrpcApp) -> None:
    stub = served.stub
    codes = [
        await _code(stub.ModelInfer(typed_request("nope", ROWS))),
        await _code(stub.ModelInfer(typed_request("iris", ROWS, version="9"))),
        await _code(stub.ModelInfer(typed_request("iris", ROWS, version="canary"))),
        await _code(stub.ModelMetadata(pb.ModelMetadataRequest(name="nope"))),
        await _code(stub.ModelMetadata(pb.ModelMetadataRequest(name="iris", version="9"))),
        await _code(stub.ModelReady(pb.ModelReadyRequest(name="nope"))),
    ]
    assert codes == [grpc.StatusCode.NOT_FOUND] * len(codes)


async def test_message_over_max_body_bytes_is_resource_exhausted(served: GrpcApp) -> None:
    big = typed_request("iris", np.ones((2_100, 4)))  # 8 bytes a value: over 64 KiB

    assert big.ByteSize() > 64 * 1024
    assert await _code(served.stub.ModelInfer(big)) == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_client_deadline_is_deadline_exceeded(served: GrpcApp) -> None:
    rows = np.random.default_rng(3).normal(size=(100, 4))
    call = served.stub.ModelInfer(typed_request("iris", rows), timeout=0.000_001)

    assert await _code(call) == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_unloaded_model_is_unavailable_until_loaded(settings_for: SettingsFactory) -> None:
    settings = grpc_settings(settings_for, admin_tokens=[ADMIN_TOKEN])
    async with running_grpc_app(settings) as app:
        stub, admin = app.stub, _bearer(ADMIN_TOKEN)
        await stub.RepositoryModelUnload(
            pb.RepositoryModelUnloadRequest(model_name="iris"), metadata=admin
        )
        unloaded = await _code(stub.ModelInfer(typed_request("iris", ROWS)))
        ready_after_unload = await stub.ModelReady(pb.ModelReadyRequest(name="iris"))
        index = await stub.RepositoryIndex(pb.RepositoryIndexRequest(), metadata=admin)
        await stub.RepositoryModelLoad(
            pb.RepositoryModelLoadRequest(model_name="iris"), metadata=admin
        )
        loaded = await _code(stub.ModelInfer(typed_request("iris", ROWS)))
        only_ready = await stub.RepositoryIndex(
            pb.RepositoryIndexRequest(ready=True), metadata=admin
        )

    assert unloaded == grpc.StatusCode.UNAVAILABLE and loaded == grpc.StatusCode.OK
    assert not ready_after_unload.ready
    states = {model.name: (model.state, model.reason) for model in index.models}
    assert states["iris"] == ("UNAVAILABLE", "unloaded")
    assert states["diabetes"] == ("READY", "")
    assert {model.name for model in only_ready.models} == {"iris", "breast_cancer", "diabetes"}


async def test_repository_load_refuses_config(settings_for: SettingsFactory) -> None:
    settings = grpc_settings(settings_for, admin_tokens=[ADMIN_TOKEN])
    async with running_grpc_app(settings) as app:
        request = pb.RepositoryModelLoadRequest(model_name="iris")
        request.parameters["config"].string_param = "{}"
        unknown = pb.RepositoryModelLoadRequest(model_name="nope")
        codes = [
            await _code(app.stub.RepositoryModelLoad(request, metadata=_bearer(ADMIN_TOKEN))),
            await _code(app.stub.RepositoryModelLoad(unknown, metadata=_bearer(ADMIN_TOKEN))),
        ]

    assert codes == [grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND]


async def test_unexpected_error_is_internal_and_logged(
    settings_for: SettingsFactory, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken_score(*args: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(Predictor, "score", broken_score)
    async with running_grpc_app(grpc_settings(settings_for)) as app:
        with pytest.raises(aio.AioRpcError) as failed:
            await app.stub.ModelInfer(typed_request("iris", ROWS))

    assert failed.value.code() == grpc.StatusCode.INTERNAL
    assert failed.value.details() == "internal error; see the server log"
    assert any(r.exc_info and "a bug" in str(r.exc_info[1]) for r in caplog.records)


# --- credentials -------------------------------------------------------------------------------
async def test_api_keys_guard_model_rpcs(guarded: GrpcApp) -> None:
    stub, infer = guarded.stub, typed_request("iris", ROWS)
    metadata = pb.ModelMetadataRequest(name="iris")

    assert await _code(stub.ModelInfer(infer)) == grpc.StatusCode.UNAUTHENTICATED
    assert await _code(stub.ModelInfer(infer, metadata=_bearer("wrong"))) == (
        grpc.StatusCode.UNAUTHENTICATED
    )
    assert await _code(stub.ModelMetadata(metadata)) == grpc.StatusCode.UNAUTHENTICATED
    assert await _code(stub.ModelReady(pb.ModelReadyRequest(name="iris"))) == (
        grpc.StatusCode.UNAUTHENTICATED
    )
    assert await _code(stub.ModelInfer(infer, metadata=_bearer(API_KEY))) == grpc.StatusCode.OK
    assert await _code(stub.ModelInfer(infer, metadata=_bearer(ADMIN_TOKEN))) == (
        grpc.StatusCode.OK
    )


async def test_health_and_server_rpcs_need_no_key(guarded: GrpcApp) -> None:
    stub = guarded.stub

    assert (await stub.ServerLive(pb.ServerLiveRequest())).live
    assert (await stub.ServerReady(pb.ServerReadyRequest())).ready
    assert (await stub.ServerMetadata(pb.ServerMetadataRequest())).name == "serving"


async def test_repository_rpcs_need_the_admin_token(guarded: GrpcApp) -> None:
    index = guarded.stub.RepositoryIndex
    request = pb.RepositoryIndexRequest()

    assert await _code(index(request)) == grpc.StatusCode.UNAUTHENTICATED
    assert await _code(index(request, metadata=_bearer(API_KEY))) == (
        grpc.StatusCode.UNAUTHENTICATED
    )
    assert await _code(index(request, metadata=_bearer(ADMIN_TOKEN))) == grpc.StatusCode.OK


async def test_repository_rpcs_are_off_without_admin_tokens(served: GrpcApp) -> None:
    unload = pb.RepositoryModelUnloadRequest(model_name="iris")

    code = await _code(served.stub.RepositoryModelUnload(unload, metadata=_bearer("any")))

    assert code == grpc.StatusCode.PERMISSION_DENIED
