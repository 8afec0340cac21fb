"""ModelStore on a real folder: atomic, race-safe publishing; aliases; deletion."""

import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)
from sklearn.dummy import DummyClassifier

from serving.core.errors import (
    AliasNotFoundError,
    ArtifactRejectedError,
    VersionInUseError,
    VersionNotFoundError,
)
from serving.repository.signing import TrustedKeys
from serving.repository.store import ModelStore
from training.publish import publish


def _tiny_estimator() -> DummyClassifier:
    return DummyClassifier(strategy="most_frequent").fit([[0.0, 1.0], [1.0, 0.0]], [0, 1])


def _publish_from_another_process(root: str, key_pem: bytes, count: int) -> list[int]:
    key = load_pem_private_key(key_pem, password=None)
    assert isinstance(key, Ed25519PrivateKey)
    return [
        publish(_tiny_estimator(), name="racy", root=Path(root), signing_key=key)
        for _ in range(count)
    ]


@pytest.fixture
def store(tmp_path: Path, signing_key: Ed25519PrivateKey) -> ModelStore:
    return ModelStore(tmp_path, TrustedKeys([signing_key.public_key()]))


def test_concurrent_publishers_never_share_a_version_number(
    store: ModelStore, signing_key: Ed25519PrivateKey
) -> None:
    pem = signing_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())

    with ProcessPoolExecutor(max_workers=4) as pool:
        futures = [
            pool.submit(_publish_from_another_process, str(store.root), pem, 5) for _ in range(4)
        ]
        handed_out = sorted(v for future in futures for v in future.result())

    assert handed_out == list(range(1, 21))
    assert store.versions("racy") == list(range(1, 21))
    assert not [p for p in (store.root / "racy").iterdir() if p.name.startswith(".staging")]
    for version in handed_out:
        assert store.load("racy", version).manifest.version == version


def test_deleted_version_numbers_are_never_reused(
    store: ModelStore, signing_key: Ed25519PrivateKey
) -> None:
    first = publish(_tiny_estimator(), name="m", root=store.root, signing_key=signing_key)
    second = publish(_tiny_estimator(), name="m", root=store.root, signing_key=signing_key)

    store.delete_version("m", second)
    third = publish(_tiny_estimator(), name="m", root=store.root, signing_key=signing_key)

    assert (first, second, third) == (1, 2, 3)
    assert store.versions("m") == [1, 3]


def test_a_version_an_alias_points_at_cannot_be_deleted(
    store: ModelStore, signing_key: Ed25519PrivateKey
) -> None:
    version = publish(_tiny_estimator(), name="m", root=store.root, signing_key=signing_key)
    store.set_alias("m", "production", version)

    with pytest.raises(VersionInUseError, match="production"):
        store.delete_version("m", version)

    assert store.versions("m") == [version]


def test_rollback_returns_to_the_previous_version_each_time(
    store: ModelStore, signing_key: Ed25519PrivateKey
) -> None:
    for _ in range(3):
        publish(_tiny_estimator(), name="m", root=store.root, signing_key=signing_key)
    for version in (1, 2, 3):
        store.set_alias("m", "production", version)

    first, second = store.rollback("m", "production"), store.rollback("m", "production")

    assert (first, second) == (2, 1)
    assert store.resolve("m", None) == 1
    with pytest.raises(AliasNotFoundError, match="no earlier version"):
        store.rollback("m", "production")


def test_default_version_is_production_else_the_highest(
    store: ModelStore, signing_key: Ed25519PrivateKey
) -> None:
    for _ in range(3):
        publish(_tiny_estimator(), name="m", root=store.root, signing_key=signing_key)

    highest = store.resolve("m", None)
    store.set_alias("m", "production", 2)

    assert (highest, store.resolve("m", None), store.resolve("m", "production")) == (3, 2, 2)
    with pytest.raises(VersionNotFoundError):
        store.resolve("m", 9)


def test_alias_file_is_always_complete_json(
    store: ModelStore, signing_key: Ed25519PrivateKey
) -> None:
    publish(_tiny_estimator(), name="m", root=store.root, signing_key=signing_key)

    for _ in range(20):
        store.set_alias("m", "canary", 1)

    table = json.loads((store.root / "m" / "aliases.json").read_text())
    assert table["aliases"] == {"canary": 1}
    assert not [p for p in (store.root / "m").iterdir() if p.name.startswith(".aliases")]


def test_publish_with_verification_stores_nothing_when_the_artifact_was_altered(
    store: ModelStore, signing_key: Ed25519PrivateKey
) -> None:
    version = publish(_tiny_estimator(), name="m", root=store.root, signing_key=signing_key)
    folder = store.version_dir("m", version)
    manifest = store.read_manifest("m", version)
    signature = (folder / "signature.json").read_bytes()
    altered = (folder / "model.joblib").read_bytes() + b"\0"

    with pytest.raises(ArtifactRejectedError, match="sha256"):
        store.publish(manifest, altered, signature, verify=True)

    assert store.versions("m") == [version]
