"""Signature files: only Ed25519, named as such, by a trusted key, over this very manifest."""

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from serving.core.errors import ArtifactRejectedError
from serving.repository.manifest import ModelManifest
from serving.repository.signing import TrustedKeys, sign


def _manifest(registry_dir: Path) -> ModelManifest:
    return ModelManifest.model_validate_json((registry_dir / "iris/1/manifest.json").read_bytes())


def test_a_signature_file_naming_another_algorithm_is_refused(
    registry_dir: Path, signing_key: Ed25519PrivateKey
) -> None:
    manifest = _manifest(registry_dir)
    keys = TrustedKeys([signing_key.public_key()])
    signature = sign(manifest, signing_key).model_dump()

    keys.verify(manifest, json.dumps(signature).encode())  # the same file, named ed25519: fine
    with pytest.raises(ArtifactRejectedError, match="malformed signature file"):
        keys.verify(manifest, json.dumps(signature | {"algorithm": "rsa-pss"}).encode())
