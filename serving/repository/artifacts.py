"""What makes an artifact safe to load: signature, checksum, library version; then loading it.

The only module that deserialises artifacts (joblib, or skops with a type allow-list).
"""

import hashlib
import io
from typing import Any

import joblib
import sklearn

from serving.core.errors import ArtifactRejectedError
from serving.repository.manifest import ModelManifest
from serving.repository.signing import TrustedKeys
from serving.repository.skops_types import load_skops


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_library_versions(manifest: ModelManifest) -> None:
    """A pickle is only safe with the scikit-learn minor version that wrote it."""
    written, running = _minor(manifest.sklearn_version), _minor(sklearn.__version__)
    if written != running:
        raise ArtifactRejectedError(
            f"{manifest.name}: artifact written by scikit-learn {manifest.sklearn_version}, "
            f"this server runs scikit-learn {sklearn.__version__}; retrain or pin {written}"
        )


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def verify_artifact(
    manifest: ModelManifest,
    artifact: bytes,
    signature: bytes | None,
    keys: TrustedKeys,
    compiled: bytes | None = None,
) -> None:
    """Everything checked before a byte of the artifact is deserialised. A version is
    verified as a whole: its compiled form too, whichever form will be loaded."""
    verify_signed_artifact(manifest, artifact, signature, keys)
    verify_compiled(manifest, compiled)
    check_library_versions(manifest)


def verify_signed_artifact(
    manifest: ModelManifest, artifact: bytes, signature: bytes | None, keys: TrustedKeys
) -> None:
    """The signature over the manifest, and the artifact against the sha256 it lists."""
    keys.verify(manifest, signature)
    if sha256_hex(artifact) != manifest.artifact.sha256:
        raise ArtifactRejectedError(
            f"{manifest.name}: artifact sha256 does not match the manifest (tampered or corrupt)"
        )


def verify_compiled(manifest: ModelManifest, compiled: bytes | None) -> None:
    """The compiled file against the sha256 the (verified) manifest lists, if it lists one."""
    listed = manifest.compiled.sha256 if manifest.compiled is not None else None
    if listed is None and compiled is not None:
        raise ArtifactRejectedError(f"{manifest.name}: a compiled file the manifest does not list")
    if listed is not None and compiled is None:
        raise ArtifactRejectedError(
            f"{manifest.name}: the compiled file the manifest lists is missing"
        )
    if listed is not None and compiled is not None and sha256_hex(compiled) != listed:
        raise ArtifactRejectedError(
            f"{manifest.name}: compiled file sha256 does not match the manifest "
            "(tampered or corrupt)"
        )


def deserialize(manifest: ModelManifest, artifact: bytes) -> Any:
    """Unpickle verified bytes. Only call after verify_artifact."""
    if manifest.artifact.format == "skops":
        return load_skops(artifact)
    return joblib.load(io.BytesIO(artifact))
