"""What the protocol's metadata, readiness and repository-index answers say, from the registry."""

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from serving.registry.registry import ModelRegistry, ModelState
from serving.repository.manifest import ModelManifest
from serving.v2.signature import input_metadata, output_metadata

SERVER_NAME = "serving"
# binary_tensor_data: Inference-Header-Content-Length bodies; model_repository: index,
# load and unload; parameters: unknown request parameters are accepted (and ignored).
EXTENSIONS = ["binary_tensor_data", "model_repository", "parameters"]


def server_metadata() -> dict[str, Any]:
    try:
        server_version = version(SERVER_NAME)
    except PackageNotFoundError:  # running from a checkout that was never installed
        server_version = "0"
    return {"name": SERVER_NAME, "version": server_version, "extensions": EXTENSIONS}


def model_metadata(manifest: ModelManifest, versions: tuple[int, ...]) -> dict[str, Any]:
    """The protocol's model metadata, plus `parameters` naming the features in order."""
    return {
        "name": manifest.name,
        "versions": [str(number) for number in versions],
        "platform": "scikit-learn",
        "inputs": input_metadata(manifest),
        "outputs": output_metadata(manifest),
        "parameters": {
            "version": str(manifest.version),
            "task": manifest.task,
            "feature_names": manifest.feature_names,
            "classes": manifest.classes,
        },
    }


def repository_index(registry: ModelRegistry, *, only_ready: bool) -> list[dict[str, Any]]:
    """Every model this worker knows, READY when its default version serves here."""
    entries = [_index_entry(state, registry) for state in registry.models.values()]
    return [entry for entry in entries if entry["state"] == "READY" or not only_ready]


def _index_entry(state: ModelState, registry: ModelRegistry) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": state.name}
    if state.served is not None:
        entry |= {"version": str(state.served.manifest.version), "state": "READY"}
        return entry
    entry["state"] = "UNAVAILABLE"
    if registry.is_unloaded(state.name):
        entry["reason"] = "unloaded"
    elif state.failures:
        entry["reason"] = "; ".join(state.failures.values())
    return entry
