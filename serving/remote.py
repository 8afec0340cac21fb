"""RemoteRegistry: a running server's management API, for the CLI's `--url` mode."""

from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from serving.core.errors import ServingError
from serving.repository.manifest import ModelManifest
from serving.repository.traffic import TrafficTable


class RemoteError(ServingError):
    """The server refused a request, or could not be reached."""

    code = "remote_error"


@dataclass(frozen=True)
class ModelListing:
    name: str
    versions: list[int]
    aliases: dict[str, int]


class RemoteRegistry:
    """Talks to `url` with `Authorization: Bearer <token>`. Blocking; close it when done."""

    def __init__(self, url: str, token: str | None, timeout_seconds: float = 120.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self._client = httpx.Client(base_url=self.url, headers=headers, timeout=timeout_seconds)

    def __enter__(self) -> "RemoteRegistry":
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._client.close()

    def upload(
        self,
        manifest: ModelManifest,
        artifact: bytes,
        signature: bytes,
        compiled: bytes | None = None,
    ) -> int:
        """Publish the next version; the server verifies the signature before storing it."""
        files = {
            "artifact": (manifest.artifact.file_name, artifact, "application/octet-stream"),
            "manifest": ("manifest.json", manifest.to_json(), "application/json"),
            "signature": ("signature.json", signature, "application/json"),
        }
        if compiled is not None and manifest.compiled is not None:
            files["compiled"] = (manifest.compiled.file_name, compiled, "application/octet-stream")
        answer = self._call("POST", f"/models/{manifest.name}/versions", files=files)
        return int(answer["version"])

    def set_alias(self, name: str, alias: str, version: int) -> None:
        self._call("PUT", f"/models/{name}/aliases/{alias}", json={"version": version})

    def rollback(self, name: str, alias: str) -> int:
        return int(self._call("POST", f"/models/{name}/aliases/{alias}/rollback")["version"])

    def remove_alias(self, name: str, alias: str) -> None:
        self._call("DELETE", f"/models/{name}/aliases/{alias}")

    def delete_version(self, name: str, version: int) -> None:
        self._call("DELETE", f"/models/{name}/versions/{version}")

    def set_traffic(self, name: str, traffic: TrafficTable) -> TrafficTable:
        """The server's stored traffic; the default table clears it (DELETE)."""
        if traffic.is_default:
            answer = self._call("DELETE", f"/models/{name}/traffic")
        else:
            answer = self._call("PUT", f"/models/{name}/traffic", json=traffic.model_dump())
        return TrafficTable(weights=answer["weights"], shadow=answer["shadow"])

    def listing(self) -> list[ModelListing]:
        models = self._call("GET", "/models")["models"]
        return [ModelListing(m["name"], m["versions"], m["aliases"]) for m in models]

    def _call(self, method: str, path: str, **options: Any) -> dict[str, Any]:
        try:
            response = self._client.request(method, path, **options)
        except httpx.HTTPError as exc:
            raise RemoteError(f"cannot reach {self.url}: {exc}") from exc
        if response.is_error:
            raise RemoteError(f"{self.url} answered {response.status_code}: {_reason(response)}")
        if not response.content:
            return {}
        answer: dict[str, Any] = response.json()
        return answer


@dataclass(frozen=True)
class VersionDrift:
    rows: int  # inputs in the server's drift window
    features: dict[str, float]  # PSI per feature

    def worst_first(self) -> list[tuple[str, float]]:
        return sorted(self.features.items(), key=lambda item: (-item[1], item[0]))


def read_drift(
    url: str, name: str, token: str | None = None, timeout_seconds: float = 10.0
) -> dict[int, VersionDrift]:
    """serving_feature_drift of model `name` per version, from the server's /metrics (sent
    `token` as a bearer token when given, for a proxy that guards /metrics)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.get(f"{url.rstrip('/')}/metrics", headers=headers, timeout=timeout_seconds)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise RemoteError(f"cannot read {url}/metrics: {exc}") from exc
    rows: dict[int, int] = {}
    features: dict[int, dict[str, float]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            labels = sample.labels
            if labels.get("model") != name or not labels.get("version", "").isdigit():
                continue
            version = int(labels["version"])
            if sample.name == "serving_feature_drift_rows":
                rows[version] = int(sample.value)
            elif sample.name == "serving_feature_drift":
                features.setdefault(version, {})[labels["feature"]] = sample.value
    return {v: VersionDrift(rows.get(v, 0), found) for v, found in features.items()}


def _reason(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200] or response.reason_phrase
