"""Requests naming a version are served on demand, within a bound, and idle ones are unloaded."""

from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from serving.repository.signing import TrustedKeys
from serving.repository.store import ModelStore
from tests.conftest import ClientFactory, SettingsFactory
from tests.uploads import eventually, signed_iris
from tests.waiting import RegistryPolls

_ROW = {"instances": [[5.1, 3.5, 1.4, 0.2]]}


def _publish_iris_versions(registry_dir: Path, key: Ed25519PrivateKey, count: int) -> ModelStore:
    store = ModelStore(registry_dir, TrustedKeys([key.public_key()]))
    for _ in range(count):
        signed = signed_iris(registry_dir, key)
        signed.publish_to(store)
    return store


async def _loaded(client: httpx.AsyncClient) -> list[int]:
    versions: list[int] = (await client.get("/models/iris")).json()["loaded_versions"]
    return versions


async def test_every_existing_version_is_served_when_named(
    client_for: ClientFactory,
    settings_for: SettingsFactory,
    registry_dir: Path,
    signing_key: Ed25519PrivateKey,
) -> None:
    _publish_iris_versions(registry_dir, signing_key, 3)

    async with client_for(settings_for(max_extra_versions=1)) as client:
        answers = [
            await client.post(f"/models/iris/versions/{v}/predict", json=_ROW) for v in (1, 2, 3)
        ]
        by_body = await client.post("/predict", json={"model": "iris", "version": 2, **_ROW})
        loaded = await _loaded(client)

    assert [a.json()["version"] for a in answers] == [1, 2, 3]
    assert by_body.json()["version"] == 2
    assert len(loaded) <= 2  # the default (v4) plus at most max_extra_versions others
    assert 4 in loaded


async def test_a_named_version_nobody_asks_for_is_unloaded_unless_an_alias_points_at_it(
    client_for: ClientFactory,
    settings_for: SettingsFactory,
    registry_dir: Path,
    signing_key: Ed25519PrivateKey,
    caplog: pytest.LogCaptureFixture,
) -> None:
    polls = RegistryPolls(caplog)
    store = _publish_iris_versions(registry_dir, signing_key, 2)
    store.set_alias("iris", "staging", 2)
    settings = settings_for(unload_idle_seconds=0.3, poll_interval_seconds=0.1)

    async with client_for(settings) as client:
        for version in (1, 2):
            await client.post(f"/models/iris/versions/{version}/predict", json=_ROW)
        assert await _loaded(client) == [1, 2, 3]

        async def is_unloaded() -> bool:
            return await _loaded(client) == [2, 3]

        await eventually(is_unloaded, timeout_seconds=3)
        await polls.wait_beyond(polls.count + 2)  # three more polls: the aliased version stays
        assert await _loaded(client) == [2, 3]
