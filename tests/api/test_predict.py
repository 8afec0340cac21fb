"""Predictions over HTTP equal the estimator's own, by position and by name."""

from pathlib import Path

import httpx
import joblib
import numpy as np
import pytest

from tests.conftest import DEMO_MODELS
from training.data import load_dataset


def _estimator(registry_dir: Path, name: str) -> object:
    return joblib.load(registry_dir / name / "1" / "model.joblib")


@pytest.mark.parametrize("name", DEMO_MODELS)
async def test_predictions_by_position_equal_the_estimator_on_the_held_out_split(
    client: httpx.AsyncClient, registry_dir: Path, name: str
) -> None:
    data = load_dataset(name)
    estimator = _estimator(registry_dir, name)
    is_classifier = name != "diabetes"
    body = {"instances": data.x_test.tolist(), "probabilities": is_classifier}

    answer = await client.post(f"/models/{name}/predict", json=body)

    assert answer.status_code == 200, answer.text
    payload = answer.json()
    assert (payload["model"], payload["version"]) == (name, 1)
    np.testing.assert_array_equal(payload["predictions"], estimator.predict(data.x_test))  # type: ignore[attr-defined]
    if is_classifier:
        expected = estimator.predict_proba(data.x_test)  # type: ignore[attr-defined]
        # Served by the compiled form, which agrees within 1e-6 (the Runtimes contract).
        np.testing.assert_allclose(payload["probabilities"], expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", DEMO_MODELS)
async def test_rows_by_feature_name_equal_rows_by_position(
    client: httpx.AsyncClient, name: str
) -> None:
    data = load_dataset(name)
    rows = data.x_test[:20]
    by_name = [
        dict(zip(reversed(data.feature_names), reversed(row.tolist()), strict=True)) for row in rows
    ]

    positional = await client.post(f"/models/{name}/predict", json={"instances": rows.tolist()})
    named = await client.post(f"/models/{name}/predict", json={"instances": by_name})

    assert named.status_code == 200, named.text
    assert named.json()["predictions"] == positional.json()["predictions"]


async def test_repeat_request_is_a_cache_hit_with_the_same_answer(
    client: httpx.AsyncClient,
) -> None:
    body = {"model": "iris", "instances": [[5.1, 3.5, 1.4, 0.2]], "probabilities": True}

    first = await client.post("/predict", json=body)
    second = await client.post("/predict", json=body)

    assert (first.headers["X-Cache"], second.headers["X-Cache"]) == ("MISS", "HIT")
    assert first.json() == second.json()


async def test_integers_and_floats_share_a_cache_entry(client: httpx.AsyncClient) -> None:
    first = await client.post("/models/iris/predict", json={"instances": [[5, 3, 1, 0]]})
    second = await client.post("/models/iris/predict", json={"instances": [[5.0, 3.0, 1.0, 0.0]]})

    assert (first.headers["X-Cache"], second.headers["X-Cache"]) == ("MISS", "HIT")


async def test_asking_for_probabilities_is_a_different_cache_entry(
    client: httpx.AsyncClient,
) -> None:
    rows = [[5.1, 3.5, 1.4, 0.2]]

    labels = await client.post("/models/iris/predict", json={"instances": rows})
    proba = await client.post(
        "/models/iris/predict", json={"instances": rows, "probabilities": True}
    )

    assert proba.headers["X-Cache"] == "MISS"
    assert "probabilities" not in labels.json()
    assert len(proba.json()["probabilities"][0]) == 3


async def test_every_answer_carries_a_request_id_and_echoes_the_callers(
    client: httpx.AsyncClient,
) -> None:
    generated = await client.get("/health/live")
    echoed = await client.get("/health/live", headers={"X-Request-ID": "abc-123"})

    assert len(generated.headers["X-Request-ID"]) == 32
    assert echoed.headers["X-Request-ID"] == "abc-123"


async def test_explicit_version_and_alias_routes_serve_that_version(
    client: httpx.AsyncClient,
) -> None:
    body = {"instances": [[5.1, 3.5, 1.4, 0.2]]}

    pinned = await client.post("/models/iris/versions/1/predict", json=body)
    in_body = await client.post("/predict", json={"model": "iris", "version": 1, **body})

    assert pinned.status_code == in_body.status_code == 200
    assert pinned.json()["version"] == in_body.json()["version"] == 1


async def test_large_answers_are_gzipped_when_the_caller_accepts_it(
    client: httpx.AsyncClient,
) -> None:
    rows = load_dataset("breast_cancer").x_test.tolist()

    answer = await client.post(
        "/models/breast_cancer/predict",
        json={"instances": rows, "probabilities": True},
        headers={"Accept-Encoding": "gzip"},
    )

    assert answer.headers["Content-Encoding"] == "gzip"
    assert len(answer.json()["predictions"]) == len(rows)
