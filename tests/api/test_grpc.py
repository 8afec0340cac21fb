"""The gRPC Open Inference Protocol on the real app: health, metadata, inference, metrics.

The app runs through its lifespan, which starts the worker's gRPC server on a free port;
requests go over loopback with tritonclient.grpc (the reference client, raw tensors) and
with our own stub where a request needs typed `contents`.
"""

from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as triton
import tritonclient.grpc.aio as triton_aio
from grpc import aio
from grpc_health.v1 import health_pb2

from serving.grpcapi.protocol import open_inference_pb2 as pb
from tests.conftest import DEMO_MODELS, SettingsFactory
from tests.grpc_helpers import (
    GrpcApp,
    grpc_settings,
    health_check,
    raw_request,
    running_grpc_app,
    typed_outputs,
    typed_request,
)
from training.data import load_dataset

CLASSIFIERS = ("iris", "breast_cancer")
SERVICE = "inference.GRPCInferenceService"


@pytest.fixture
async def served(settings_for: SettingsFactory) -> AsyncIterator[GrpcApp]:
    async with running_grpc_app(grpc_settings(settings_for)) as app:
        yield app


@pytest.fixture
async def triton_client(served: GrpcApp) -> AsyncIterator[triton_aio.InferenceServerClient]:
    client = triton_aio.InferenceServerClient(served.target)
    yield client
    await client.close()


async def _predict(app: GrpcApp, name: str, rows: Any) -> dict[str, Any]:
    body = {"instances": rows.tolist(), "probabilities": name in CLASSIFIERS}
    answer = await app.http.post(f"/models/{name}/predict", json=body)
    assert answer.status_code == 200, answer.text
    payload: dict[str, Any] = answer.json()
    return payload


# --- health and metadata ---------------------------------------------------------------------
async def test_server_rpcs(triton_client: triton_aio.InferenceServerClient) -> None:
    metadata = await triton_client.get_server_metadata(as_json=True)

    assert await triton_client.is_server_live()
    assert await triton_client.is_server_ready()
    assert metadata["name"] == "serving"
    assert {"binary_tensor_data", "model_repository"} <= set(metadata["extensions"])


async def test_standard_health_service(served: GrpcApp) -> None:
    overall = await health_check(served.channel, "")
    inference = await health_check(served.channel, SERVICE)
    with pytest.raises(aio.AioRpcError) as unknown:
        await health_check(served.channel, "no.such.Service")

    assert overall.status == health_pb2.HealthCheckResponse.SERVING
    assert inference.status == health_pb2.HealthCheckResponse.SERVING
    assert unknown.value.code().name == "NOT_FOUND"


async def test_health_watch_is_not_offered(served: GrpcApp) -> None:
    """A watch never ends: one would hold the worker's shutdown for the whole grace period."""
    watch = served.channel.unary_stream(
        "/grpc.health.v1.Health/Watch",
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )
    with pytest.raises(aio.AioRpcError) as refused:
        async for _ in watch(health_pb2.HealthCheckRequest(service="")):
            pass

    assert refused.value.code().name == "UNIMPLEMENTED"


async def test_health_is_not_serving_without_models(settings_for: SettingsFactory) -> None:
    settings = grpc_settings(settings_for)
    empty = settings.model_copy(update={"model_dir": settings.model_dir.parent / "empty"})
    empty.model_dir.mkdir()
    async with running_grpc_app(empty) as app:
        answer = await health_check(app.channel, "")
        ready = await app.stub.ServerReady(pb.ServerReadyRequest())

    assert answer.status == health_pb2.HealthCheckResponse.NOT_SERVING
    assert not ready.ready


@pytest.mark.parametrize("name", DEMO_MODELS)
async def test_model_metadata_equals_v2_http(
    served: GrpcApp, triton_client: triton_aio.InferenceServerClient, name: str
) -> None:
    expected = (await served.http.get(f"/v2/models/{name}")).json()

    metadata = await triton_client.get_model_metadata(name, as_json=True)
    pinned = await triton_client.get_model_metadata(name, "1", as_json=True)

    assert metadata == pinned
    assert metadata["name"] == name and metadata["platform"] == "scikit-learn"
    assert metadata["versions"] == expected["versions"]
    for key in ("inputs", "outputs"):
        shapes = [{**t, "shape": [int(n) for n in t["shape"]]} for t in metadata[key]]
        assert shapes == expected[key]
    assert await triton_client.is_model_ready(name)
    assert await triton_client.is_model_ready(name, "1")


# --- inference ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", DEMO_MODELS)
async def test_raw_infer_equals_predict(
    served: GrpcApp, triton_client: triton_aio.InferenceServerClient, name: str
) -> None:
    rows = load_dataset(name).x_test
    tensor = triton.InferInput("input", list(rows.shape), "FP64")
    tensor.set_data_from_numpy(rows)

    result = await triton_client.infer(name, [tensor], request_id="r1")
    expected = await _predict(served, name, rows)

    response = result.get_response()
    assert response.id == "r1" and response.model_version == "1"
    assert len(response.raw_output_contents) == len(response.outputs)
    np.testing.assert_array_equal(result.as_numpy("predict"), expected["predictions"])
    if name in CLASSIFIERS:
        np.testing.assert_array_equal(result.as_numpy("predict_proba"), expected["probabilities"])


@pytest.mark.parametrize("name", DEMO_MODELS)
async def test_typed_infer_equals_predict(served: GrpcApp, name: str) -> None:
    rows = load_dataset(name).x_test

    response = await served.stub.ModelInfer(typed_request(name, rows, request_id="t1"))
    expected = await _predict(served, name, rows)

    outputs = typed_outputs(response)
    assert response.id == "t1" and not response.raw_output_contents
    np.testing.assert_array_equal(outputs["predict"], expected["predictions"])
    if name in CLASSIFIERS:
        np.testing.assert_array_equal(outputs["predict_proba"], expected["probabilities"])


async def test_typed_request_asking_for_binary_gets_raw_outputs(served: GrpcApp) -> None:
    rows = load_dataset("iris").x_test[:3]
    request = typed_request("iris", rows)
    request.parameters["binary_data_output"].bool_param = True
    only_predict = typed_request("iris", rows)
    only_predict.outputs.add(name="predict").parameters["binary_data"].bool_param = True

    everything = await served.stub.ModelInfer(request)
    one = await served.stub.ModelInfer(only_predict)

    assert [output.name for output in everything.outputs] == ["predict", "predict_proba"]
    assert len(everything.raw_output_contents) == 2
    assert [output.name for output in one.outputs] == ["predict"]
    labels = np.frombuffer(one.raw_output_contents[0], dtype="<i8")
    expected = await _predict(served, "iris", rows)
    np.testing.assert_array_equal(labels, expected["predictions"])


async def test_feature_tensors_and_other_datatypes(served: GrpcApp) -> None:
    """One tensor per feature, FP32 and INT32 contents: the same answer as FP64 rows."""
    rows = np.array([[5.0, 3.0, 1.0, 0.0], [7.0, 3.0, 5.0, 2.0]])
    names = load_dataset("iris").feature_names
    request = pb.ModelInferRequest(model_name="iris")
    for index, feature in enumerate(names):
        column = rows[:, index]
        if index % 2:
            tensor = request.inputs.add(name=feature, datatype="FP32", shape=[2])
            tensor.contents.fp32_contents.extend(column.tolist())
        else:
            tensor = request.inputs.add(name=feature, datatype="INT32", shape=[2])
            tensor.contents.int_contents.extend(column.astype(int).tolist())

    answer = typed_outputs(await served.stub.ModelInfer(request))
    expected = typed_outputs(await served.stub.ModelInfer(typed_request("iris", rows)))

    np.testing.assert_array_equal(answer["predict"], expected["predict"])


async def test_grpc_and_rest_share_the_cache_and_the_metrics(served: GrpcApp) -> None:
    rows = np.array([[6.1, 2.8, 4.7, 1.2]])
    await served.stub.ModelInfer(raw_request("iris", rows))

    body = {"instances": rows.tolist(), "probabilities": True}  # both outputs, as gRPC asked
    rest = await served.http.post("/models/iris/predict", json=body)
    scrape = (await served.http.get("/metrics")).text

    assert rest.headers["X-Cache"] == "HIT"  # the gRPC call stored it
    assert 'serving_grpc_requests_total{code="OK",method="ModelInfer"} 1.0' in scrape
    assert 'serving_predictions_total{cache="miss",model="iris",version="1"} 1.0' in scrape
    assert 'serving_predictions_total{cache="hit",model="iris",version="1"} 1.0' in scrape


async def test_port_zero_serves_no_grpc(settings_for: SettingsFactory) -> None:
    async with running_grpc_app(settings_for(grpc_port=0)) as app:
        answer = await app.http.get("/health/ready")
        port = app.target.rsplit(":", 1)[1]

    assert answer.status_code == 200
    assert port == "None"
