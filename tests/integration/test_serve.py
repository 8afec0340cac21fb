"""The README's path on a fresh registry: `serving train --all`, then `serving serve` (gunicorn)."""

import subprocess
import sys
from pathlib import Path

import httpx
import joblib
import numpy as np
import pytest

from tests.conftest import DEMO_MODELS
from tests.processes import running_server, server_environment
from training.data import load_dataset

pytestmark = pytest.mark.slow


def _serving(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "serving", *args],
        env=server_environment(env),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def test_train_then_serve_answers_like_the_estimators(tmp_path: Path) -> None:
    env = {
        "SERVING_MODEL_DIR": str(tmp_path / "models"),
        "SERVING_SIGNING_KEY_FILE": str(tmp_path / "keys" / "signing-key.pem"),
    }

    trained = _serving("train", "--all", "--if-empty", env=env)
    again = _serving("train", "--all", "--if-empty", env=env)
    with running_server(env, tmp_path / "server.log") as server:
        ready = httpx.get(f"{server.url}/health/ready")
        answers = {
            name: httpx.post(
                f"{server.url}/predict",
                json={"model": name, "instances": load_dataset(name).x_test.tolist()},
            )
            for name in DEMO_MODELS
        }
        docs = httpx.get(f"{server.url}/docs")
        swagger_js = httpx.get(f"{server.url}/static-offline-docs/swagger-ui-bundle.js")

    assert "published version 1" in trained.stderr
    assert "skipped" in again.stderr
    assert (tmp_path / "keys" / "signing-key.pem.pub").exists()
    assert ready.status_code == 200
    for name, answer in answers.items():
        estimator = joblib.load(tmp_path / "models" / name / "1" / "model.joblib")
        expected = estimator.predict(load_dataset(name).x_test)
        np.testing.assert_array_equal(answer.json()["predictions"], expected)
    assert docs.status_code == 200 and "cdn" not in docs.text.lower()
    assert swagger_js.status_code == 200


def test_the_openapi_document_shows_each_models_features_and_a_working_example(
    tmp_path: Path,
) -> None:
    env = {
        "SERVING_MODEL_DIR": str(tmp_path / "models"),
        "SERVING_SIGNING_KEY_FILE": str(tmp_path / "keys" / "signing-key.pem"),
    }
    _serving("train", "iris", "--promote", "production", env=env)

    with running_server(env, tmp_path / "server.log", workers=1) as server:
        schema = httpx.get(f"{server.url}/openapi.json").json()
        operation = schema["paths"]["/predict"]["post"]
        examples = operation["requestBody"]["content"]["application/json"]["examples"]
        answers = [
            httpx.post(f"{server.url}/predict", json=example["value"])
            for example in examples.values()
        ]

    assert "sepal_length_cm" in operation["description"]
    assert set(examples) == {"iris-by-position", "iris-by-name"}
    assert [answer.status_code for answer in answers] == [200, 200]
