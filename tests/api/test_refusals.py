"""The estimator's own errors over HTTP: a refusal is 422 (V2: 400), a fault is a bare 500.

A real trained pipeline with a OneHotEncoder that refuses unseen categories, and the
marked estimator of tests/estimators.py, both published into the test registry.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from tests import estimators
from tests.conftest import ClientFactory, SettingsFactory
from tests.metrics_text import parse, total
from training.data import load_dataset
from training.publish import publish

UNSEEN = [9.0, 3.5, 1.4, 0.2]  # sepal length 9 cm: a category the encoder never saw
BOUND_SECONDS = 10.0


@pytest.fixture
def segments(registry_dir: Path, signing_key: Ed25519PrivateKey) -> list[list[float]]:
    """Publishes `segments`: iris with sepal length as a category (4..7 cm); its test rows."""
    data = load_dataset("iris")
    x_train, x_test = np.floor(data.x_train[:, :1]), np.floor(data.x_test[:, :1])
    x_train = np.hstack([x_train, data.x_train[:, 1:]])
    x_test = np.hstack([x_test, data.x_test[:, 1:]])
    columns = ColumnTransformer(
        [("category", OneHotEncoder(handle_unknown="error"), [0])], remainder="passthrough"
    )
    pipeline = Pipeline([("columns", columns), ("classify", LogisticRegression(max_iter=1000))])
    pipeline.fit(x_train, data.y_train)
    publish(
        pipeline,
        name="segments",
        root=registry_dir,
        signing_key=signing_key,
        example=x_test[0].tolist(),
    )
    rows: list[list[float]] = x_test.tolist()
    return rows


@pytest.fixture
def marked(registry_dir: Path, signing_key: Ed25519PrivateKey) -> Iterator[None]:
    estimators.publish_marked(registry_dir, signing_key)
    estimators.reset()
    yield
    estimators.GATE.set()
    estimators.reset()


async def _errors(client: httpx.AsyncClient, model: str, error: str) -> float:
    samples = parse((await client.get("/metrics")).text)
    return total(samples, "serving_scoring_errors_total", model=model, error=error)


async def test_an_unseen_category_is_422_with_the_estimators_message(
    client_for: ClientFactory, settings_for: SettingsFactory, segments: list[list[float]]
) -> None:
    async with client_for(settings_for()) as client:
        known = await client.post("/models/segments/predict", json={"instances": segments[:3]})
        refused = await client.post("/models/segments/predict", json={"instances": [UNSEEN]})
        v2 = await client.post(
            "/v2/models/segments/infer",
            json={"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": UNSEEN}]},
        )
        counted = await _errors(client, "segments", "refused")

    assert known.status_code == 200, known.text
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert error["code"] == "rejected_by_model"
    assert "unknown categor" in error["message"].lower()
    assert v2.status_code == 400
    assert set(v2.json()) == {"error"} and "unknown categor" in v2.json()["error"].lower()
    assert counted == 2


async def test_among_concurrent_requests_only_the_unseen_category_fails(
    client_for: ClientFactory, settings_for: SettingsFactory, segments: list[list[float]]
) -> None:
    bodies: list[dict[str, Any]] = [{"instances": segments[i : i + 2]} for i in range(24)]
    bodies[7] = {"instances": [segments[7], UNSEEN]}
    async with client_for(settings_for(cache_max_entries=0)) as client:
        alone = [await client.post("/models/segments/predict", json=b) for b in bodies]
        together: list[httpx.Response | None] = [None] * len(bodies)
        async with anyio.create_task_group() as tg:
            for index, body in enumerate(bodies):
                tg.start_soon(_post_into, client, together, index, body)

    expected = [422 if i == 7 else 200 for i in range(len(bodies))]
    assert [a.status_code for a in alone] == expected
    assert [a.status_code for a in together if a is not None] == expected
    for first, second in zip(alone, together, strict=True):
        assert second is not None and first.json() == second.json()


async def _post_into(
    client: httpx.AsyncClient, into: list[httpx.Response | None], index: int, body: Any
) -> None:
    into[index] = await client.post("/models/segments/predict", json=body)


@pytest.mark.usefixtures("marked")
async def test_a_merged_call_that_fails_fails_only_the_request_that_caused_it(
    client_for: ClientFactory, settings_for: SettingsFactory
) -> None:
    firsts = [5.0, 5.5, estimators.REFUSE, 6.0, 6.5]
    answers: dict[float, httpx.Response] = {}
    settings = settings_for(cache_max_entries=0, max_inflight=1 + len(firsts))
    async with client_for(settings) as client:

        async def send(first: float) -> None:
            body = {"instances": [[first, 3.0, 1.5, 0.2]]}
            answers[first] = await client.post("/models/marked/predict", json=body)

        with anyio.fail_after(BOUND_SECONDS):
            async with anyio.create_task_group() as tg:
                tg.start_soon(send, estimators.HOLD)
                await anyio.to_thread.run_sync(estimators.ENTERED.wait, BOUND_SECONDS)
                for first in firsts:
                    tg.start_soon(send, first)
                await _until_all_admitted(client)
                estimators.GATE.set()

    assert {f: a.status_code for f, a in answers.items() if f != estimators.HOLD} == {
        f: 422 if f == estimators.REFUSE else 200 for f in firsts
    }
    assert "never seen" in answers[estimators.REFUSE].json()["error"]["message"]
    merged_refusals = [
        m for m in estimators.CALLS if len(m) > 1 and estimators.REFUSE in m[:, 0].tolist()
    ]
    assert merged_refusals, "the refusing row never went in a merged call"


async def _until_all_admitted(client: httpx.AsyncClient) -> None:
    """Until one more request is shed: every request sent is admitted and, with nothing
    left to await but the held model, reaches its queue within a few scheduler passes."""
    for _ in range(500):  # at most 5 s
        if (await client.post("/models/marked/predict", content=b"{}")).status_code == 503:
            break
        await anyio.sleep(0.01)
    else:
        raise AssertionError("the requests sent were never all admitted")
    for _ in range(100):
        await anyio.lowlevel.checkpoint()


@pytest.mark.usefixtures("marked")
async def test_an_unexpected_scoring_error_is_a_500_without_internals(
    client_for: ClientFactory, settings_for: SettingsFactory
) -> None:
    row = [estimators.BREAK, 3.0, 1.5, 0.2]
    async with client_for(settings_for()) as client:
        answer = await client.post("/models/marked/predict", json={"instances": [row]})
        v2 = await client.post(
            "/v2/models/marked/infer",
            json={"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": row}]},
        )
        counted = await _errors(client, "marked", "failed")

    assert answer.status_code == 500
    assert answer.json()["error"]["code"] == "scoring_failed"
    assert v2.status_code == 500 and isinstance(v2.json()["error"], str)
    for text in (answer.text, v2.text):
        assert "secret" not in text and "Traceback" not in text and "RuntimeError" not in text
    assert counted == 2
