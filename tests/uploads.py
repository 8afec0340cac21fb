"""Building version uploads for tests: real estimators, real signatures, real multipart parts."""

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import joblib
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from serving.repository.manifest import ModelManifest
from training.publish import SignedVersion, prepare

ADMIN_TOKEN = "admin-token-for-tests"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def signed_iris(registry_dir: Path, key: Ed25519PrivateKey, name: str = "iris") -> SignedVersion:
    """The trained iris pipeline of version 1, signed by `key` as a new version of `name`."""
    estimator = joblib.load(registry_dir / "iris" / "1" / "model.joblib")
    return prepare(estimator, name=name, signing_key=key, example=[5.1, 3.5, 1.4, 0.2])


def upload_parts(
    manifest: ModelManifest | bytes, artifact: bytes, signature: bytes | None
) -> dict[str, tuple[str, bytes, str]]:
    raw_manifest = manifest if isinstance(manifest, bytes) else manifest.to_json()
    parts = {
        "artifact": ("model.joblib", artifact, "application/octet-stream"),
        "manifest": ("manifest.json", raw_manifest, "application/json"),
    }
    if signature is not None:
        parts["signature"] = ("signature.json", signature, "application/json")
    return parts


def parts_of(signed: SignedVersion) -> dict[str, tuple[str, bytes, str]]:
    parts = upload_parts(signed.manifest, signed.artifact, signed.signature)
    if signed.compiled is not None:
        parts["compiled"] = ("model.onnx", signed.compiled, "application/octet-stream")
    return parts


async def eventually(
    check: Callable[[], Any], timeout_seconds: float = 5.0, interval_seconds: float = 0.05
) -> float:
    """Await `check()` until it returns true; the seconds it took. Raises after the timeout."""
    started = time.monotonic()
    while True:
        if await check():
            return time.monotonic() - started
        if time.monotonic() - started > timeout_seconds:
            raise AssertionError(f"condition not met within {timeout_seconds}s")
        await anyio.sleep(interval_seconds)


async def served_version(client: httpx.AsyncClient, name: str = "iris") -> int:
    answer = await client.post(
        f"/models/{name}/predict", json={"instances": [[5.1, 3.5, 1.4, 0.2]]}
    )
    assert answer.status_code == 200, answer.text
    version: int = answer.json()["version"]
    return version
