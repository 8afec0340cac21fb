"""Model lifecycle operations behind the management routes: publish, alias moves, traffic
splits, deletion.

Each operation changes the registry on disk through ModelStore (atomic, under the model's
lock), then announces the change so every worker and replica reloads at once rather than
at its next poll.
"""

from dataclasses import dataclass

import anyio
from pydantic import ValidationError

from serving.core.errors import ArtifactRejectedError
from serving.registry.notify import ChangeNotifier
from serving.repository.manifest import ModelManifest
from serving.repository.store import ModelStore
from serving.repository.traffic import TrafficTable


@dataclass(frozen=True)
class Upload:
    """The parts of a version upload, as received."""

    manifest: bytes
    artifact: bytes
    signature: bytes | None
    compiled: bytes | None = None  # model.onnx, when the manifest lists a compiled form


def parse_manifest(name: str, raw: bytes) -> ModelManifest:
    """The uploaded manifest, checked against the model name in the URL."""
    try:
        manifest = ModelManifest.model_validate_json(raw)
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(part) for part in problem["loc"]) or "manifest"
        raise ArtifactRejectedError(f"invalid manifest: {where}: {problem['msg']}") from None
    if manifest.name != name:
        raise ArtifactRejectedError(
            f"the manifest is for model {manifest.name!r}, but it was uploaded to {name!r}"
        )
    return manifest


class ModelManagement:
    """Changes to the registry on disk, each followed by a change notice."""

    def __init__(self, store: ModelStore, notifier: ChangeNotifier) -> None:
        self._store, self._notifier = store, notifier

    async def publish(self, name: str, upload: Upload) -> int:
        """Verify, then store as the next version. Nothing is written when verification fails."""
        manifest = parse_manifest(name, upload.manifest)
        version = await anyio.to_thread.run_sync(
            lambda: self._store.publish(
                manifest, upload.artifact, upload.signature, verify=True, compiled=upload.compiled
            )
        )
        await self._notifier.changed(name)
        return version

    async def set_alias(self, name: str, alias: str, version: int) -> None:
        await anyio.to_thread.run_sync(self._store.set_alias, name, alias, version)
        await self._notifier.changed(name)

    async def remove_alias(self, name: str, alias: str) -> None:
        await anyio.to_thread.run_sync(self._store.remove_alias, name, alias)
        await self._notifier.changed(name)

    async def rollback(self, name: str, alias: str) -> int:
        version = await anyio.to_thread.run_sync(self._store.rollback, name, alias)
        await self._notifier.changed(name)
        return version

    async def delete_version(self, name: str, version: int) -> None:
        await anyio.to_thread.run_sync(self._store.delete_version, name, version)
        await self._notifier.changed(name)

    async def set_traffic(self, name: str, traffic: TrafficTable) -> None:
        """Store the split and shadow (its aliases must exist), then tell every worker."""
        await anyio.to_thread.run_sync(self._store.set_traffic, name, traffic)
        await self._notifier.changed(name)
