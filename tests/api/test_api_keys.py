"""SERVING_API_KEYS guards predictions and read routes; probes and metrics stay open."""

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.conftest import ClientFactory, SettingsFactory
from tests.uploads import ADMIN, ADMIN_TOKEN

API_KEY = "api-key-for-tests"
_ROW = {"instances": [[5.1, 3.5, 1.4, 0.2]]}
_GUARDED = [
    ("POST", "/predict", {"model": "iris", **_ROW}),
    ("POST", "/models/iris/predict", _ROW),
    ("POST", "/models/iris/versions/1/predict", _ROW),
    ("GET", "/models", None),
    ("GET", "/models/iris", None),
    ("GET", "/models/iris/versions/1", None),
]
_GUARDED_IDS = ["predict", "model-predict", "version-predict", "list", "model", "manifest"]


@pytest.fixture
async def keyed_client(
    client_for: ClientFactory, settings_for: SettingsFactory
) -> AsyncIterator[httpx.AsyncClient]:
    settings = settings_for(api_keys=[API_KEY, "second-key"], admin_tokens=[ADMIN_TOKEN])
    async with client_for(settings) as client:
        yield client


@pytest.mark.parametrize(("method", "path", "body"), _GUARDED, ids=_GUARDED_IDS)
@pytest.mark.parametrize("authorization", [None, "Bearer nope", f"Token {API_KEY}"])
async def test_guarded_routes_without_a_valid_key_are_401_with_a_bearer_challenge(
    keyed_client: httpx.AsyncClient,
    method: str,
    path: str,
    body: object,
    authorization: str | None,
) -> None:
    headers = {"Authorization": authorization} if authorization else {}

    answer = await keyed_client.request(method, path, json=body, headers=headers)

    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert answer.json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize(("method", "path", "body"), _GUARDED, ids=_GUARDED_IDS)
@pytest.mark.parametrize("token", [API_KEY, "second-key", ADMIN_TOKEN])
async def test_any_configured_key_or_an_admin_token_opens_guarded_routes(
    keyed_client: httpx.AsyncClient, method: str, path: str, body: object, token: str
) -> None:
    headers = {"Authorization": f"Bearer {token}"}

    answer = await keyed_client.request(method, path, json=body, headers=headers)

    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize("path", ["/health/live", "/health/ready", "/metrics"])
async def test_probes_and_metrics_need_no_key(keyed_client: httpx.AsyncClient, path: str) -> None:
    answer = await keyed_client.get(path)

    assert answer.status_code == 200


async def test_an_api_key_does_not_open_the_management_routes(
    keyed_client: httpx.AsyncClient,
) -> None:
    headers = {"Authorization": f"Bearer {API_KEY}"}

    answer = await keyed_client.put(
        "/models/iris/aliases/production", json={"version": 1}, headers=headers
    )
    allowed = await keyed_client.put(
        "/models/iris/aliases/production", json={"version": 1}, headers=ADMIN
    )

    assert answer.status_code == 401
    assert allowed.status_code == 200


async def test_without_api_keys_predictions_and_reads_are_open(client: httpx.AsyncClient) -> None:
    predicted = await client.post("/models/iris/predict", json=_ROW)
    listed = await client.get("/models")

    assert (predicted.status_code, listed.status_code) == (200, 200)
