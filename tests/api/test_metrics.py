"""/metrics over the real app: prediction, cache and model series, and bounded label sets."""

import time
import uuid
from pathlib import Path

import anyio
import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from serving.repository.signing import trusted_keys_from
from serving.repository.store import ModelStore
from tests.conftest import ClientFactory, SettingsFactory
from tests.metrics_text import Samples, parse
from tests.metrics_text import value as _value
from training.train import train


async def _scrape(client: httpx.AsyncClient) -> Samples:
    answer = await client.get("/metrics")
    assert answer.status_code == 200
    return parse(answer.text)


async def _wait_for(
    client: httpx.AsyncClient, name: str, value: float | None, **labels: str
) -> Samples:
    deadline = time.monotonic() + 10
    while True:
        samples = await _scrape(client)
        if _value(samples, name, **labels) == value or time.monotonic() > deadline:
            return samples
        await anyio.sleep(0.05)


async def test_predictions_rows_and_cache_lookups_are_counted_by_model_and_version(
    client: httpx.AsyncClient,
) -> None:
    body = {"instances": [[5.1, 3.5, 1.4, 0.2], [6.0, 2.2, 5.0, 1.5]]}

    for _ in range(3):
        await client.post("/models/iris/predict", json=body)
    samples = await _scrape(client)

    counted = "serving_predictions_total"
    assert _value(samples, counted, model="iris", version="1", cache="miss") == 1
    assert _value(samples, counted, model="iris", version="1", cache="hit") == 2
    assert _value(samples, "serving_prediction_rows_total", model="iris", version="1") == 6
    assert _value(samples, "serving_cache_lookups_total", result="hit") == 2
    inference = {"model": "iris", "version": "1", "runtime": "onnx"}  # iris has a compiled form
    assert _value(samples, "serving_inference_seconds_count", **inference) == 1
    handler = {"handler": "/models/{name}/predict", "method": "POST", "status": "2xx"}
    assert _value(samples, "http_requests_total", **handler) == 3


async def test_model_loads_and_loaded_versions_are_shown_after_start(
    client: httpx.AsyncClient,
) -> None:
    samples = await _scrape(client)

    for name in ("iris", "breast_cancer", "diabetes"):
        assert _value(samples, "serving_model_load_seconds_count", model=name) == 1
        assert _value(samples, "serving_model_version_loaded", model=name, version="1") == 1


async def test_alias_moves_and_failed_loads_reach_the_metrics(
    client_for: ClientFactory,
    settings_for: SettingsFactory,
    registry_dir: Path,
    signing_key: Ed25519PrivateKey,
) -> None:
    settings = settings_for()
    store = ModelStore(registry_dir, trusted_keys_from(settings))
    train("iris", registry_dir, signing_key)  # v2, good
    train("iris", registry_dir, signing_key)  # v3, corrupted below
    artifact = registry_dir / "iris" / "3" / "model.joblib"
    artifact.write_bytes(artifact.read_bytes() + b"tampered")
    store.set_alias("iris", "production", 1)

    async with client_for(settings) as client:
        started = await _scrape(client)
        store.set_alias("iris", "production", 2)
        moved = await _wait_for(
            client, "serving_model_alias_version", 2, model="iris", alias="production"
        )
        store.set_alias("iris", "production", 3)
        failed = await _wait_for(
            client, "serving_model_alias_version", 3, model="iris", alias="production"
        )

    assert _value(started, "serving_model_load_failures_total", model="iris") == 0
    assert _value(moved, "serving_model_version_loaded", model="iris", version="2") == 1
    assert _value(moved, "serving_model_version_loaded", model="iris", version="3") is None
    assert _value(failed, "serving_model_load_failures_total", model="iris") == 1
    assert _value(failed, "serving_model_alias_version", model="iris", alias="production") == 3


async def test_unknown_paths_models_and_request_ids_create_no_series(
    client: httpx.AsyncClient,
) -> None:
    await client.post("/models/iris/predict", json={"instances": [[5.1, 3.5, 1.4, 0.2]]})
    before = await _scrape(client)
    secrets = [uuid.uuid4().hex for _ in range(20)]

    for secret in secrets:
        await client.get(f"/{secret}/x", headers={"X-Request-ID": secret})
        await client.post(f"/models/{secret}/predict", json={"instances": [[1, 2, 3, 4]]})
        await client.post("/models/iris/predict", json={"instances": [[1, 2, 3, secret]]})
    after = await _scrape(client)

    new_series = after.keys() - before.keys()
    handlers = {dict(labels)["handler"] for _, labels in new_series if "handler" in dict(labels)}
    assert handlers <= {"none", "/models/{name}/predict"}
    error_models = {
        dict(labels)["model"] for n, labels in new_series if n.startswith("serving_req")
    }
    assert error_models <= {"_unknown", "iris"}
    # Errors by version (for canary vs production): a series per model, version and code.
    by_version = {
        (n, dict(labels)["model"]) for n, labels in new_series if n.startswith("serving_pred")
    }
    assert by_version <= {
        ("serving_prediction_errors_total", "iris"),
        ("serving_prediction_errors_created", "iris"),
    }
    assert len(new_series) < 30  # a fixed set: a 4xx series per handler, not one per request
    shown = "".join(f"{name}{sorted(labels)}" for name, labels in after)
    assert not any(secret in shown for secret in secrets)


async def test_series_the_dashboard_reads_exist_at_zero_from_start_up(
    client: httpx.AsyncClient,
) -> None:
    samples = await _scrape(client)

    for name in ("iris", "breast_cancer", "diabetes"):
        assert _value(samples, "serving_model_load_failures_total", model=name) == 0
    for operation in ("get", "set"):
        for kind in ("timeout", "connection", "backlog", "other"):
            labels = {"operation": operation, "error": kind}
            assert _value(samples, "serving_cache_errors_total", **labels) == 0
    for result in ("hit", "miss", "error"):
        assert _value(samples, "serving_cache_lookups_total", result=result) == 0


async def test_a_removed_alias_and_a_deleted_version_leave_the_metrics(
    client_for: ClientFactory,
    settings_for: SettingsFactory,
    registry_dir: Path,
    signing_key: Ed25519PrivateKey,
) -> None:
    settings = settings_for()
    store = ModelStore(registry_dir, trusted_keys_from(settings))
    train("iris", registry_dir, signing_key)  # v2
    store.set_alias("iris", "production", 1)
    store.set_alias("iris", "canary", 2)

    async with client_for(settings) as client:
        answer = await client.post("/models/iris/versions/2/predict", json={"instances": [[1] * 4]})
        assert answer.status_code == 200  # v2 is now loaded too
        shown = await _wait_for(
            client, "serving_model_version_loaded", 1, model="iris", version="2"
        )
        store.remove_alias("iris", "canary")
        store.delete_version("iris", 2)
        gone = await _wait_for(
            client, "serving_model_alias_version", None, model="iris", alias="canary"
        )

    assert _value(shown, "serving_model_alias_version", model="iris", alias="canary") == 2
    assert _value(gone, "serving_model_alias_version", model="iris", alias="canary") is None
    assert _value(gone, "serving_model_version_loaded", model="iris", version="2") is None
    assert _value(gone, "serving_model_version_loaded", model="iris", version="1") == 1


async def test_errors_of_model_routes_are_counted_by_model_and_code(
    client: httpx.AsyncClient,
) -> None:
    await client.post("/models/iris/predict", json={"instances": [[1, 2, 3]]})
    await client.post("/models/iris/predict", json={"instances": [[1, 2, 3]]})
    await client.post("/predict", json={"model": "diabetes", "instances": [[1]]})
    await client.post("/models/iris/versions/9/predict", json={"instances": [[1, 2, 3, 4]]})
    await client.post("/v2/models/iris/infer", content=b"{")
    await client.post("/models/no-such-model/predict", json={"instances": [[1]]})
    await client.get("/models/iris/nothing-here")  # no route: not a model's error
    samples = await _scrape(client)

    errors = "serving_request_errors_total"
    assert _value(samples, errors, model="iris", code="invalid_input") == 2
    assert _value(samples, errors, model="diabetes", code="invalid_input") == 1
    assert _value(samples, errors, model="iris", code="version_not_found") == 1
    assert _value(samples, errors, model="iris", code="malformed_request") == 1
    assert _value(samples, errors, model="_unknown", code="model_not_found") == 1
    assert sum(v for (name, _), v in samples.items() if name == errors) == 6
