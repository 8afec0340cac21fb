"""SERVING_RUNTIME over the real app: which form serves each version, what the version
route says about it, and that a version is verified as a whole whichever form serves it."""

import base64
import pickle
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from serving.repository.artifacts import sha256_hex
from serving.repository.manifest import ArtifactInfo, ModelManifest
from serving.repository.signing import Signature, key_id, sign
from tests.conftest import ClientFactory, SettingsFactory
from training.data import load_dataset

IRIS_ROW = [5.1, 3.5, 1.4, 0.2]


class _CreatesFileWhenUnpickled:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def _manifest(folder: Path) -> ModelManifest:
    return ModelManifest.model_validate_json((folder / "manifest.json").read_bytes())


def _rewrite(folder: Path, manifest: ModelManifest, key: Ed25519PrivateKey) -> None:
    (folder / "manifest.json").write_bytes(manifest.to_json())
    (folder / "signature.json").write_text(sign(manifest, key).model_dump_json())


def _flip_one_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


async def _version(client: httpx.AsyncClient, name: str) -> dict[str, Any]:
    answer = await client.get(f"/models/{name}/versions/1")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def test_auto_serves_the_compiled_form_where_there_is_one_and_says_why(
    client: httpx.AsyncClient,
) -> None:
    iris, forest, diabetes = [
        await _version(client, name) for name in ("iris", "breast_cancer", "diabetes")
    ]

    assert iris["runtime"]["name"] == forest["runtime"]["name"] == "onnx"
    assert "agreed with scikit-learn on 143 rows" in forest["runtime"]["reason"]
    assert forest["compiled"]["parity"]["rows_from"] == "held-out"
    assert forest["compiled"]["parity"]["max_difference"] <= 1e-6
    assert diabetes["runtime"]["name"] == "sklearn"
    assert "HistGradientBoostingRegressor" in diabetes["runtime"]["reason"]
    assert diabetes["compiled"]["sha256"] is None


async def test_sklearn_mode_serves_every_version_from_its_artifact(
    client_for: ClientFactory, settings_for: SettingsFactory
) -> None:
    async with client_for(settings_for(runtime="sklearn")) as client:
        runtimes = [(await _version(client, n))["runtime"] for n in ("iris", "breast_cancer")]
        answer = await client.post("/models/iris/predict", json={"instances": [IRIS_ROW]})
        metrics = (await client.get("/metrics")).text

    assert [runtime["name"] for runtime in runtimes] == ["sklearn", "sklearn"]
    assert answer.status_code == 200
    assert 'runtime="sklearn"' in metrics and 'runtime="onnx"' not in metrics


async def test_onnx_mode_lists_versions_without_a_compiled_form_as_not_servable(
    client_for: ClientFactory, settings_for: SettingsFactory
) -> None:
    async with client_for(settings_for(runtime="onnx")) as client:
        diabetes = (await client.get("/models/diabetes")).json()
        version = await _version(client, "diabetes")
        refused = await client.post("/models/diabetes/predict", json={"instances": [[0.0] * 10]})
        forest = await client.post(
            "/models/breast_cancer/predict", json={"instances": [[1.0] * 30]}
        )

    assert diabetes["default_version"] is None
    assert "SERVING_RUNTIME=onnx and no compiled form" in diabetes["failures"]["1"]
    assert version["runtime"]["name"] is None
    assert "not served" in version["runtime"]["reason"]
    assert refused.status_code == 503
    assert forest.status_code == 200


@pytest.mark.parametrize("runtime", ["auto", "onnx"])
async def test_in_onnx_mode_a_pickle_that_would_run_code_is_never_unpickled(
    client_for: ClientFactory,
    settings_for: SettingsFactory,
    registry_dir: Path,
    signing_key: Ed25519PrivateKey,
    tmp_path: Path,
    runtime: str,
) -> None:
    """A signed version whose artifact creates a file when unpickled, with iris's real
    compiled form: served from the compiled form, and the file never appears."""
    marker = tmp_path / "pwned"
    evil = pickle.dumps(_CreatesFileWhenUnpickled(marker))
    folder = registry_dir / "iris" / "1"
    (folder / "model.joblib").write_bytes(evil)
    manifest = _manifest(folder).model_copy(
        update={"artifact": ArtifactInfo(sha256=sha256_hex(evil))}
    )
    _rewrite(folder, manifest, signing_key)

    async with client_for(settings_for(runtime=runtime)) as client:
        answer = await client.post("/models/iris/predict", json={"instances": [IRIS_ROW]})

    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == [0]
    assert not marker.exists()


async def test_the_same_version_in_sklearn_mode_does_unpickle_it(
    client_for: ClientFactory,
    settings_for: SettingsFactory,
    registry_dir: Path,
    signing_key: Ed25519PrivateKey,
    tmp_path: Path,
) -> None:
    """The control for the test above: the version really is signed and really unpickles."""
    marker = tmp_path / "pwned"
    evil = pickle.dumps(_CreatesFileWhenUnpickled(marker))
    folder = registry_dir / "iris" / "1"
    (folder / "model.joblib").write_bytes(evil)
    manifest = _manifest(folder).model_copy(
        update={"artifact": ArtifactInfo(sha256=sha256_hex(evil))}
    )
    _rewrite(folder, manifest, signing_key)

    async with client_for(settings_for(runtime="sklearn")) as client:
        await client.get("/models/iris")

    assert marker.exists()


@pytest.mark.parametrize(
    ("damage", "runtime", "reason"),
    [
        ("artifact", "onnx", "artifact sha256 does not match"),
        ("compiled", "sklearn", "compiled file sha256 does not match"),
        ("missing-compiled", "sklearn", "compiled file the manifest lists is missing"),
        ("missing-compiled", "auto", "compiled file the manifest lists is missing"),
    ],
)
async def test_a_damaged_file_makes_the_whole_version_unservable_whichever_form_serves(
    client_for: ClientFactory,
    settings_for: SettingsFactory,
    registry_dir: Path,
    damage: str,
    runtime: str,
    reason: str,
) -> None:
    folder = registry_dir / "breast_cancer" / "1"
    if damage == "artifact":
        _flip_one_byte(folder / "model.joblib")
    elif damage == "compiled":
        _flip_one_byte(folder / "model.onnx")
    else:
        (folder / "model.onnx").unlink()

    async with client_for(settings_for(runtime=runtime)) as client:
        detail = (await client.get("/models/breast_cancer")).json()
        version = await _version(client, "breast_cancer")
        refused = await client.post(
            "/models/breast_cancer/predict", json={"instances": [[1.0] * 30]}
        )
        others = await client.post("/models/iris/predict", json={"instances": [IRIS_ROW]})

    assert detail["default_version"] is None
    assert reason in detail["failures"]["1"]
    assert version["runtime"]["name"] is None
    assert refused.status_code == 503
    assert others.status_code == 200


async def test_a_manifest_from_before_compiled_forms_still_verifies_and_is_served_by_sklearn(
    client_for: ClientFactory,
    settings_for: SettingsFactory,
    registry_dir: Path,
    signing_key: Ed25519PrivateKey,
) -> None:
    """Written and signed as publishers did before the `compiled` entry existed."""
    folder = registry_dir / "iris" / "1"
    document = orjson.loads((folder / "manifest.json").read_bytes())
    del document["compiled"]
    (folder / "model.onnx").unlink()
    (folder / "manifest.json").write_bytes(orjson.dumps(document))
    payload = orjson.dumps(
        {k: v for k, v in document.items() if k != "version"}, option=orjson.OPT_SORT_KEYS
    )
    signature = Signature(
        key_id=key_id(signing_key.public_key()),
        signature=base64.b64encode(signing_key.sign(payload)).decode(),
    )
    (folder / "signature.json").write_text(signature.model_dump_json())

    async with client_for(settings_for()) as client:
        version = await _version(client, "iris")
        answer = await client.post("/models/iris/predict", json={"instances": [IRIS_ROW]})

    assert answer.status_code == 200
    assert version["runtime"] == {
        "name": "sklearn",
        "reason": "no compiled form: published before compiled forms existed",
    }


async def test_the_compiled_forest_answers_as_scikit_learn_on_held_out_rows_with_missing_values(
    client: httpx.AsyncClient, registry_dir: Path
) -> None:
    estimator = joblib.load(registry_dir / "breast_cancer" / "1" / "model.joblib")
    rows = load_dataset("breast_cancer").x_test.copy()
    rows[np.random.default_rng(0).random(rows.shape) < 0.2] = np.nan
    instances = [[None if np.isnan(v) else float(v) for v in row] for row in rows]

    answer = await client.post(
        "/models/breast_cancer/predict", json={"instances": instances, "probabilities": True}
    )

    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == estimator.predict(rows).tolist()
    np.testing.assert_allclose(
        answer.json()["probabilities"], estimator.predict_proba(rows), rtol=0, atol=1e-6
    )
