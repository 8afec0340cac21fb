"""A pickle that would create a file when loaded never gets loaded without a valid signature.

Whether it arrives through the upload route or is dropped into the registry folder by
hand, the marker file it would create must never appear, and the version served before
keeps serving.
"""

import pickle
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from serving.repository.artifacts import sha256_hex
from serving.repository.manifest import ArtifactInfo, ModelManifest
from serving.repository.signing import TrustedKeys, sign
from serving.repository.store import ModelStore
from tests.conftest import ClientFactory, SettingsFactory
from tests.uploads import ADMIN, ADMIN_TOKEN, eventually, served_version, upload_parts


class _CreatesFileWhenUnpickled:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def _payload(marker: Path) -> bytes:
    return pickle.dumps(_CreatesFileWhenUnpickled(marker))


def _manifest_for(registry_dir: Path, artifact: bytes) -> ModelManifest:
    """iris v1's manifest, describing `artifact` instead."""
    manifest = ModelManifest.model_validate_json(
        (registry_dir / "iris/1/manifest.json").read_bytes()
    )
    return manifest.model_copy(update={"artifact": ArtifactInfo(sha256=sha256_hex(artifact))})


def _signature(manifest: ModelManifest, key: Ed25519PrivateKey) -> bytes:
    return sign(manifest, key).model_dump_json().encode()


def _variants(
    registry_dir: Path, marker: Path, trusted: Ed25519PrivateKey
) -> dict[str, tuple[ModelManifest, bytes, bytes | None]]:
    """(manifest, artifact, signature) for each way the malicious pickle might be smuggled in."""
    evil = _payload(marker)
    evil_manifest = _manifest_for(registry_dir, evil)
    benign_artifact = (registry_dir / "iris/1/model.joblib").read_bytes()
    benign_manifest = _manifest_for(registry_dir, benign_artifact)
    return {
        "missing-signature": (evil_manifest, evil, None),
        "unknown-key": (
            evil_manifest,
            evil,
            _signature(evil_manifest, Ed25519PrivateKey.generate()),
        ),
        # a real signature over a different manifest: the manifest was altered after signing
        "invalid-signature": (evil_manifest, evil, _signature(benign_manifest, trusted)),
        # a correctly signed manifest whose artifact was swapped for the pickle
        "swapped-artifact": (benign_manifest, evil, _signature(benign_manifest, trusted)),
    }


_VARIANTS = ["missing-signature", "unknown-key", "invalid-signature", "swapped-artifact"]
_REASONS = {
    "missing-signature": "missing signature",
    "unknown-key": "unknown key",
    "invalid-signature": "invalid signature",
    "swapped-artifact": "sha256 does not match",
}


@pytest.fixture
async def admin_client(
    client_for: ClientFactory, settings_for: SettingsFactory
) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(settings_for(admin_tokens=[ADMIN_TOKEN])) as client:
        yield client


def test_the_payload_really_creates_its_file_when_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    pickle.loads(_payload(marker))  # the control: proves the tests below could fail

    assert marker.exists()


@pytest.mark.parametrize("variant", _VARIANTS)
async def test_malicious_upload_is_rejected_unloaded_and_unstored(
    admin_client: httpx.AsyncClient,
    registry_dir: Path,
    tmp_path: Path,
    signing_key: Ed25519PrivateKey,
    variant: str,
) -> None:
    marker = tmp_path / "pwned"
    manifest, artifact, signature = _variants(registry_dir, marker, signing_key)[variant]

    answer = await admin_client.post(
        "/models/iris/versions", files=upload_parts(manifest, artifact, signature), headers=ADMIN
    )

    assert answer.status_code == 422
    assert _REASONS[variant] in answer.json()["error"]["message"]
    assert not marker.exists()
    assert sorted(p.name for p in (registry_dir / "iris").iterdir() if p.is_dir()) == ["1"]


def _drop_version(
    folder: Path, manifest: ModelManifest, artifact: bytes, sig: bytes | None
) -> None:
    """Write a version folder by hand, as a copy onto a shared volume would."""
    folder.mkdir()
    (folder / "model.joblib").write_bytes(artifact)
    if sig is not None:
        (folder / "signature.json").write_bytes(sig)
    (folder / "manifest.json").write_bytes(manifest.with_version(int(folder.name)).to_json())


@pytest.mark.parametrize("variant", _VARIANTS)
async def test_malicious_version_dropped_into_the_registry_is_never_loaded(
    client_for: ClientFactory,
    settings_for: SettingsFactory,
    registry_dir: Path,
    tmp_path: Path,
    signing_key: Ed25519PrivateKey,
    variant: str,
) -> None:
    marker = tmp_path / "pwned"
    manifest, artifact, signature = _variants(registry_dir, marker, signing_key)[variant]
    store = ModelStore(registry_dir, TrustedKeys([signing_key.public_key()]))

    async with client_for(settings_for()) as client:
        _drop_version(registry_dir / "iris" / "2", manifest, artifact, signature)
        store.set_alias("iris", "production", 2)  # what `serving promote iris 2` does on disk

        async def failure_is_shown() -> bool:
            return "2" in (await client.get("/models/iris")).json()["failures"]

        await eventually(failure_is_shown, timeout_seconds=5)
        detail = (await client.get("/models/iris")).json()
        still_served = await served_version(client)
        explicit = await client.post(
            "/models/iris/versions/2/predict", json={"instances": [[5.1, 3.5, 1.4, 0.2]]}
        )

    assert _REASONS[variant] in detail["failures"]["2"]
    assert (detail["aliases"], detail["default_version"]) == ({"production": 2}, 1)
    assert still_served == 1
    assert explicit.status_code in (422, 503)
    assert explicit.json()["error"]["code"] in ("artifact_rejected", "model_unavailable")
    assert not marker.exists()


@pytest.mark.parametrize("is_promoted", [False, True], ids=["highest", "promoted"])
async def test_a_worker_starting_with_a_malicious_default_serves_the_version_before_it(
    client_for: ClientFactory,
    settings_for: SettingsFactory,
    registry_dir: Path,
    tmp_path: Path,
    signing_key: Ed25519PrivateKey,
    is_promoted: bool,
) -> None:
    marker = tmp_path / "pwned"
    manifest, artifact, signature = _variants(registry_dir, marker, signing_key)["unknown-key"]
    _drop_version(registry_dir / "iris" / "2", manifest, artifact, signature)
    if is_promoted:
        store = ModelStore(registry_dir, TrustedKeys([signing_key.public_key()]))
        store.set_alias("iris", "production", 1)
        store.set_alias("iris", "production", 2)

    async with client_for(settings_for()) as client:
        served = await served_version(client)
        failures = (await client.get("/models/iris")).json()["failures"]

    assert served == 1  # what workers that were already running kept serving
    assert "unknown key" in failures["2"]
    assert not marker.exists()
