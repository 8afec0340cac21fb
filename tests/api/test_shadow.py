"""The shadow over HTTP: verdicts on /metrics, a failing shadow, regressors, sampling."""

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import ClientFactory, SettingsFactory
from tests.metrics_text import parse, total
from tests.traffic_versions import IRIS_ROWS
from tests.uploads import ADMIN, ADMIN_TOKEN, eventually

_RESULTS = "serving_shadow_results_total"
_JSON_ADMIN = {**ADMIN, "Content-Type": "application/json"}


@pytest.fixture
def open_client(
    client_for: ClientFactory, settings_for: SettingsFactory, traffic_registry: Path
) -> Callable[..., Any]:
    def opened(**overrides: Any) -> Any:
        return client_for(settings_for(admin_tokens=[ADMIN_TOKEN], **overrides))

    return opened


@pytest.fixture
async def client(open_client: Callable[..., Any]) -> AsyncIterator[httpx.AsyncClient]:
    async with open_client() as opened:
        yield opened


async def _shadow(client: httpx.AsyncClient, alias: str, name: str = "iris") -> None:
    body = {"weights": {"production": 100}, "shadow": alias}
    answer = await client.put(
        f"/models/{name}/traffic", content=orjson.dumps(body), headers=_JSON_ADMIN
    )
    assert answer.status_code == 200, answer.text

    async def followed() -> bool:
        detail = (await client.get(f"/models/{name}")).json()
        return bool(detail["traffic"]["shadow"] == alias)

    await eventually(followed, timeout_seconds=2)


async def _results(client: httpx.AsyncClient, **labels: str) -> float:
    return total(parse((await client.get("/metrics")).text), _RESULTS, **labels)


async def _wait_for_results(client: httpx.AsyncClient, count: int, **labels: str) -> None:
    async def arrived() -> bool:
        return await _results(client, **labels) >= count

    await eventually(arrived, timeout_seconds=10)


async def _predict(client: httpx.AsyncClient, rows: list[list[float]], **body: Any) -> int:
    answer = await client.post("/models/iris/predict", json={"instances": rows, **body})
    assert answer.status_code == 200, answer.text
    version: int = answer.json()["version"]
    return version


async def test_a_shadow_that_agrees_is_counted_same(client: httpx.AsyncClient) -> None:
    await _shadow(client, "canary")

    for _ in range(20):
        assert await _predict(client, IRIS_ROWS) == 1

    labels = {"model": "iris", "primary_version": "1", "shadow_version": "2"}

    await _wait_for_results(client, 20, **labels, verdict="same")
    assert await _results(client, verdict="different") == 0


async def test_a_shadow_that_disagrees_on_any_row_is_counted_different(
    client: httpx.AsyncClient,
) -> None:
    await _shadow(client, "candidate")

    await _predict(client, IRIS_ROWS[:1])  # both versions say class 0
    await _predict(client, IRIS_ROWS)  # v3 cannot tell classes 1 and 2 apart

    labels = {"model": "iris", "primary_version": "1", "shadow_version": "3"}
    await _wait_for_results(client, 2, **labels)
    assert await _results(client, **labels, verdict="same") == 1
    assert await _results(client, **labels, verdict="different") == 1


async def test_a_shadow_that_raises_on_every_call_never_fails_the_primary(
    client: httpx.AsyncClient,
) -> None:
    await _shadow(client, "broken")

    answers = [
        await client.post("/models/iris/predict", json={"instances": IRIS_ROWS}) for _ in range(50)
    ]
    v2 = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": IRIS_ROWS[1]}]}
    v2_answer = await client.post("/v2/models/iris/infer", json=v2)

    assert [a.status_code for a in answers] == [200] * 50
    assert {a.json()["version"] for a in answers} == {1}
    assert v2_answer.status_code == 200, v2_answer.text
    labels = {"model": "iris", "primary_version": "1", "shadow_version": "4"}
    await _wait_for_results(client, 51, **labels, verdict="error")


async def test_a_shadow_that_cannot_load_is_an_error_and_is_not_reloaded_per_copy(
    client: httpx.AsyncClient,
) -> None:
    await _shadow(client, "unloadable")

    for _ in range(20):
        assert await _predict(client, IRIS_ROWS) == 1

    labels = {"model": "iris", "primary_version": "1", "shadow_version": "5"}
    await _wait_for_results(client, 20, **labels, verdict="error")
    samples = parse((await client.get("/metrics")).text)
    assert total(samples, "serving_model_load_failures_total", model="iris") == 1


async def test_cached_answers_are_shadowed_too(client: httpx.AsyncClient) -> None:
    await _shadow(client, "candidate")

    for _ in range(3):
        answer = await client.post("/models/iris/predict", json={"instances": IRIS_ROWS})
    assert answer.headers["X-Cache"] == "HIT"

    await _wait_for_results(client, 3, verdict="different")


async def test_requests_naming_a_version_are_not_shadowed(client: httpx.AsyncClient) -> None:
    await _shadow(client, "canary")

    for pinned in (1, "production"):
        await _predict(client, IRIS_ROWS, version=pinned)
    await _predict(client, IRIS_ROWS)  # routed: the only one copied

    await _wait_for_results(client, 1)
    assert await _results(client) == 1


async def test_regressors_get_the_absolute_difference(client: httpx.AsyncClient) -> None:
    await _shadow(client, "candidate", name="diabetes")

    for _ in range(4):
        answer = await client.post("/models/diabetes/predict", json={"instances": [[0.01] * 10]})
        assert answer.status_code == 200

    await _wait_for_results(client, 4, model="diabetes", verdict="different")
    samples = parse((await client.get("/metrics")).text)
    assert total(samples, "serving_shadow_abs_difference_count", model="diabetes") == 4
    assert total(samples, "serving_shadow_abs_difference_sum", model="diabetes") > 0


async def test_shadow_sample_copies_that_share_of_the_requests(
    open_client: Callable[..., Any],
) -> None:
    async with open_client(shadow_sample=0.5) as client:
        await _shadow(client, "canary")
        for _ in range(300):
            await _predict(client, IRIS_ROWS[:1])
        samples = parse((await client.get("/metrics")).text)
        sampled = total(samples, "serving_shadow_queued_total")
        sampled += total(samples, "serving_shadow_dropped_total")
        await _wait_for_results(client, int(total(samples, "serving_shadow_queued_total")))

    # Binomial(300, 0.5): mean 150, sd 8.7; 90..210 is about 7 sd either side.
    assert 90 <= sampled <= 210, sampled
