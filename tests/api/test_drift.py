"""serving_feature_drift through the app: profiles from publish, inputs counted, PSI scraped."""

from pathlib import Path

import httpx
import joblib
import numpy as np
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from serving.core.errors import ArtifactRejectedError
from serving.repository.manifest import ModelManifest
from serving.repository.profile import FeatureProfile
from serving.repository.signing import TrustedKeys, sign
from tests.conftest import ClientFactory, SettingsFactory
from tests.metrics_text import Samples, parse, value
from tests.uploads import ADMIN, ADMIN_TOKEN, eventually, upload_parts
from training.data import load_dataset
from training.publish import publish

_PETAL_LENGTH = 2


def _bootstrap(rows: int, shift_sd: float = 0.0) -> np.ndarray:
    """In-distribution traffic: training rows drawn with replacement (seeded); optionally
    one feature moved by `shift_sd` of its training standard deviation."""
    train = load_dataset("iris").x_train
    drawn = train[np.random.default_rng(7).integers(0, len(train), rows)].copy()
    drawn[:, _PETAL_LENGTH] += shift_sd * train[:, _PETAL_LENGTH].std()
    return drawn


async def _send(client: httpx.AsyncClient, path: str, rows: np.ndarray) -> None:
    for chunk in np.array_split(rows, 10):
        answer = await client.post(path, json={"instances": chunk.tolist()})
        assert answer.status_code == 200, answer.text


async def _scrape_once_counted(client: httpx.AsyncClient, version: int, rows: int) -> Samples:
    scraped: Samples = {}

    async def counted() -> bool:
        nonlocal scraped
        scraped = parse((await client.get("/metrics")).text)
        labels = {"model": "iris", "version": str(version)}
        return value(scraped, "serving_feature_drift_rows", **labels) == rows

    await eventually(counted, timeout_seconds=10)
    return scraped


def _drift(scraped: Samples, version: int = 1) -> dict[str, float]:
    return {
        dict(labels)["feature"]: sample
        for (name, labels), sample in scraped.items()
        if name == "serving_feature_drift" and dict(labels)["version"] == str(version)
    }


async def test_in_distribution_traffic_drifts_little(
    client_for: ClientFactory, settings_for: SettingsFactory
) -> None:
    async with client_for(settings_for()) as client:
        await _send(client, "/models/iris/predict", _bootstrap(2000))
        drift = _drift(await _scrape_once_counted(client, 1, 2000))

    assert set(drift) == set(load_dataset("iris").feature_names)
    assert max(drift.values()) < 0.1, drift


async def test_a_shifted_feature_drifts_and_the_others_stay_low(
    client_for: ClientFactory, settings_for: SettingsFactory
) -> None:
    async with client_for(settings_for()) as client:
        rows = _bootstrap(2000, shift_sd=3.0)
        await _send(client, "/models/iris/predict", rows[:1000])
        tensor = {"name": "input-0", "shape": [1000, 4], "datatype": "FP64"}
        tensor["data"] = rows[1000:].ravel().tolist()
        answer = await client.post("/v2/models/iris/infer", json={"inputs": [tensor]})
        assert answer.status_code == 200, answer.text  # the Open Inference Protocol counts too
        drift = _drift(await _scrape_once_counted(client, 1, 2000))

    shifted = drift.pop("petal_length_cm")
    assert shifted > 1.0
    assert max(drift.values()) < 0.1, drift


async def test_the_window_keeps_only_the_latest_rows(
    client_for: ClientFactory, settings_for: SettingsFactory
) -> None:
    async with client_for(settings_for(drift_window="500")) as client:
        await _send(client, "/models/iris/predict", _bootstrap(500, shift_sd=3.0))
        shifted = _drift(await _scrape_once_counted(client, 1, 500))["petal_length_cm"]
        await _send(client, "/models/iris/predict", _bootstrap(500))

        async def shifted_rows_left() -> bool:
            scraped = parse((await client.get("/metrics")).text)
            rows = value(scraped, "serving_feature_drift_rows", model="iris", version="1")
            return rows == 500 and _drift(scraped)["petal_length_cm"] < 0.1

        await eventually(shifted_rows_left, timeout_seconds=10)

    assert shifted > 1.0


async def test_a_version_published_without_training_rows_has_no_drift_series(
    client_for: ClientFactory,
    settings_for: SettingsFactory,
    registry_dir: Path,
    signing_key: Ed25519PrivateKey,
) -> None:
    estimator = joblib.load(registry_dir / "iris" / "1" / "model.joblib")
    version = publish(estimator, name="iris", root=registry_dir, signing_key=signing_key)
    raw_manifest = orjson.loads(
        (registry_dir / "iris" / str(version) / "manifest.json").read_bytes()
    )

    async with client_for(settings_for()) as client:
        await _send(client, f"/models/iris/versions/{version}/predict", _bootstrap(100))
        await _send(client, "/models/iris/versions/1/predict", _bootstrap(100))
        scraped = await _scrape_once_counted(client, 1, 100)  # a flush has counted both

    assert "profile" not in raw_manifest  # written exactly as before profiles existed
    assert _drift(scraped, version) == {}
    assert value(scraped, "serving_feature_drift_rows", model="iris", version=str(version)) is None


async def test_an_upload_whose_profile_does_not_match_its_features_is_refused(
    client_for: ClientFactory, settings_for: SettingsFactory, registry_dir: Path
) -> None:
    manifest = ModelManifest.model_validate_json(
        (registry_dir / "iris" / "1" / "manifest.json").read_bytes()
    )
    assert manifest.profile is not None
    three_features = manifest.model_copy(update={"profile": manifest.profile[:3]})
    key = Ed25519PrivateKey.generate()
    signature = sign(three_features, key).model_dump_json().encode()
    artifact = (registry_dir / "iris" / "1" / "model.joblib").read_bytes()

    async with client_for(settings_for(admin_tokens=[ADMIN_TOKEN])) as client:
        answer = await client.post(
            "/models/iris/versions",
            files=upload_parts(three_features.to_json(), artifact, signature),
            headers=ADMIN,
        )

    assert answer.status_code == 422
    assert "profile" in answer.json()["error"]["message"]


def test_the_signature_covers_the_profile(registry_dir: Path) -> None:
    manifest = ModelManifest.model_validate_json(
        (registry_dir / "iris" / "1" / "manifest.json").read_bytes()
    )
    key = Ed25519PrivateKey.generate()
    signature = sign(manifest, key).model_dump_json().encode()
    assert manifest.profile is not None
    flattened = [FeatureProfile(edges=[], shares=[1.0, 0.0])] * manifest.n_features

    tampered = manifest.model_copy(update={"profile": flattened})

    TrustedKeys([key.public_key()]).verify(manifest, signature)
    with pytest.raises(ArtifactRejectedError, match="invalid signature"):
        TrustedKeys([key.public_key()]).verify(tampered, signature)
