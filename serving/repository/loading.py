"""LoadedModel, and loading one version folder: verify every file, then open one form.

A version is verified as a whole (signature, artifact and compiled checksums) before either
of its forms is opened, so a damaged file makes it unservable whichever runtime serves it.
"""

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from serving.core.errors import ArtifactRejectedError, ModelLoadError
from serving.repository.artifacts import (
    check_library_versions,
    deserialize,
    verify_compiled,
    verify_signed_artifact,
)
from serving.repository.compiled import (
    CompiledModel,
    Runtime,
    RuntimeMode,
    choose_runtime,
    session_threads,
)
from serving.repository.manifest import SIGNATURE_FILE, ModelManifest
from serving.repository.signing import TrustedKeys


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A verified version, ready to score: deserialised, or compiled (`estimator` None)."""

    manifest: ModelManifest
    estimator: Any  # whatever the artifact holds: an sklearn estimator or Pipeline
    load_seconds: float = 0.0
    loaded_at: float = field(default_factory=time.time)
    compiled: CompiledModel | None = None  # set: ONNX Runtime serves this version

    @property
    def runtime(self) -> Runtime:
        return "sklearn" if self.compiled is None else "onnx"


def load_version(
    manifest: ModelManifest, folder: Path, keys: TrustedKeys, mode: RuntimeMode
) -> LoadedModel:
    """Unpickle the artifact (after the library version check) or open the compiled
    model, as `mode` picks; with `onnx` nothing is ever unpickled. Blocking."""
    started = time.perf_counter()
    artifact_path = folder / manifest.artifact.file_name
    artifact = _read_listed(artifact_path, "artifact")
    signature = _read_optional(folder / SIGNATURE_FILE)
    try:
        verify_signed_artifact(manifest, artifact, signature, keys)
    except ArtifactRejectedError as exc:
        raise ArtifactRejectedError(f"{artifact_path}: {exc}") from exc
    compiled = None
    if manifest.compiled is not None and manifest.compiled.sha256 is not None:
        compiled_path = folder / manifest.compiled.file_name
        compiled = _read_optional(compiled_path)
        try:
            verify_compiled(manifest, compiled)
        except ArtifactRejectedError as exc:
            raise ArtifactRejectedError(f"{compiled_path}: {exc}") from exc
    choice = choose_runtime(manifest, mode)
    if choice.runtime is None:
        raise ModelLoadError(
            f"{manifest.name} v{manifest.version} is not servable: {choice.reason}"
        )
    if choice.runtime == "onnx" and compiled is not None:
        model = CompiledModel(compiled, session_threads())
        return LoadedModel(manifest, None, time.perf_counter() - started, compiled=model)
    try:
        check_library_versions(manifest)
    except ArtifactRejectedError as exc:
        raise ArtifactRejectedError(f"{artifact_path}: {exc}") from exc
    estimator = deserialize(manifest, artifact)
    return LoadedModel(manifest, estimator, time.perf_counter() - started)


def _read_listed(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ModelLoadError(f"{path}: {what} file is missing") from None


def _read_optional(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
