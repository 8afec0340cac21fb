"""Versions for traffic tests: a copy of production, a model that disagrees, one that raises."""

import shutil
from pathlib import Path

import joblib
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sklearn.datasets import load_diabetes, load_iris
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder
from sklearn.tree import DecisionTreeClassifier

from serving.repository.signing import TrustedKeys
from serving.repository.store import ModelStore
from training.publish import SignedVersion, prepare

IRIS_ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5], [6.3, 2.8, 5.1, 1.5]]


def copy_of_iris(store: ModelStore, registry_dir: Path, key: Ed25519PrivateKey) -> SignedVersion:
    """Version 1's estimator under version 1's feature names: it agrees on every row."""
    estimator = joblib.load(registry_dir / "iris" / "1" / "model.joblib")
    names = store.read_manifest("iris", 1).feature_names
    return prepare(estimator, name="iris", signing_key=key, feature_names=names)


def raising_iris(store: ModelStore, key: Ed25519PrivateKey) -> SignedVersion:
    """Loads and passes the load-time check on its example row, then raises ValueError on
    every other row: it one-hot encodes features it saw only two values of, refusing others."""
    example = IRIS_ROWS[0]
    features = np.asarray([example, [0.0] * 4])
    estimator = make_pipeline(OneHotEncoder(handle_unknown="error"), LogisticRegression())
    estimator.fit(features, [0, 1])
    names = store.read_manifest("iris", 1).feature_names
    return prepare(estimator, name="iris", signing_key=key, feature_names=names, example=example)


def unloadable_iris(store: ModelStore, key: Ed25519PrivateKey) -> SignedVersion:
    """Signed and intact, but its coefficients have a fifth column: the server's load-time
    check on the example row raises, so this version never loads."""
    features, labels = load_iris(return_X_y=True)
    estimator = LogisticRegression(max_iter=500).fit(features, labels)
    estimator.coef_ = np.hstack([estimator.coef_, np.zeros((3, 1))])
    names = store.read_manifest("iris", 1).feature_names
    return prepare(estimator, name="iris", signing_key=key, feature_names=names)


def disagreeing_iris(store: ModelStore, key: Ed25519PrivateKey) -> SignedVersion:
    """A one-split tree: it cannot tell three classes apart, so it disagrees on some rows."""
    features, labels = load_iris(return_X_y=True)
    estimator = DecisionTreeClassifier(max_depth=1, random_state=0).fit(features, labels)
    names = store.read_manifest("iris", 1).feature_names
    return prepare(estimator, name="iris", signing_key=key, feature_names=names)


def other_diabetes(store: ModelStore, key: Ed25519PrivateKey) -> SignedVersion:
    features, targets = load_diabetes(return_X_y=True)
    estimator = Ridge(alpha=10.0).fit(features, targets)
    names = store.read_manifest("diabetes", 1).feature_names
    return prepare(estimator, name="diabetes", signing_key=key, feature_names=names)


def publish_traffic_versions(registry_dir: Path, key: Ed25519PrivateKey) -> ModelStore:
    """iris: v1 production, v2 canary (a copy of v1), v3 candidate (disagrees), v4 broken
    (raises), v5 unloadable; diabetes: v1 production, v2 candidate (another regressor)."""
    store = ModelStore(registry_dir, TrustedKeys([key.public_key()]))
    versions = [
        copy_of_iris(store, registry_dir, key),
        disagreeing_iris(store, key),
        raising_iris(store, key),
        unloadable_iris(store, key),
        other_diabetes(store, key),
    ]
    for signed in versions:
        signed.publish_to(store)
    iris_aliases = {"production": 1, "canary": 2, "candidate": 3, "broken": 4, "unloadable": 5}
    for alias, version in iris_aliases.items():
        store.set_alias("iris", alias, version)
    store.set_alias("diabetes", "production", 1)
    store.set_alias("diabetes", "candidate", 2)
    return store


@pytest.fixture(scope="session")
def trained_traffic_registry(
    tmp_path_factory: pytest.TempPathFactory,
    trained_registry: Path,
    signing_key: Ed25519PrivateKey,
) -> Path:
    """The demo models plus the traffic versions above, built once per session."""
    root = tmp_path_factory.mktemp("traffic") / "models"
    shutil.copytree(trained_registry, root)
    publish_traffic_versions(root, signing_key)
    return root


@pytest.fixture
def traffic_registry(trained_traffic_registry: Path, registry_dir: Path) -> Path:
    """A private copy a test may change, at the path the `settings_for` fixture serves."""
    shutil.rmtree(registry_dir)
    shutil.copytree(trained_traffic_registry, registry_dir)
    return registry_dir
