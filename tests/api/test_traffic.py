"""Traffic routes over HTTP: PUT/DELETE /models/{name}/traffic, validation, 409s, GET, routing."""

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from serving.registry.traffic import choose_alias
from tests.conftest import ClientFactory, SettingsFactory
from tests.traffic_versions import IRIS_ROWS
from tests.uploads import ADMIN, ADMIN_TOKEN, eventually

_NO_POLL = 3600.0  # only the route's own wake-up can make the worker follow
_JSON_ADMIN = {**ADMIN, "Content-Type": "application/json"}
_VERSIONS = {"production": 1, "canary": 2, "candidate": 3, "broken": 4, "unloadable": 5}


@pytest.fixture
async def admin_client(
    client_for: ClientFactory, settings_for: SettingsFactory, traffic_registry: Path
) -> AsyncIterator[httpx.AsyncClient]:
    settings = settings_for(admin_tokens=[ADMIN_TOKEN], poll_interval_seconds=_NO_POLL)
    async with client_for(settings) as client:
        yield client


async def _put(client: httpx.AsyncClient, body: Any, name: str = "iris") -> httpx.Response:
    path = f"/models/{name}/traffic"
    return await client.put(path, content=orjson.dumps(body), headers=_JSON_ADMIN)


def _stored_traffic(registry: Path) -> list[Path]:
    return list(registry.glob("*/traffic.json"))


async def _follow(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    """PUT the traffic, then wait until this worker routes by it (its refresh has run)."""
    answer = await _put(client, body)
    assert answer.status_code == 200, answer.text
    expected = {"shadow": None, **body}

    async def followed() -> bool:
        return bool((await client.get("/models/iris")).json()["traffic"] == expected)

    await eventually(followed, timeout_seconds=2)


async def _version(client: httpx.AsyncClient, routing_key: str | None = None, **body: Any) -> int:
    headers = {"X-Routing-Key": routing_key} if routing_key is not None else {}
    answer = await client.post(
        "/models/iris/predict", json={"instances": IRIS_ROWS[:1], **body}, headers=headers
    )
    assert answer.status_code == 200, answer.text
    version: int = answer.json()["version"]
    return version


async def test_put_stores_the_traffic_and_get_shows_it(
    admin_client: httpx.AsyncClient, traffic_registry: Path
) -> None:
    body = {"weights": {"production": 90, "canary": 10}, "shadow": "candidate"}

    answer = await _put(admin_client, body)

    assert answer.status_code == 200, answer.text
    assert answer.json() == {"name": "iris", **body}
    stored = orjson.loads((traffic_registry / "iris" / "traffic.json").read_bytes())
    assert stored == body
    await _follow(admin_client, body)  # the same PUT again, then wait for the worker
    assert (await admin_client.get("/models/iris")).json()["traffic"] == body
    listed = (await admin_client.get("/models")).json()["models"]
    assert next(m for m in listed if m["name"] == "iris")["traffic"] == body


async def test_delete_goes_back_to_production_alone(
    admin_client: httpx.AsyncClient, traffic_registry: Path
) -> None:
    await _follow(admin_client, {"weights": {"canary": 100}, "shadow": "candidate"})
    assert await _version(admin_client) == 2

    answer = await admin_client.delete("/models/iris/traffic", headers=ADMIN)

    default = {"weights": {"production": 100}, "shadow": None}
    assert answer.status_code == 200
    assert answer.json() == {"name": "iris", **default}
    assert not (traffic_registry / "iris" / "traffic.json").exists()

    async def followed() -> bool:
        return bool((await admin_client.get("/models/iris")).json()["traffic"] == default)

    await eventually(followed, timeout_seconds=2)
    assert await _version(admin_client) == 1


@pytest.mark.parametrize(
    "body",
    [
        {"weights": {"production": 90, "canary": 20}},  # sums to 110
        {"weights": {"production": 50}},  # sums to 50
        {"weights": {}},
        {"weights": {"production": 110, "canary": -10}},
        {"weights": {"production": 90.0, "canary": 10}},
        {"weights": {"production": 90.5, "canary": 9.5}},
        {"weights": {"production": True, "canary": 99}},
        {"weights": {"production": "90", "canary": 10}},
        {"weights": {"production": None, "canary": 100}},
        {"weights": [["production", 100]]},
        {"weights": {"Production!": 100}},
        {"weights": {"123": 100}},
        {"weights": {"production": 100}, "shadow": 7},
        {"weights": {"production": 100}, "shadow": "Not An Alias"},
        {"weights": {"production": 100}, "extra": 1},
        {"shadow": "candidate"},
        {"weights": {f"a{i}": 0 for i in range(1000)} | {"production": 100}},
        [],
        "production=100",
    ],
)
async def test_weights_that_are_not_integers_summing_to_100_are_422(
    admin_client: httpx.AsyncClient, traffic_registry: Path, body: Any
) -> None:
    answer = await _put(admin_client, body)

    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "malformed_request"
    assert not (traffic_registry / "iris" / "traffic.json").exists()


async def test_malformed_json_is_422(admin_client: httpx.AsyncClient) -> None:
    answer = await admin_client.put("/models/iris/traffic", content=b"{", headers=_JSON_ADMIN)
    assert answer.status_code == 422


@pytest.mark.parametrize(
    ("name", "body", "code"),
    [
        ("iris", {"weights": {"production": 90, "staging": 10}}, "alias_not_found"),
        ("iris", {"weights": {"production": 100}, "shadow": "staging"}, "alias_not_found"),
        ("diabetes", {"weights": {"production": 90, "canary": 10}}, "alias_not_found"),
        ("nosuchmodel", {"weights": {"production": 100}}, "model_not_found"),
        ("Iris", {"weights": {"production": 100}}, "model_not_found"),
    ],
)
async def test_an_unknown_alias_or_model_is_404_and_nothing_is_stored(
    admin_client: httpx.AsyncClient,
    traffic_registry: Path,
    name: str,
    body: dict[str, Any],
    code: str,
) -> None:
    answer = await _put(admin_client, body, name)

    assert answer.status_code == 404, answer.text
    assert answer.json()["error"]["code"] == code
    assert not _stored_traffic(traffic_registry)
    assert not (traffic_registry / "nosuchmodel").exists()


async def test_delete_of_an_unknown_model_is_404(admin_client: httpx.AsyncClient) -> None:
    answer = await admin_client.delete("/models/nosuchmodel/traffic", headers=ADMIN)
    assert answer.status_code == 404


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
async def test_the_traffic_routes_need_an_admin_token(
    admin_client: httpx.AsyncClient, method: str
) -> None:
    body = orjson.dumps({"weights": {"production": 100}})
    missing = await admin_client.request(method, "/models/iris/traffic", content=body)
    wrong = await admin_client.request(
        method, "/models/iris/traffic", content=body, headers={"Authorization": "Bearer nope"}
    )

    assert missing.status_code == wrong.status_code == 401
    assert wrong.headers["WWW-Authenticate"] == "Bearer"


async def test_the_traffic_routes_are_403_while_no_admin_token_is_configured(
    client_for: ClientFactory, settings_for: SettingsFactory, traffic_registry: Path
) -> None:
    async with client_for(settings_for()) as client:
        answer = await _put(client, {"weights": {"production": 100}})
    assert answer.status_code == 403


async def test_an_alias_the_traffic_uses_cannot_be_removed_nor_its_version_deleted(
    admin_client: httpx.AsyncClient,
) -> None:
    await _follow(
        admin_client, {"weights": {"production": 90, "canary": 10}, "shadow": "candidate"}
    )

    for alias in ("canary", "candidate"):
        refused = await admin_client.delete(f"/models/iris/aliases/{alias}", headers=ADMIN)
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"]["code"] == "alias_in_use"
    for version in (2, 3):
        in_use = await admin_client.delete(f"/models/iris/versions/{version}", headers=ADMIN)
        assert in_use.status_code == 409
    detail = (await admin_client.get("/models/iris")).json()
    assert detail["aliases"] == _VERSIONS

    await admin_client.delete("/models/iris/traffic", headers=ADMIN)
    removed = await admin_client.delete("/models/iris/aliases/candidate", headers=ADMIN)
    assert removed.status_code == 204


async def test_a_routing_key_always_lands_on_the_alias_its_bucket_names(
    admin_client: httpx.AsyncClient,
) -> None:
    weights = {"production": 50, "canary": 50}
    await _follow(admin_client, {"weights": weights})

    keys = [f"user-{i}" for i in range(60)]
    seen: dict[str, set[int]] = {key: set() for key in keys}
    for _ in range(3):
        for key in keys:
            seen[key].add(await _version(admin_client, key))

    expected = {key: {_VERSIONS[choose_alias(weights, key)]} for key in keys}
    assert seen == expected
    assert {v for versions in seen.values() for v in versions} == {1, 2}


async def test_without_a_routing_key_the_choice_is_random_by_weight(
    admin_client: httpx.AsyncClient,
) -> None:
    await _follow(admin_client, {"weights": {"production": 70, "canary": 30}})

    counts = Counter([await _version(admin_client) for _ in range(400)])

    # Binomial(400, 0.3): mean 120, sd 9.2; 60..180 is more than 6 sd either side.
    assert set(counts) == {1, 2}
    assert 60 <= counts[2] <= 180, counts


async def test_requests_that_name_a_version_or_alias_bypass_the_split(
    admin_client: httpx.AsyncClient,
) -> None:
    await _follow(admin_client, {"weights": {"canary": 100}})
    assert await _version(admin_client) == 2

    assert await _version(admin_client, version=1) == 1
    assert await _version(admin_client, version="production") == 1
    assert await _version(admin_client, version="candidate") == 3
    pinned = await admin_client.post(
        "/models/iris/versions/production/predict", json={"instances": IRIS_ROWS[:1]}
    )
    assert pinned.json()["version"] == 1
    anywhere = await admin_client.post("/predict", json={"model": "iris", "instances": [[1] * 4]})
    assert anywhere.json()["version"] == 2


def _v2_body() -> dict[str, Any]:
    return {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [1] * 4}]}


async def test_v2_infer_without_a_version_follows_the_split(
    admin_client: httpx.AsyncClient,
) -> None:
    await _follow(admin_client, {"weights": {"canary": 100}})

    routed = await admin_client.post("/v2/models/iris/infer", json=_v2_body())
    pinned = await admin_client.post("/v2/models/iris/versions/1/infer", json=_v2_body())

    assert routed.status_code == 200, routed.text
    assert routed.json()["model_version"] == "2"
    assert pinned.json()["model_version"] == "1"


async def test_errors_are_counted_by_the_version_that_refused_them(
    admin_client: httpx.AsyncClient,
) -> None:
    await _follow(admin_client, {"weights": {"canary": 100}})

    refused = await admin_client.post("/models/iris/predict", json={"instances": [[1, 2]]})

    assert refused.status_code == 422
    scraped = (await admin_client.get("/metrics")).text
    assert (
        'serving_prediction_errors_total{code="invalid_input",model="iris",version="2"} 1.0'
        in scraped
    )


async def test_a_damaged_traffic_file_keeps_the_model_serving(
    client_for: ClientFactory, settings_for: SettingsFactory, traffic_registry: Path
) -> None:
    (traffic_registry / "iris" / "traffic.json").write_bytes(b'{"weights": {"canary": 7}}')

    async with client_for(settings_for()) as client:
        assert await _version(client) == 1
        assert (await client.get("/models/iris")).json()["traffic"]["weights"] == {
            "production": 100
        }
        other = await client.post("/models/diabetes/predict", json={"instances": [[0.0] * 10]})
        assert other.status_code == 200
