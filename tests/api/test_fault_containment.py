"""One model's unreadable or corrupt files stay that model's problem, at start-up and later.

Through the real app's lifespan, with the damage written on disk: a garbage aliases.json,
an alias table that is a folder (read fails with an OSError), a corrupt manifest, a
half-copied artifact. Other models keep loading, serving and moving versions meanwhile;
a version that failed to load is retried with backoff and heals without a restart.
"""

import json
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from serving.repository.aliases import ALIAS_FILE
from serving.repository.signing import TrustedKeys
from serving.repository.store import ModelStore
from tests.conftest import ClientFactory, SettingsFactory
from tests.uploads import eventually

GARBAGE = b"\x00{not json at all"


@pytest.fixture
def store(registry_dir: Path, signing_key: Ed25519PrivateKey) -> ModelStore:
    """The test's registry, written as a `serving` command or another replica would."""
    return ModelStore(registry_dir, TrustedKeys([signing_key.public_key()]))


def _copy_version(root: Path, name: str, version: int) -> Path:
    """Version `version` of `name`: a copy of v1 (the signature does not cover the number)."""
    folder = root / name / str(version)
    shutil.copytree(root / name / "1", folder)
    return folder


def _point_production_at(root: Path, name: str, version: int) -> None:
    """Written by hand, as an operator's copy would: no check that the version loads."""
    table = {"aliases": {"production": version}, "history": {"production": [1, version]}}
    (root / name / ALIAS_FILE).write_text(json.dumps(table))


def _names_in(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


async def served_version(client: httpx.AsyncClient, name: str) -> int:
    """The version that answers a prediction of `name` (its own example row)."""
    example = (await _detail(client, name))["manifest"]["example"]
    answer = await client.post(f"/models/{name}/predict", json={"instances": [example]})
    assert answer.status_code == 200, answer.text
    version: int = answer.json()["version"]
    return version


async def _detail(client: httpx.AsyncClient, name: str) -> dict[str, Any]:
    answer = await client.get(f"/models/{name}")
    assert answer.status_code == 200, answer.text
    detail: dict[str, Any] = answer.json()
    return detail


async def test_a_garbage_alias_table_at_start_up_is_that_model_alone(
    client_for: ClientFactory, settings_for: SettingsFactory, registry_dir: Path
) -> None:
    (registry_dir / "iris" / ALIAS_FILE).write_bytes(GARBAGE)

    async with client_for(settings_for()) as client:
        ready = await client.get("/health/ready")
        assert ready.status_code == 200
        assert await served_version(client, "diabetes") == 1
        assert await served_version(client, "breast_cancer") == 1
        iris = await client.post("/models/iris/predict", json={"instances": [[1, 2, 3, 4]]})
        assert iris.status_code == 503, iris.text
        assert ALIAS_FILE in iris.json()["error"]["message"]
        assert (await _detail(client, "iris"))["default_version"] is None


async def test_promotions_reach_other_models_while_alias_tables_are_broken(
    client_for: ClientFactory,
    settings_for: SettingsFactory,
    registry_dir: Path,
    store: ModelStore,
) -> None:
    async with client_for(settings_for()) as client:
        assert await served_version(client, "iris") == 1
        (registry_dir / "iris" / ALIAS_FILE).write_bytes(GARBAGE)
        (registry_dir / "breast_cancer" / ALIAS_FILE).mkdir()  # reading it is an OSError
        _copy_version(registry_dir, "diabetes", 2)
        store.set_alias("diabetes", "production", 2)

        async def diabetes_moved() -> bool:
            return await served_version(client, "diabetes") == 2

        await eventually(diabetes_moved, timeout_seconds=15)
        assert await served_version(client, "iris") == 1
        assert await served_version(client, "breast_cancer") == 1


async def test_a_corrupt_manifest_keeps_the_previous_version_serving(
    client_for: ClientFactory, settings_for: SettingsFactory, registry_dir: Path
) -> None:
    async with client_for(settings_for()) as client:
        folder = _copy_version(registry_dir, "iris", 2)
        (folder / "manifest.json").write_bytes(GARBAGE)
        _point_production_at(registry_dir, "iris", 2)

        async def failure_shown() -> bool:
            return "2" in (await _detail(client, "iris"))["failures"]

        await eventually(failure_shown, timeout_seconds=15)
        assert "invalid manifest" in (await _detail(client, "iris"))["failures"]["2"]
        assert await served_version(client, "iris") == 1


async def test_a_half_copied_artifact_heals_without_a_restart(
    client_for: ClientFactory, settings_for: SettingsFactory, registry_dir: Path
) -> None:
    async with client_for(settings_for()) as client:
        folder = _copy_version(registry_dir, "iris", 2)
        artifact = (folder / "model.joblib").read_bytes()
        (folder / "model.joblib").write_bytes(artifact[: len(artifact) // 2])
        _point_production_at(registry_dir, "iris", 2)

        async def failure_shown() -> bool:
            return "2" in (await _detail(client, "iris"))["failures"]

        await eventually(failure_shown, timeout_seconds=15)
        assert await served_version(client, "iris") == 1  # the previous version serves
        (folder / "model.joblib").write_bytes(artifact)  # the copy completes

        async def healed() -> bool:
            return await served_version(client, "iris") == 2

        await eventually(healed, timeout_seconds=40)  # backoff is capped at 30 s
        assert (await _detail(client, "iris"))["failures"] == {}


async def test_nothing_is_created_for_a_model_that_does_not_exist(
    client_for: ClientFactory, settings_for: SettingsFactory, registry_dir: Path
) -> None:
    admin = {"Authorization": "Bearer admin-for-this-test"}
    async with client_for(settings_for(admin_tokens=["admin-for-this-test"])) as client:
        moves = [
            client.put("/models/ghost/aliases/staging", json={"version": 1}, headers=admin),
            client.post("/models/ghost/aliases/production/rollback", headers=admin),
            client.delete("/models/ghost/aliases/production", headers=admin),
            client.get("/models/ghost/versions/production"),
            client.post("/models/ghost/predict", json={"instances": [[1, 2, 3, 4]]}),
            client.put("/models/iris%0A/aliases/staging", json={"version": 1}, headers=admin),
        ]
        for move in moves:
            assert (await move).status_code == 404

    assert _names_in(registry_dir) == ["breast_cancer", "diabetes", "iris"]


async def test_alias_names_the_api_refuses(
    client_for: ClientFactory, settings_for: SettingsFactory, registry_dir: Path
) -> None:
    admin = {"Authorization": "Bearer admin-for-this-test"}
    names_before = _names_in(registry_dir / "iris")
    async with client_for(settings_for(admin_tokens=["admin-for-this-test"])) as client:
        for alias in ["Bad%20Alias!", "123", "staging%0A", "x" * 65]:
            answer = await client.put(
                f"/models/iris/aliases/{alias}", json={"version": 1}, headers=admin
            )
            assert answer.status_code == 422, (alias, answer.text)

    assert _names_in(registry_dir / "iris") == names_before
