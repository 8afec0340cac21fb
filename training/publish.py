"""Serialise, describe, sign and publish an estimator as the next version of a model."""

import io
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import numpy.typing as npt
import sklearn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sklearn.base import is_classifier

from serving.repository.artifacts import sha256_hex
from serving.repository.manifest import (
    ArtifactFormat,
    ArtifactInfo,
    CompiledInfo,
    Feature,
    ModelManifest,
)
from serving.repository.profile import FeatureProfile, profile_of
from serving.repository.signing import TrustedKeys, sign
from serving.repository.skops_types import load_skops
from serving.repository.store import ModelStore
from training.compile import NotCompilableError, compile_estimator, converter_version
from training.parity import CheckRows, check_parity, generated_rows


def serialize(estimator: Any, artifact_format: ArtifactFormat = "joblib") -> bytes:
    if artifact_format == "skops":
        from skops.io import dumps

        data: bytes = dumps(estimator)
        return data
    buffer = io.BytesIO()
    joblib.dump(estimator, buffer)
    return buffer.getvalue()


def describe(
    estimator: Any,
    artifact: bytes,
    *,
    name: str,
    feature_names: Sequence[str] | None = None,
    metrics: Mapping[str, float] | None = None,
    example: Sequence[float] | None = None,
    artifact_format: ArtifactFormat = "joblib",
    compiled: CompiledInfo | None = None,
    profile_rows: npt.NDArray[np.float64] | None = None,
) -> ModelManifest:
    """Build the manifest of a fitted estimator whose serialised form is `artifact`."""
    n_features = int(estimator.n_features_in_)
    names = list(feature_names or _feature_names(estimator, n_features))
    classifier = bool(is_classifier(estimator))
    classes = [_plain(c) for c in estimator.classes_] if classifier else None
    return ModelManifest(
        name=name,
        created_at=datetime.now(UTC),
        task="classification" if classifier else "regression",
        features=[Feature(name=feature) for feature in names],
        n_features=n_features,
        classes=classes,
        has_predict_proba=classifier and hasattr(estimator, "predict_proba"),
        accepts_nan=_accepts_nan(estimator, n_features),
        metrics=dict(metrics or {}),
        python_version=platform.python_version(),
        sklearn_version=sklearn.__version__,
        numpy_version=np.__version__,
        artifact=ArtifactInfo(format=artifact_format, sha256=sha256_hex(artifact)),
        compiled=compiled,
        example=[float(value) for value in (example or [0.0] * n_features)],
        profile=None if profile_rows is None else _profile(profile_rows, n_features),
    )


@dataclass(frozen=True)
class SignedVersion:
    """What an upload carries: the artifact, its manifest, the signature over the manifest,
    and the compiled form (model.onnx) when the manifest lists one."""

    manifest: ModelManifest
    artifact: bytes
    signature: bytes  # JSON of serving.repository.signing.Signature
    compiled: bytes | None = None

    def publish_to(self, store: ModelStore) -> int:
        """Verify, then store as the next version of its model; the new version's number."""
        return store.publish(
            self.manifest, self.artifact, self.signature, verify=True, compiled=self.compiled
        )


def compile_checked(
    estimator: Any, example: Sequence[float], check: CheckRows | None
) -> tuple[CompiledInfo, bytes | None]:
    """The compiled form and its manifest entry when it converts and passes the parity
    gate (on `check`, or on generated rows); else an entry saying why there is none."""
    n_features = int(estimator.n_features_in_)
    probabilities = bool(is_classifier(estimator)) and hasattr(estimator, "predict_proba")
    try:
        compiled = compile_estimator(estimator, n_features)
        if check is None:
            check = generated_rows(estimator, list(example), _accepts_nan(estimator, n_features))
        parity = check_parity(estimator, compiled, check, probabilities)
    except NotCompilableError as exc:
        return CompiledInfo(converter=converter_version(), reason=str(exc)), None
    except Exception as exc:  # the compiled form is optional: anything that
        # stops it (ONNX Runtime refusing the graph, the estimator itself raising on the check
        # rows) leaves the version to scikit-learn, with the reason in the manifest
        reason = f"compiling or checking failed: {type(exc).__name__}: {exc}"[:500]
        return CompiledInfo(converter=converter_version(), reason=reason), None
    info = CompiledInfo(sha256=sha256_hex(compiled), converter=converter_version(), parity=parity)
    return info, compiled


def prepare(
    estimator: Any,
    *,
    name: str,
    signing_key: Ed25519PrivateKey,
    feature_names: Sequence[str] | None = None,
    metrics: Mapping[str, float] | None = None,
    example: Sequence[float] | None = None,
    artifact_format: ArtifactFormat = "joblib",
    check_rows: CheckRows | None = None,
    profile_rows: npt.NDArray[np.float64] | None = None,
) -> SignedVersion:
    """Serialise, compile, describe and sign `estimator`, ready to publish or upload.

    `check_rows` are the rows the compiled form must agree with scikit-learn on (held-out
    or from a file); without them the parity gate generates rows (training/parity.py).
    `profile_rows` (training rows) give the manifest's drift profile; without them the
    version has no drift series.
    """
    artifact = serialize(estimator, artifact_format)
    example = example or [0.0] * int(estimator.n_features_in_)
    compiled_info, compiled = compile_checked(estimator, example, check_rows)
    manifest = describe(
        estimator,
        artifact,
        name=name,
        feature_names=feature_names,
        metrics=metrics,
        example=example,
        artifact_format=artifact_format,
        compiled=compiled_info,
        profile_rows=profile_rows,
    )
    signature = sign(manifest, signing_key).model_dump_json().encode()
    return SignedVersion(manifest, artifact, signature, compiled)


def publish(
    estimator: Any,
    *,
    name: str,
    root: Path,
    signing_key: Ed25519PrivateKey,
    feature_names: Sequence[str] | None = None,
    metrics: Mapping[str, float] | None = None,
    example: Sequence[float] | None = None,
    artifact_format: ArtifactFormat = "joblib",
    check_rows: CheckRows | None = None,
    profile_rows: npt.NDArray[np.float64] | None = None,
) -> int:
    """Store `estimator` as the next version of `name`, signed, and return that version."""
    signed = prepare(
        estimator,
        name=name,
        signing_key=signing_key,
        feature_names=feature_names,
        metrics=metrics,
        example=example,
        artifact_format=artifact_format,
        check_rows=check_rows,
        profile_rows=profile_rows,
    )
    store = ModelStore(root, TrustedKeys([signing_key.public_key()]))
    return signed.publish_to(store)


def read_estimator(path: Path) -> Any:
    """Load a model file its owner is about to sign and push. joblib runs whatever the file
    carries, so only the file's owner does this, never the server; skops files go through
    the server's type allow-list."""
    if path.suffix == ".skops":
        return load_skops(path.read_bytes())
    return joblib.load(path)


def _profile(rows: npt.NDArray[np.float64], n_features: int) -> list[FeatureProfile]:
    """The drift profile of the training rows (features in the model's order)."""
    matrix = np.asarray(rows, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[1] != n_features or len(matrix) == 0:
        raise ValueError(f"profile rows must be a non-empty table of {n_features} columns")
    return profile_of(matrix)


def _accepts_nan(estimator: Any, n_features: int) -> bool:
    """Ask the estimator itself: tags can't tell, e.g. a Pipeline reports allow_nan=False
    even when its first step handles missing values."""
    try:
        estimator.predict(np.full((1, n_features), np.nan))
    except ValueError:
        return False
    return True


def _feature_names(estimator: Any, n_features: int) -> list[str]:
    names = getattr(estimator, "feature_names_in_", None)
    if names is not None:
        return [str(feature) for feature in names]
    return [f"f{index}" for index in range(n_features)]


def _plain(value: Any) -> int | str:
    """numpy scalars to JSON-friendly ints or strings."""
    if isinstance(value, np.integer | int):
        return int(value)
    return str(value)
