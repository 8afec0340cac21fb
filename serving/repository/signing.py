"""Ed25519 signatures over manifests: trainers sign with a private key, servers verify.

The manifest carries the artifact's sha256, so a valid signature over the manifest
vouches for the artifact bytes too. Servers hold only public keys.
"""

import base64
import binascii
import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, ValidationError

from serving.core.errors import ArtifactRejectedError, ServingError
from serving.core.settings import Settings
from serving.repository.manifest import ModelManifest, signed_payload


class SigningKeyError(ServingError):
    """A configured key file or key that cannot be read or is not an Ed25519 key."""

    code = "bad_key"


class Signature(BaseModel):
    """The contents of a version's signature file. Only Ed25519 is accepted: a file naming
    any other algorithm is malformed, so a signature is never read under the wrong scheme."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    algorithm: Literal["ed25519"] = "ed25519"
    key_id: str
    signature: str  # base64


def public_key_text(key: Ed25519PublicKey) -> str:
    """The form used in SERVING_TRUSTED_KEYS: base64 of the raw 32-byte key."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def key_id(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def sign(manifest: ModelManifest, private_key: Ed25519PrivateKey) -> Signature:
    signature = private_key.sign(signed_payload(manifest))
    return Signature(key_id=key_id(private_key.public_key()), signature=_b64(signature))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def parse_public_key(text: str) -> Ed25519PublicKey:
    """Accepts base64 of the raw key, or a PEM SubjectPublicKeyInfo block."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        key = serialization.load_pem_public_key(text.encode())
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("trusted keys must be Ed25519 public keys")
        return key
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))


class TrustedKeys:
    """The public keys a server accepts signatures from, by key id."""

    def __init__(self, keys: Iterable[Ed25519PublicKey]) -> None:
        self._keys = {key_id(key): key for key in keys}

    def __len__(self) -> int:
        return len(self._keys)

    def verify(self, manifest: ModelManifest, signature_json: bytes | None) -> None:
        """Raise ArtifactRejectedError unless a trusted key signed exactly this manifest."""
        if not signature_json:
            raise ArtifactRejectedError("missing signature: the version is not signed")
        try:
            signature = Signature.model_validate_json(signature_json)
            raw = base64.b64decode(signature.signature, validate=True)
        except (ValidationError, binascii.Error, ValueError) as exc:
            raise ArtifactRejectedError("malformed signature file") from exc
        key = self._keys.get(signature.key_id)
        if key is None:
            raise ArtifactRejectedError(
                f"signed by unknown key {signature.key_id}: not among the server's trusted keys"
            )
        try:
            key.verify(raw, signed_payload(manifest))
        except InvalidSignature as exc:
            raise ArtifactRejectedError(
                "invalid signature: the manifest was changed after it was signed"
            ) from exc


def load_or_create_private_key(path: Path) -> Ed25519PrivateKey:
    """Read the signing key at `path`, creating a development key pair there if missing.

    Writes `path` (mode 0600) and `path.pub` (base64 public key) when creating.
    """
    if path.exists():
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as exc:
            raise SigningKeyError(f"cannot read the signing key {path}: {exc}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise SigningKeyError(f"{path} is not an Ed25519 private key")
        return key
    key = Ed25519PrivateKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    staging = path.with_suffix(".tmp")
    staging.touch(mode=0o600)
    staging.write_bytes(pem)
    staging.replace(path)
    public_key_file(path).write_text(public_key_text(key.public_key()) + "\n")
    return key


def public_key_file(private_key_path: Path) -> Path:
    return private_key_path.with_name(private_key_path.name + ".pub")


def trusted_keys_from(settings: Settings) -> TrustedKeys:
    """SERVING_TRUSTED_KEYS plus the keys file; with neither, the local development key."""
    texts = list(settings.trusted_keys)
    if settings.trusted_keys_file is not None:
        texts += _read_key_file(settings.trusted_keys_file, "SERVING_TRUSTED_KEYS_FILE").split()
    if not texts:
        dev_public = public_key_file(settings.signing_key_file)
        if dev_public.exists():
            texts = [_read_key_file(dev_public, "the development public key")]
    return TrustedKeys(_trusted_key(text) for text in texts)


def _read_key_file(path: Path, what: str) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise SigningKeyError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


def _trusted_key(text: str) -> Ed25519PublicKey:
    try:
        return parse_public_key(text)
    except (ValueError, TypeError, binascii.Error) as exc:
        shown = text.strip()[:24]
        raise SigningKeyError(
            f"trusted key {shown!r}... is not an Ed25519 public key: {exc}"
        ) from None
