"""Read-only model routes: what is published, what each alias points at, what is loaded."""

from typing import Any

import anyio
from fastapi import APIRouter

from serving.api.deps import RegistryDep, StoreDep
from serving.api.schemas import (
    ErrorResponse,
    ModelDetail,
    ModelList,
    ModelSummary,
    RuntimeInfo,
    VersionDetail,
)
from serving.core.errors import ModelNotFoundError
from serving.dataplane.inputs import parse_version
from serving.registry.registry import ModelRegistry, ModelState
from serving.repository.compiled import choose_runtime
from serving.repository.manifest import ModelManifest
from serving.repository.store import ModelStore

router = APIRouter(tags=["models"])
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "Unknown model or version"}
}


def _summary(state: ModelState, registry: ModelRegistry) -> ModelSummary:
    return ModelSummary(
        name=state.name,
        versions=list(state.versions),
        aliases=state.aliases,
        default_version=state.served.manifest.version if state.served else None,
        loaded_versions=registry.loaded_versions(state.name),
        failures=state.failures,
        traffic=state.traffic,
    )


@router.get("/models")
async def list_models(registry: RegistryDep) -> ModelList:
    """Every model with its versions, aliases and which versions this worker has loaded."""
    return ModelList(models=[_summary(s, registry) for s in registry.models.values()])


@router.get("/models/{name}", responses=_NOT_FOUND)
async def get_model(name: str, registry: RegistryDep) -> ModelDetail:
    state = registry.models.get(name)
    if state is None:
        raise ModelNotFoundError(f"unknown model {name!r}")
    manifest = state.served.manifest if state.served else None
    return ModelDetail(**_summary(state, registry).model_dump(), manifest=manifest)


@router.get("/models/{name}/versions/{version}", responses=_NOT_FOUND)
async def get_version(
    name: str, version: str, store: StoreDep, registry: RegistryDep
) -> VersionDetail:
    """The manifest of one version (a number or an alias), and the runtime that serves it."""
    spec = parse_version(version)
    manifest = await anyio.to_thread.run_sync(_read_manifest, store, name, spec)
    return VersionDetail(**dict(manifest), runtime=_runtime(manifest, store, registry))


def _runtime(manifest: ModelManifest, store: ModelStore, registry: ModelRegistry) -> RuntimeInfo:
    """The choice SERVING_RUNTIME makes for this manifest, unless loading it failed here."""
    state = registry.models.get(manifest.name)
    failure = state.failures.get(manifest.version) if state is not None else None
    if failure is not None:
        return RuntimeInfo(name=None, reason=f"not served: {failure}")
    choice = choose_runtime(manifest, store.runtime_mode)
    return RuntimeInfo(name=choice.runtime, reason=choice.reason)


def _read_manifest(store: ModelStore, name: str, spec: int | str | None) -> ModelManifest:
    return store.read_manifest(name, store.resolve(name, spec))
