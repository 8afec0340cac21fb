"""The model-repository extension (index, load, unload) and hot swap under /v2."""

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.conftest import ClientFactory, SettingsFactory
from tests.waiting import RegistryPolls
from training.train import train

ADMIN = {"Authorization": "Bearer admin-secret"}
IRIS_INPUT = {"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}


@pytest.fixture
async def admin_client(
    client_for: ClientFactory, settings_for: SettingsFactory
) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(settings_for(admin_tokens=["admin-secret"])) as opened:
        yield opened


async def _index(client: httpx.AsyncClient) -> dict[str, dict[str, str]]:
    answer = await client.post("/v2/repository/index", headers=ADMIN)
    assert answer.status_code == 200, answer.text
    return {entry["name"]: entry for entry in answer.json()}


async def test_index_lists_every_model_ready(admin_client: httpx.AsyncClient) -> None:
    index = await _index(admin_client)

    assert set(index) == {"iris", "breast_cancer", "diabetes"}
    assert index["iris"] == {"name": "iris", "version": "1", "state": "READY"}


async def test_unload_stops_serving_until_load(
    admin_client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    polls = RegistryPolls(caplog)
    unloaded = await admin_client.post("/v2/repository/models/iris/unload", headers=ADMIN)
    index = await _index(admin_client)
    ready = await admin_client.get("/v2/models/iris/ready")
    infer = await admin_client.post("/v2/models/iris/infer", json={"inputs": [IRIS_INPUT]})
    predict = await admin_client.post("/models/iris/predict", json={"instances": [[5, 3, 1, 0]]})
    await polls.wait_beyond(polls.count + 1)  # two registry polls must not bring it back
    still_out = await admin_client.get("/v2/models/iris/ready")
    loaded = await admin_client.post("/v2/repository/models/iris/load", headers=ADMIN, json={})
    ready_again = await admin_client.get("/v2/models/iris/ready")
    infer_again = await admin_client.post("/v2/models/iris/infer", json={"inputs": [IRIS_INPUT]})

    assert unloaded.status_code == 200, unloaded.text
    assert index["iris"]["state"] == "UNAVAILABLE" and index["iris"]["reason"] == "unloaded"
    assert index["diabetes"]["state"] == "READY"
    assert (ready.status_code, infer.status_code, predict.status_code) == (503, 503, 503)
    assert set(infer.json()) == {"error"}
    assert still_out.status_code == 503
    assert (loaded.status_code, ready_again.status_code) == (200, 200)
    assert infer_again.status_code == 200


async def test_index_can_keep_only_ready_models(admin_client: httpx.AsyncClient) -> None:
    await admin_client.post("/v2/repository/models/diabetes/unload", headers=ADMIN)

    answer = await admin_client.post("/v2/repository/index", headers=ADMIN, json={"ready": True})

    assert sorted(entry["name"] for entry in answer.json()) == ["breast_cancer", "iris"]


async def test_unloading_every_model_makes_the_server_unready(
    admin_client: httpx.AsyncClient,
) -> None:
    for name in ("iris", "breast_cancer", "diabetes"):
        await admin_client.post(f"/v2/repository/models/{name}/unload", headers=ADMIN)

    answer = await admin_client.get("/v2/health/ready")

    assert answer.status_code == 503


@pytest.mark.parametrize("action", ["load", "unload"])
async def test_load_or_unload_of_an_unknown_model_is_404(
    admin_client: httpx.AsyncClient, action: str
) -> None:
    answer = await admin_client.post(f"/v2/repository/models/nope/{action}", headers=ADMIN)

    assert answer.status_code == 404
    assert set(answer.json()) == {"error"}


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[1]",
        b'{"parameters": {"config": "{}"}}',
        b'{"parameters": {"file:1/model.onnx": "AA=="}}',
    ],
)
async def test_load_refuses_bad_bodies_and_model_configs(
    admin_client: httpx.AsyncClient, body: bytes
) -> None:
    answer = await admin_client.post("/v2/repository/models/iris/load", headers=ADMIN, content=body)

    assert answer.status_code == 400
    assert set(answer.json()) == {"error"}


@pytest.mark.parametrize(
    "path",
    [
        "/v2/repository/index",
        "/v2/repository/models/iris/load",
        "/v2/repository/models/iris/unload",
    ],
)
async def test_repository_needs_the_admin_token(admin_client: httpx.AsyncClient, path: str) -> None:
    anonymous = await admin_client.post(path)
    wrong = await admin_client.post(path, headers={"Authorization": "Bearer guess"})

    assert (anonymous.status_code, wrong.status_code) == (401, 401)
    assert anonymous.headers["WWW-Authenticate"] == "Bearer"
    assert set(wrong.json()) == {"error"}


async def test_repository_is_403_while_no_admin_token_is_configured(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.post("/v2/repository/index", headers=ADMIN)

    assert answer.status_code == 403
    assert set(answer.json()) == {"error"}


async def _wait_for_served_version(client: httpx.AsyncClient, name: str, version: str) -> None:
    """Polls the metadata (bounded: 10 s) until the registry poller has swapped versions."""
    with anyio.fail_after(10):
        for _ in range(1000):
            metadata = (await client.get(f"/v2/models/{name}")).json()
            if metadata["parameters"]["version"] == version:
                return
            await anyio.sleep(0.05)


async def test_a_new_version_is_served_by_v2_after_the_hot_swap(
    client: httpx.AsyncClient, registry_dir: Path, signing_key: Ed25519PrivateKey
) -> None:
    before = await client.post("/v2/models/iris/infer", json={"inputs": [IRIS_INPUT]})
    await anyio.to_thread.run_sync(train, "iris", registry_dir, signing_key)

    await _wait_for_served_version(client, "iris", "2")
    after = await client.post("/v2/models/iris/infer", json={"inputs": [IRIS_INPUT]})
    pinned = await client.post("/v2/models/iris/versions/1/infer", json={"inputs": [IRIS_INPUT]})
    metadata = await client.get("/v2/models/iris")

    assert before.json()["model_version"] == "1"
    assert after.json()["model_version"] == "2"
    assert pinned.json()["model_version"] == "1"
    assert metadata.json()["versions"] == ["1", "2"]
