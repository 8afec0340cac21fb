"""The Open Inference Protocol routes over raw HTTP: every route, both body formats, every error."""

import gzip
import struct
from collections.abc import AsyncIterator
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from tests.conftest import DEMO_MODELS, ClientFactory, SettingsFactory
from training.data import load_dataset

IRIS_ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
CLASSIFIERS = ("iris", "breast_cancer")


def _matrix_input(rows: list[list[float]]) -> dict[str, Any]:
    return {"name": "input", "shape": [len(rows), len(rows[0])], "datatype": "FP64", "data": rows}


def _error_message(answer: httpx.Response) -> str:
    payload = answer.json()
    assert set(payload) == {"error"}, payload
    assert isinstance(payload["error"], str) and payload["error"]
    message: str = payload["error"]
    return message


def _outputs(answer: httpx.Response) -> dict[str, dict[str, Any]]:
    return {output["name"]: output for output in answer.json()["outputs"]}


def _binary_body(document: dict[str, Any], *chunks: bytes) -> tuple[bytes, dict[str, str]]:
    header = orjson.dumps(document)
    return header + b"".join(chunks), {"Inference-Header-Content-Length": str(len(header))}


def _split_binary_answer(answer: httpx.Response) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The JSON head and each binary output's bytes, cut out by hand from the body."""
    json_length = int(answer.headers["Inference-Header-Content-Length"])
    head = orjson.loads(answer.content[:json_length])
    tail, offset, chunks = answer.content[json_length:], 0, {}
    for output in head["outputs"]:
        size = output.get("parameters", {}).get("binary_data_size")
        if size is not None:
            chunks[output["name"]] = tail[offset : offset + size]
            offset += size
    assert offset == len(tail)
    return head, chunks


# --- server routes ---------------------------------------------------------------------------
async def test_server_metadata_names_the_extensions(client: httpx.AsyncClient) -> None:
    answer = await client.get("/v2")

    assert answer.status_code == 200
    payload = answer.json()
    assert payload["name"] == "serving"
    assert {"binary_tensor_data", "model_repository"} <= set(payload["extensions"])


async def test_server_live_and_ready(client: httpx.AsyncClient) -> None:
    live = await client.get("/v2/health/live")
    ready = await client.get("/v2/health/ready")

    assert (live.status_code, live.json()) == (200, {"live": True})
    assert (ready.status_code, ready.json()) == (200, {"ready": True})


async def test_server_not_ready_without_models_is_503(
    client_for: ClientFactory, settings_for: SettingsFactory, tmp_path: Any
) -> None:
    async with client_for(settings_for(model_dir=tmp_path / "empty")) as client:
        answer = await client.get("/v2/health/ready")

    assert answer.status_code == 503
    assert "no model" in _error_message(answer)


# --- model metadata and readiness ------------------------------------------------------------
@pytest.mark.parametrize("path", ["/v2/models/iris", "/v2/models/iris/versions/1"])
async def test_model_metadata_from_the_manifest(client: httpx.AsyncClient, path: str) -> None:
    answer = await client.get(path)

    assert answer.status_code == 200
    payload = answer.json()
    assert (payload["name"], payload["versions"]) == ("iris", ["1"])
    assert payload["inputs"] == [{"name": "input", "datatype": "FP64", "shape": [-1, 4]}]
    assert payload["outputs"] == [
        {"name": "predict", "datatype": "INT64", "shape": [-1]},
        {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 3]},
    ]
    assert payload["parameters"]["feature_names"] == load_dataset("iris").feature_names


async def test_regressor_metadata_has_only_predict(client: httpx.AsyncClient) -> None:
    answer = await client.get("/v2/models/diabetes")

    assert answer.json()["outputs"] == [{"name": "predict", "datatype": "FP64", "shape": [-1]}]
    assert answer.json()["inputs"][0]["shape"] == [-1, 10]


@pytest.mark.parametrize("path", ["/v2/models/iris/ready", "/v2/models/iris/versions/1/ready"])
async def test_model_ready(client: httpx.AsyncClient, path: str) -> None:
    answer = await client.get(path)

    assert answer.status_code == 200
    assert answer.json()["ready"] is True


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v2/models/nope"),
        ("GET", "/v2/models/nope/ready"),
        ("GET", "/v2/models/iris/versions/7"),
        ("GET", "/v2/models/iris/versions/7/ready"),
        ("GET", "/v2/models/iris/versions/staging"),
        ("POST", "/v2/models/nope/infer"),
        ("POST", "/v2/models/iris/versions/7/infer"),
        ("GET", "/v2/no/such/route"),
    ],
)
async def test_unknown_model_version_or_route_is_404(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    body = {"inputs": [_matrix_input(IRIS_ROWS)]}

    answer = await client.request(method, path, json=body if method == "POST" else None)

    assert answer.status_code == 404
    _error_message(answer)


async def test_wrong_method_is_405_in_the_protocol_shape(client: httpx.AsyncClient) -> None:
    answer = await client.get("/v2/models/iris/infer")

    assert answer.status_code == 405
    _error_message(answer)


@pytest.mark.parametrize("version", ["-1", "1.5", "Bad Alias"])
async def test_malformed_version_is_400(client: httpx.AsyncClient, version: str) -> None:
    answer = await client.get(f"/v2/models/iris/versions/{version}")

    assert answer.status_code == 400
    assert "version" in _error_message(answer)


# --- infer: equal to /predict --------------------------------------------------------------
@pytest.mark.parametrize("name", DEMO_MODELS)
@pytest.mark.parametrize("versioned", [False, True])
async def test_json_infer_equals_predict_on_the_held_out_split(
    client: httpx.AsyncClient, name: str, versioned: bool
) -> None:
    rows = load_dataset(name).x_test.tolist()
    is_classifier = name in CLASSIFIERS
    path = f"/v2/models/{name}/versions/1/infer" if versioned else f"/v2/models/{name}/infer"
    body = {"inputs": [_matrix_input(rows)]}

    answer = await client.post(path, content=orjson.dumps(body))  # no Content-Type header
    expected = await client.post(
        f"/models/{name}/predict", json={"instances": rows, "probabilities": is_classifier}
    )

    assert answer.status_code == 200, answer.text
    assert (answer.json()["model_name"], answer.json()["model_version"]) == (name, "1")
    outputs = _outputs(answer)
    assert outputs["predict"]["shape"] == [len(rows)]
    assert outputs["predict"]["data"] == expected.json()["predictions"]
    if is_classifier:
        probabilities = expected.json()["probabilities"]
        assert outputs["predict_proba"]["shape"] == [len(rows), len(probabilities[0])]
        assert outputs["predict_proba"]["data"] == [p for row in probabilities for p in row]
    else:
        assert set(outputs) == {"predict"}


async def test_flat_and_nested_data_give_the_same_answer(client: httpx.AsyncClient) -> None:
    flat = {**_matrix_input(IRIS_ROWS), "data": [v for row in IRIS_ROWS for v in row]}

    nested_answer = await client.post(
        "/v2/models/iris/infer", json={"inputs": [_matrix_input(IRIS_ROWS)]}
    )
    flat_answer = await client.post("/v2/models/iris/infer", json={"inputs": [flat]})

    assert flat_answer.json()["outputs"] == nested_answer.json()["outputs"]


async def test_one_tensor_per_feature_equals_one_matrix(client: httpx.AsyncClient) -> None:
    names = load_dataset("iris").feature_names
    columns = list(zip(*IRIS_ROWS, strict=True))
    per_feature = [
        {"name": n, "shape": [2, 1] if i % 2 else [2], "datatype": "FP32", "data": list(c)}
        for i, (n, c) in enumerate(zip(reversed(names), reversed(columns), strict=True))
    ]
    as_float32 = np.asarray(IRIS_ROWS, dtype=np.float32).astype(np.float64).tolist()

    answer = await client.post("/v2/models/iris/infer", json={"inputs": per_feature})
    expected = await client.post(
        "/v2/models/iris/infer", json={"inputs": [_matrix_input(as_float32)]}
    )

    assert answer.status_code == 200, answer.text
    assert answer.json()["outputs"] == expected.json()["outputs"]


@pytest.mark.parametrize(
    "datatype",
    [
        "INT8",
        "INT16",
        "INT32",
        "INT64",
        "UINT8",
        "UINT16",
        "UINT32",
        "UINT64",
        "FP16",
        "FP32",
        "FP64",
    ],
)
async def test_every_numeric_datatype_is_accepted(client: httpx.AsyncClient, datatype: str) -> None:
    rows = [[5, 3, 1, 0], [7, 3, 5, 2]]
    tensor = {"name": "input", "shape": [2, 4], "datatype": datatype, "data": rows}

    answer = await client.post("/v2/models/iris/infer", json={"inputs": [tensor]})
    expected = await client.post("/models/iris/predict", json={"instances": rows})

    assert answer.status_code == 200, answer.text
    assert _outputs(answer)["predict"]["data"] == expected.json()["predictions"]


async def test_requested_outputs_id_and_unknown_parameters(client: httpx.AsyncClient) -> None:
    body = {
        "id": "req-42",
        "parameters": {"priority": 3, "anything": {"nested": True}},
        "inputs": [{**_matrix_input(IRIS_ROWS), "parameters": {"custom": 1}}],
        "outputs": [{"name": "predict_proba"}],
    }

    answer = await client.post("/v2/models/iris/infer", json=body)

    assert answer.status_code == 200, answer.text
    assert answer.json()["id"] == "req-42"
    assert list(_outputs(answer)) == ["predict_proba"]


async def test_only_predict_requested_skips_probabilities(client: httpx.AsyncClient) -> None:
    body = {"inputs": [_matrix_input(IRIS_ROWS)], "outputs": [{"name": "predict"}]}

    answer = await client.post("/v2/models/iris/infer", json=body)
    labels = await client.post("/models/iris/predict", json={"instances": IRIS_ROWS})

    assert list(_outputs(answer)) == ["predict"]
    assert "id" not in answer.json()
    assert labels.headers["X-Cache"] == "HIT"  # the /v2 answer filled the labels-only entry


async def test_v2_and_predict_share_cache_entries(client: httpx.AsyncClient) -> None:
    rows = [[6.1, 2.8, 4.7, 1.2]]

    first = await client.post(
        "/models/iris/predict", json={"instances": rows, "probabilities": True}
    )
    second = await client.post("/v2/models/iris/infer", json={"inputs": [_matrix_input(rows)]})

    assert (first.headers["X-Cache"], second.headers["X-Cache"]) == ("MISS", "HIT")
    assert _outputs(second)["predict_proba"]["data"] == first.json()["probabilities"][0]


# --- binary tensor data extension ------------------------------------------------------------
async def test_binary_request_and_binary_answer_parsed_by_hand(client: httpx.AsyncClient) -> None:
    rows = np.asarray(load_dataset("iris").x_test[:7], dtype="<f4")
    tensor = {"name": "input", "shape": list(rows.shape), "datatype": "FP32"}
    document = {
        "inputs": [{**tensor, "parameters": {"binary_data_size": rows.nbytes}}],
        "parameters": {"binary_data_output": True},
    }
    body, headers = _binary_body(document, rows.tobytes())

    answer = await client.post("/v2/models/iris/infer", content=body, headers=headers)
    expected = await client.post(
        "/models/iris/predict",
        json={"instances": rows.astype(np.float64).tolist(), "probabilities": True},
    )

    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/octet-stream"
    head, chunks = _split_binary_answer(answer)
    outputs = {output["name"]: output for output in head["outputs"]}
    assert outputs["predict"]["shape"] == [7] and "data" not in outputs["predict"]
    labels = np.frombuffer(chunks["predict"], dtype="<i8")
    proba = np.frombuffer(chunks["predict_proba"], dtype="<f8").reshape(7, 3)
    assert labels.tolist() == expected.json()["predictions"]
    assert proba.tolist() == expected.json()["probabilities"]


async def test_binary_output_only_where_asked(client: httpx.AsyncClient) -> None:
    body = {
        "inputs": [_matrix_input(IRIS_ROWS)],
        "outputs": [
            {"name": "predict", "parameters": {"binary_data": False}},
            {"name": "predict_proba", "parameters": {"binary_data": True}},
        ],
    }

    answer = await client.post("/v2/models/iris/infer", json=body)

    head, chunks = _split_binary_answer(answer)
    assert head["outputs"][0]["data"] == [0, 2]
    assert set(chunks) == {"predict_proba"}
    assert np.frombuffer(chunks["predict_proba"], dtype="<f8").size == 6


async def test_binary_and_json_inputs_mix(client: httpx.AsyncClient) -> None:
    names = load_dataset("iris").feature_names
    columns = np.asarray(IRIS_ROWS, dtype="<f8").T
    inputs: list[dict[str, Any]] = [
        {"name": names[0], "shape": [2], "datatype": "FP64", "data": columns[0].tolist()},
        *[
            {"name": n, "shape": [2], "datatype": "FP64", "parameters": {"binary_data_size": 16}}
            for n in names[1:]
        ],
    ]
    body, headers = _binary_body({"inputs": inputs}, *(c.tobytes() for c in columns[1:]))

    answer = await client.post("/v2/models/iris/infer", content=body, headers=headers)
    expected = await client.post(
        "/v2/models/iris/infer", json={"inputs": [_matrix_input(IRIS_ROWS)]}
    )

    assert answer.status_code == 200, answer.text
    assert answer.json()["outputs"] == expected.json()["outputs"]


# --- bad input -------------------------------------------------------------------------------
def _tensor(**changes: Any) -> dict[str, Any]:
    return {**_matrix_input(IRIS_ROWS), **changes}


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"inputs": []},
        {"inputs": "x"},
        {"inputs": [_tensor(datatype="FLOAT")]},
        {"inputs": [_tensor(shape=[2, 3])]},
        {"inputs": [_tensor(shape=[8])]},
        {"inputs": [_tensor(shape="2,4")]},
        {"inputs": [_tensor(data=[[5.1, "x", 1.4, 0.2], [1, 2, 3, 4]])]},
        {"inputs": [_tensor(data=[[5.1, 3.5], [1, 2, 3, 4, 5, 6]])]},
        {"inputs": [_tensor(data=[[5.1, None, 1.4, 0.2], [1, 2, 3, 4]])]},
        {"inputs": [_tensor(datatype="INT8", data=[[500, 1, 1, 1], [1, 1, 1, 1]])]},
        {"inputs": [_tensor(datatype="INT64", data=[[5.5, 1, 1, 1], [1, 1, 1, 1]])]},
        {"inputs": [_tensor(datatype="BYTES", data=[["5"] * 4, ["1"] * 4])]},
        {"inputs": [_tensor(datatype="BOOL", data=[[True] * 4, [False] * 4])]},
        # numpy alone reads a boolean among numbers as 1 or 0
        {"inputs": [_tensor(data=[[5.1, True, 1.4, 0.2], [1, 2, 3, 4]])]},
        {"inputs": [_tensor(data=[5.1, 3.5, 1.4, 0.2, 1, 2, 3, False])]},
        {"inputs": [_tensor(datatype="INT64", data=[[1, 1, 1, 1], [1, 1, True, 1]])]},
        {"inputs": [_tensor(shape=[0, 4], data=[])]},
        {"inputs": [_tensor(), _tensor(name="other")]},
        {"inputs": [_tensor(), _tensor()]},
        {"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP64"}]},
        {"inputs": [_tensor(parameters={"shared_memory_region": "r"})]},
        {"inputs": [_tensor()], "outputs": [{"name": "nope"}]},
        {
            "inputs": [_tensor()],
            "outputs": [{"name": "predict", "parameters": {"classification": 2}}],
        },
        {"inputs": [_tensor()], "outputs": [{"name": "predict"}, {"name": "predict"}]},
        {"inputs": [_tensor()], "id": 5},
        {"inputs": [_tensor()], "parameters": {"binary_data_output": "yes"}},
    ],
)
async def test_bad_requests_are_400(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    answer = await client.post("/v2/models/iris/infer", json=body)

    assert answer.status_code == 400, answer.text
    _error_message(answer)


async def test_a_boolean_among_thousands_of_zeros_and_ones_is_400(
    client: httpx.AsyncClient,
) -> None:
    rows: list[list[float]] = [
        [0, 1, 0, 1]
    ] * 1500  # 6,000 cells that could each have been a boolean
    clean = {"inputs": [_matrix_input(rows)]}
    tainted = {"inputs": [_matrix_input([*rows, [1, 1, 1, False]])]}

    served = await client.post("/v2/models/iris/infer", json=clean)
    refused = await client.post("/v2/models/iris/infer", json=tainted)

    assert served.status_code == 200, served.text
    assert refused.status_code == 400, refused.text
    assert "[1500][3] is a boolean" in _error_message(refused)


async def test_predict_proba_of_a_regressor_is_400(client: httpx.AsyncClient) -> None:
    rows = load_dataset("diabetes").x_test[:1].tolist()
    body = {"inputs": [_matrix_input(rows)], "outputs": [{"name": "predict_proba"}]}

    answer = await client.post("/v2/models/diabetes/infer", json=body)

    assert answer.status_code == 400
    assert "predict_proba" in _error_message(answer)


@pytest.mark.parametrize(
    ("raw", "header"),
    [
        (b'{"inputs": [', None),
        (b"[1, 2]", None),
        (b"", None),
        (b'{"inputs": []}', "999"),
        (b'{"inputs": []}', "-3"),
        (b'{"inputs": []}', "abc"),
    ],
)
async def test_unparseable_bodies_are_400(
    client: httpx.AsyncClient, raw: bytes, header: str | None
) -> None:
    headers = {} if header is None else {"Inference-Header-Content-Length": header}

    answer = await client.post("/v2/models/iris/infer", content=raw, headers=headers)

    assert answer.status_code == 400
    _error_message(answer)


@pytest.mark.parametrize(
    ("declared_size", "tail"),
    [
        (64, b"\0" * 32),  # runs past the body
        (32, b"\0" * 40),  # 8 bytes belong to no input
        (32, b"\0" * 32),  # 2x4 FP64 needs 64
    ],
)
async def test_binary_size_mismatches_are_400(
    client: httpx.AsyncClient, declared_size: int, tail: bytes
) -> None:
    tensor = {"name": "input", "shape": [2, 4], "datatype": "FP64"}
    document = {"inputs": [{**tensor, "parameters": {"binary_data_size": declared_size}}]}
    body, headers = _binary_body(document, tail)

    answer = await client.post("/v2/models/iris/infer", content=body, headers=headers)

    assert answer.status_code == 400
    _error_message(answer)


async def test_binary_bytes_inputs_are_decoded_then_refused_by_a_numeric_model(
    client: httpx.AsyncClient,
) -> None:
    items = [b"5.1", b"3.5", b"1.4", b"0.2"]
    raw = b"".join(struct.pack("<I", len(item)) + item for item in items)
    tensor = {"name": "input", "shape": [1, 4], "datatype": "BYTES"}
    body, headers = _binary_body(
        {"inputs": [{**tensor, "parameters": {"binary_data_size": len(raw)}}]}, raw
    )

    answer = await client.post("/v2/models/iris/infer", content=body, headers=headers)

    assert answer.status_code == 400
    assert "BYTES" in _error_message(answer)


async def test_too_many_rows_is_400(
    client_for: ClientFactory, settings_for: SettingsFactory
) -> None:
    async with client_for(settings_for(max_rows=1)) as client:
        answer = await client.post(
            "/v2/models/iris/infer", json={"inputs": [_matrix_input(IRIS_ROWS)]}
        )

    assert answer.status_code == 400
    assert "at most 1" in _error_message(answer)


async def _chunked(body: bytes) -> AsyncIterator[bytes]:
    """No Content-Length: only the streamed byte count can catch this body."""
    for start in range(0, len(body), 200):
        yield body[start : start + 200]


async def test_body_too_large_is_413_in_the_protocol_shape(
    client_for: ClientFactory, settings_for: SettingsFactory
) -> None:
    body = orjson.dumps({"inputs": [_matrix_input(IRIS_ROWS * 20)]})

    async with client_for(settings_for(max_body_bytes=256)) as client:
        declared = await client.post("/v2/models/iris/infer", content=body)
        streamed = await client.post("/v2/models/iris/infer", content=_chunked(body))
        outside = await client.post("/models/iris/predict", content=body)

    assert (declared.status_code, streamed.status_code) == (413, 413)
    _error_message(declared)
    _error_message(streamed)
    assert outside.status_code == 413 and set(outside.json()["error"]) == {"code", "message"}


async def test_gzip_request_body_is_inflated(client: httpx.AsyncClient) -> None:
    body = orjson.dumps({"inputs": [_matrix_input(IRIS_ROWS)]})

    answer = await client.post(
        "/v2/models/iris/infer", content=gzip.compress(body), headers={"Content-Encoding": "gzip"}
    )

    assert answer.status_code == 200, answer.text
    assert _outputs(answer)["predict"]["data"] == [0, 2]


# --- hot swap, metrics, auth ------------------------------------------------------------------
async def test_metrics_count_v2_predictions(client: httpx.AsyncClient) -> None:
    await client.post("/v2/models/iris/infer", json={"inputs": [_matrix_input(IRIS_ROWS)]})

    metrics = (await client.get("/metrics", follow_redirects=True)).text

    assert 'serving_prediction_rows_total{model="iris",version="1"} 2.0' in metrics


async def test_api_keys_guard_model_routes_but_not_probes(
    client_for: ClientFactory, settings_for: SettingsFactory
) -> None:
    body = {"inputs": [_matrix_input(IRIS_ROWS)]}

    async with client_for(settings_for(api_keys=["k1"])) as client:
        anonymous = await client.post("/v2/models/iris/infer", json=body)
        keyed = await client.post(
            "/v2/models/iris/infer", json=body, headers={"Authorization": "Bearer k1"}
        )
        probe = await client.get("/v2/health/ready")

    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"] == "Bearer"
    _error_message(anonymous)
    assert (keyed.status_code, probe.status_code) == (200, 200)
