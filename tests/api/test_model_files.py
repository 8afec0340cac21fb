"""Artifacts on disk that fail verification are refused at load; the rest keep serving."""

import logging
from pathlib import Path

import pytest
import sklearn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from serving.repository.manifest import ModelManifest
from serving.repository.signing import public_key_text, sign
from tests.conftest import ClientFactory, SettingsFactory


def _flip_one_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


async def test_a_corrupted_artifact_is_refused_and_named_while_others_serve(
    client_for: ClientFactory,
    settings_for: SettingsFactory,
    registry_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    artifact = registry_dir / "iris" / "1" / "model.joblib"
    _flip_one_byte(artifact)

    with caplog.at_level(logging.ERROR, logger="serving.registry.registry"):
        async with client_for(settings_for()) as client:
            ready = await client.get("/health/ready")
            iris = await client.get("/models/iris")
            forest = await client.post(
                "/models/breast_cancer/predict", json={"instances": [[1.0] * 30]}
            )

    assert ready.status_code == 200
    assert forest.status_code == 200
    assert iris.json()["default_version"] is None
    assert "sha256" in iris.json()["failures"]["1"]
    assert any(str(artifact) in record.getMessage() for record in caplog.records)


async def test_a_version_written_by_another_sklearn_minor_is_refused_with_both_versions(
    client_for: ClientFactory,
    settings_for: SettingsFactory,
    registry_dir: Path,
    signing_key: Ed25519PrivateKey,
) -> None:
    folder = registry_dir / "iris" / "1"
    manifest = ModelManifest.model_validate_json((folder / "manifest.json").read_bytes())
    older = manifest.model_copy(update={"sklearn_version": "1.0.2"})
    (folder / "manifest.json").write_bytes(older.to_json())
    (folder / "signature.json").write_text(sign(older, signing_key).model_dump_json())

    # Pickles are version-bound; the compiled form is not (tests/api/test_runtimes.py).
    async with client_for(settings_for(runtime="sklearn")) as client:
        failure = (await client.get("/models/iris")).json()["failures"]["1"]

    assert "scikit-learn 1.0.2" in failure
    assert f"scikit-learn {sklearn.__version__}" in failure


async def test_an_untrusted_signer_is_refused(
    client_for: ClientFactory, settings_for: SettingsFactory
) -> None:
    stranger = public_key_text(Ed25519PrivateKey.generate().public_key())

    async with client_for(settings_for(trusted_keys=[stranger])) as client:
        ready = await client.get("/health/ready")
        models = (await client.get("/models")).json()["models"]

    assert ready.status_code == 503
    assert len(models) == 3
    assert all("unknown key" in m["failures"]["1"] for m in models)
