"""Public bodies as pydantic models: they document the API (OpenAPI) and type the answers.

Predict bodies are parsed by inputs.py for speed; these models describe the same shape.
"""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from serving.repository.manifest import ModelManifest
from serving.repository.traffic import TrafficTable

Row = list[float | None] | dict[str, float | None]


class PredictRequest(BaseModel):
    """Body of POST /predict. The per-model routes take it without `model` (and `version`)."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(
        default=None, description="Model name; required unless exactly one model is served"
    )
    version: int | str | None = Field(
        default=None, description="Version number or alias; default: the production version"
    )
    instances: list[Row] = Field(
        min_length=1,
        description="Rows: numbers in the model's feature order, or objects keyed by feature",
    )
    probabilities: bool = Field(default=False, description="Also return class probabilities")


class PredictResponse(BaseModel):
    model: str
    version: int
    predictions: list[Any]
    probabilities: list[list[float]] | None = None


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable snake_case error code")
    message: str


class ErrorResponse(BaseModel):
    error: ErrorDetail


class ModelSummary(BaseModel):
    name: str
    versions: list[int]
    aliases: dict[str, int]
    default_version: int | None
    loaded_versions: list[int]
    failures: dict[int, str] = Field(description="Versions that failed to load, and why")
    traffic: TrafficTable = Field(
        description="How requests naming no version are split between aliases; the shadow"
    )


class ModelDetail(ModelSummary):
    manifest: ModelManifest | None = Field(description="Manifest of the default version")


class RuntimeInfo(BaseModel):
    name: Literal["sklearn", "onnx"] | None = Field(
        description="The runtime that serves this version here; null: it is not served"
    )
    reason: str = Field(description="Why this runtime, or why the version is not served")


class VersionDetail(ModelManifest):
    """A version's manifest, and which runtime serves it under this server's SERVING_RUNTIME."""

    runtime: RuntimeInfo


class ModelList(BaseModel):
    models: list[ModelSummary]


def predict_request_examples(manifests: list[ModelManifest]) -> dict[str, dict[str, Any]]:
    """Working example bodies for /docs, one by position and one by name per model."""
    examples: dict[str, dict[str, Any]] = {}
    for manifest in manifests:
        by_name = dict(zip(manifest.feature_names, manifest.example, strict=True))
        examples[f"{manifest.name}-by-position"] = {
            "summary": f"{manifest.name}: one row in feature order {manifest.feature_names}",
            "value": {"model": manifest.name, "instances": [manifest.example]},
        }
        examples[f"{manifest.name}-by-name"] = {
            "summary": f"{manifest.name}: one row keyed by feature name",
            "value": {"model": manifest.name, "instances": [by_name]},
        }
    return examples
