"""Adaptive batching through the real app: concurrent answers equal sequential ones."""

import asyncio
from typing import Any

import httpx
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ClientFactory, SettingsFactory
from training.data import load_dataset

CONCURRENT = 24


def _bodies(name: str, probabilities: bool) -> list[dict[str, Any]]:
    """Distinct bodies of 1 to 3 held-out rows; every other one asks for probabilities."""
    rows = load_dataset(name).x_test.tolist()
    return [
        {"instances": rows[i : i + 1 + i % 3], "probabilities": probabilities and i % 2 == 0}
        for i in range(CONCURRENT)
    ]


async def _estimator_calls(client: httpx.AsyncClient, model: str) -> tuple[float, float]:
    """(calls, rows) so far for one model, from the serving_batch_rows histogram."""
    text = (await client.get("/metrics", follow_redirects=True)).text
    seen = {"serving_batch_rows_count": 0.0, "serving_batch_rows_sum": 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in seen and sample.labels.get("model") == model:
                seen[sample.name] = sample.value
    return seen["serving_batch_rows_count"], seen["serving_batch_rows_sum"]


def _assert_same_answers(
    sequential: list[httpx.Response], concurrent: list[httpx.Response]
) -> None:
    for alone, together in zip(sequential, concurrent, strict=True):
        assert together.status_code == alone.status_code == 200, together.text
        first, second = alone.json(), together.json()
        assert second["predictions"] == first["predictions"]
        assert ("probabilities" in second) == ("probabilities" in first)
        if "probabilities" in first:
            np.testing.assert_allclose(
                second["probabilities"], first["probabilities"], rtol=0, atol=1e-12
            )


async def test_concurrent_requests_get_the_answers_they_get_alone_from_merged_calls(
    client_for: ClientFactory, settings_for: SettingsFactory
) -> None:
    settings = settings_for(cache_max_entries=0)  # every request reaches the estimator
    async with client_for(settings) as client:
        for name, has_proba in (("breast_cancer", True), ("diabetes", False), ("iris", True)):
            url, bodies = f"/models/{name}/predict", _bodies(name, has_proba)
            rows = sum(len(body["instances"]) for body in bodies)
            sequential = [await client.post(url, json=body) for body in bodies]
            alone = await _estimator_calls(client, name)

            concurrent = await asyncio.gather(*(client.post(url, json=body) for body in bodies))

            _assert_same_answers(sequential, list(concurrent))
            together = await _estimator_calls(client, name)
            assert alone == (len(bodies), rows)  # one call per request when sent one by one
            assert together[1] - alone[1] == rows
            assert together[0] - alone[0] < len(bodies), f"{name}: no request was merged"


async def test_an_invalid_request_among_concurrent_ones_fails_alone(
    client_for: ClientFactory, settings_for: SettingsFactory
) -> None:
    async with client_for(settings_for(cache_max_entries=0)) as client:
        bodies = _bodies("breast_cancer", probabilities=True)
        bodies[5] = {"instances": [[1.0, 2.0]]}  # wrong number of features
        bodies[9] = {"instances": [["x"] * 30]}

        answers = await asyncio.gather(
            *(client.post("/models/breast_cancer/predict", json=body) for body in bodies)
        )

    assert [a.status_code for a in answers] == [422 if i in (5, 9) else 200 for i in range(24)]
