"""The upload route's optional `compiled` part: stored with the version when the signed
manifest lists it, and a 422 whenever the part and the manifest disagree."""

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from tests.conftest import ClientFactory, SettingsFactory
from tests.uploads import ADMIN, ADMIN_TOKEN, parts_of, signed_iris, upload_parts
from training.data import load_dataset
from training.publish import prepare


@pytest.fixture
async def admin_client(
    client_for: ClientFactory, settings_for: SettingsFactory
) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(settings_for(admin_tokens=[ADMIN_TOKEN])) as client:
        yield client


def _versions(registry_dir: Path) -> list[str]:
    return sorted(entry.name for entry in (registry_dir / "iris").iterdir() if entry.is_dir())


async def test_the_compiled_part_is_stored_and_serves_the_new_version(
    admin_client: httpx.AsyncClient, registry_dir: Path, signing_key: Ed25519PrivateKey
) -> None:
    signed = signed_iris(registry_dir, signing_key)

    answer = await admin_client.post("/models/iris/versions", files=parts_of(signed), headers=ADMIN)
    version = await admin_client.get("/models/iris/versions/2")

    assert answer.status_code == 201, answer.text
    assert (registry_dir / "iris" / "2" / "model.onnx").read_bytes() == signed.compiled
    assert version.json()["runtime"]["name"] == "onnx"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("left-out", "compiled file the manifest lists is missing"),
        ("altered", "compiled file sha256 does not match"),
    ],
)
async def test_a_compiled_part_that_does_not_match_the_manifest_is_refused(
    admin_client: httpx.AsyncClient,
    registry_dir: Path,
    signing_key: Ed25519PrivateKey,
    change: str,
    reason: str,
) -> None:
    signed = signed_iris(registry_dir, signing_key)
    parts = upload_parts(signed.manifest, signed.artifact, signed.signature)
    if change == "altered":
        assert signed.compiled is not None
        parts["compiled"] = ("model.onnx", signed.compiled + b"\0", "application/octet-stream")

    answer = await admin_client.post("/models/iris/versions", files=parts, headers=ADMIN)

    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "artifact_rejected"
    assert reason in answer.json()["error"]["message"]
    assert _versions(registry_dir) == ["1"]


async def test_a_compiled_part_the_manifest_does_not_list_is_refused(
    admin_client: httpx.AsyncClient, registry_dir: Path, signing_key: Ed25519PrivateKey
) -> None:
    data = load_dataset("iris")
    logged = make_pipeline(FunctionTransformer(np.log1p), LogisticRegression(max_iter=500))
    signed = prepare(logged.fit(data.x_train, data.y_train), name="iris", signing_key=signing_key)
    smuggled = signed_iris(registry_dir, signing_key).compiled
    assert smuggled is not None and signed.compiled is None
    parts = upload_parts(signed.manifest, signed.artifact, signed.signature)
    parts["compiled"] = ("model.onnx", smuggled, "application/octet-stream")

    answer = await admin_client.post("/models/iris/versions", files=parts, headers=ADMIN)

    assert answer.status_code == 422
    assert "a compiled file the manifest does not list" in answer.json()["error"]["message"]
    assert _versions(registry_dir) == ["1"]
