"""A real `serving serve` driven by NVIDIA's tritonclient[http], in JSON and in binary mode."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.conftest import DEMO_MODELS
from tests.processes import ServerProcess, running_server
from training.data import load_dataset

pytestmark = pytest.mark.slow
ADMIN_TOKEN = "v2-admin"
CLASSIFIERS = ("iris", "breast_cancer")


@pytest.fixture(scope="module")
def server(
    trained_registry: Path, trusted_key_text: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """One worker, so repository load/unload is seen by every later request."""
    folder = tmp_path_factory.mktemp("v2-server")
    env = {
        "SERVING_MODEL_DIR": str(trained_registry),
        "SERVING_TRUSTED_KEYS": trusted_key_text,
        "SERVING_SIGNING_KEY_FILE": str(folder / "no-dev-key.pem"),
        "SERVING_ADMIN_TOKENS": ADMIN_TOKEN,
    }
    with running_server(env, folder / "server.log", workers=1) as started:
        yield started


@pytest.fixture
def triton_client(server: ServerProcess) -> Iterator[triton.InferenceServerClient]:
    client = triton.InferenceServerClient(server.url.removeprefix("http://"))
    yield client
    client.close()


def _predict(server: ServerProcess, name: str, rows: npt.NDArray[np.float64]) -> dict[str, Any]:
    body = {"instances": rows.tolist(), "probabilities": name in CLASSIFIERS}
    answer = httpx.post(f"{server.url}/models/{name}/predict", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    payload: dict[str, Any] = answer.json()
    return payload


def _infer(
    client: triton.InferenceServerClient,
    name: str,
    rows: npt.NDArray[np.float64],
    *,
    binary: bool,
    version: str = "",
) -> Any:
    tensor = triton.InferInput("input", list(rows.shape), "FP64")
    tensor.set_data_from_numpy(rows, binary_data=binary)
    outputs = [triton.InferRequestedOutput("predict", binary_data=binary)]
    if name in CLASSIFIERS:
        outputs.append(triton.InferRequestedOutput("predict_proba", binary_data=binary))
    return client.infer(name, [tensor], model_version=version, outputs=outputs, request_id="r1")


def test_server_and_model_routes(triton_client: triton.InferenceServerClient) -> None:
    metadata = triton_client.get_model_metadata("iris")
    versioned = triton_client.get_model_metadata("iris", "1")

    assert triton_client.is_server_live() and triton_client.is_server_ready()
    assert "binary_tensor_data" in triton_client.get_server_metadata()["extensions"]
    assert triton_client.is_model_ready("iris") and triton_client.is_model_ready("iris", "1")
    assert not triton_client.is_model_ready("nope")
    assert metadata == versioned
    assert metadata["inputs"] == [{"name": "input", "datatype": "FP64", "shape": [-1, 4]}]


@pytest.mark.parametrize("name", DEMO_MODELS)
@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_infer_equals_predict(
    server: ServerProcess, triton_client: triton.InferenceServerClient, name: str, binary: bool
) -> None:
    rows = load_dataset(name).x_test

    result = _infer(triton_client, name, rows, binary=binary)
    pinned = _infer(triton_client, name, rows[:5], binary=binary, version="1")
    expected = _predict(server, name, rows)

    assert result.get_response()["id"] == "r1"
    np.testing.assert_array_equal(result.as_numpy("predict"), expected["predictions"])
    np.testing.assert_array_equal(pinned.as_numpy("predict"), expected["predictions"][:5])
    if name in CLASSIFIERS:
        np.testing.assert_array_equal(result.as_numpy("predict_proba"), expected["probabilities"])


def test_client_defaults_send_and_get_binary(
    server: ServerProcess, triton_client: triton.InferenceServerClient
) -> None:
    rows = load_dataset("iris").x_test.astype(np.float32)
    tensor = triton.InferInput("input", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows)  # binary by default; no outputs named: binary_data_output

    result = triton_client.infer("iris", [tensor])
    expected = _predict(server, "iris", rows.astype(np.float64))

    outputs = {output["name"]: output for output in result.get_response()["outputs"]}
    assert "binary_data_size" in outputs["predict"]["parameters"]
    np.testing.assert_array_equal(result.as_numpy("predict"), expected["predictions"])
    np.testing.assert_array_equal(result.as_numpy("predict_proba"), expected["probabilities"])


def test_compressed_request_and_answer(
    server: ServerProcess, triton_client: triton.InferenceServerClient
) -> None:
    rows = load_dataset("breast_cancer").x_test
    tensor = triton.InferInput("input", list(rows.shape), "FP64")
    tensor.set_data_from_numpy(rows)

    result = triton_client.infer(
        "breast_cancer",
        [tensor],
        request_compression_algorithm="gzip",
        response_compression_algorithm="gzip",
    )

    expected = _predict(server, "breast_cancer", rows)
    np.testing.assert_array_equal(result.as_numpy("predict_proba"), expected["probabilities"])


def test_errors_reach_the_client_with_their_message(
    triton_client: triton.InferenceServerClient,
) -> None:
    tensor = triton.InferInput("input", [1, 3], "FP64")
    tensor.set_data_from_numpy(np.zeros((1, 3)))

    with pytest.raises(InferenceServerException) as bad_shape:
        triton_client.infer("iris", [tensor])
    with pytest.raises(InferenceServerException) as unknown:
        triton_client.get_model_metadata("nope")

    assert bad_shape.value.status() == "400" and "[rows, 4]" in bad_shape.value.message()
    assert unknown.value.status() == "404"


def test_repository_unload_and_load(triton_client: triton.InferenceServerClient) -> None:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    with pytest.raises(InferenceServerException) as anonymous:
        triton_client.get_model_repository_index()
    triton_client.unload_model("diabetes", headers=headers)
    unloaded = triton_client.is_model_ready("diabetes")
    index = {entry["name"]: entry for entry in triton_client.get_model_repository_index(headers)}
    triton_client.load_model("diabetes", headers=headers)

    assert anonymous.value.status() == "401"
    assert not unloaded and index["diabetes"]["state"] == "UNAVAILABLE"
    assert index["iris"]["state"] == "READY"
    assert triton_client.is_model_ready("diabetes")
