"""ModelManifest and the file names of a version folder: the contract with training/."""

from datetime import datetime
from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator

from serving.repository.names import NAME_PATTERN
from serving.repository.profile import FeatureProfile

MANIFEST_FILE = "manifest.json"
SIGNATURE_FILE = "signature.json"
ARTIFACT_FILES = {"joblib": "model.joblib", "skops": "model.skops"}
COMPILED_FILES = {"onnx": "model.onnx"}
SHA256_PATTERN = r"^[0-9a-f]{64}$"

ArtifactFormat = Literal["joblib", "skops"]
Task = Literal["classification", "regression"]


class Feature(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=256)
    dtype: Literal["float64", "float32", "int64"] = "float64"


class ArtifactInfo(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    format: ArtifactFormat = "joblib"
    sha256: str = Field(pattern=SHA256_PATTERN)

    @property
    def file_name(self) -> str:
        return ARTIFACT_FILES[self.format]


class Parity(BaseModel):
    """How the compiled form agreed with scikit-learn when it was published."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rows: int = Field(ge=1)
    max_difference: float = Field(ge=0)  # largest |compiled - scikit-learn| output
    rows_from: Literal["held-out", "data-file", "generated"]


class CompiledInfo(BaseModel):
    """The version's compiled form (model.onnx), or why it has none (`sha256` unset)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal["onnx"] = "onnx"
    sha256: str | None = Field(default=None, pattern=SHA256_PATTERN)
    converter: str = ""
    parity: Parity | None = None
    reason: str = Field(default="", max_length=1000)  # why there is no compiled form

    @model_validator(mode="after")
    def _compiled_or_why_not(self) -> "CompiledInfo":
        if self.sha256 is not None and self.parity is None:
            raise ValueError("a compiled form needs its parity result")
        if self.sha256 is None and not self.reason:
            raise ValueError("say why there is no compiled form")
        return self

    @property
    def file_name(self) -> str:
        return COMPILED_FILES[self.format]


class BatchingOverride(BaseModel):
    """Per-model adaptive batching settings; unset fields fall back to the server's."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_batch_size: int | None = Field(default=None, ge=1)
    max_delay_ms: float | None = Field(default=None, ge=0)


class ModelManifest(BaseModel):
    """What a version is: its inputs, outputs, provenance and the artifact's checksum.

    `version` is assigned by the registry when the version is published, so it is
    not covered by the signature (see `signed_payload`).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())

    name: str = Field(pattern=NAME_PATTERN)
    version: int = Field(default=0, ge=0)  # 0 until published
    created_at: datetime
    task: Task
    features: list[Feature] = Field(min_length=1)
    n_features: int = Field(ge=1)
    classes: list[int | str] | None = None
    has_predict_proba: bool = False
    accepts_nan: bool = False  # e.g. HistGradientBoosting handles missing values itself
    metrics: dict[str, float] = {}
    python_version: str
    sklearn_version: str
    numpy_version: str
    artifact: ArtifactInfo
    compiled: CompiledInfo | None = None  # None: published before compiled forms existed
    example: list[float] = Field(min_length=1)
    batching: BatchingOverride | None = None
    description: str = ""
    # Training distribution of each feature, in feature order, for the drift series. None for
    # versions published without training rows (and every manifest written before it existed).
    profile: list[FeatureProfile] | None = None

    @model_validator(mode="after")
    def _check_shapes(self) -> "ModelManifest":
        if self.n_features != len(self.features):
            raise ValueError(f"n_features is {self.n_features} but {len(self.features)} listed")
        if len(self.example) != self.n_features:
            raise ValueError(f"example has {len(self.example)} values, expected {self.n_features}")
        if len({feature.name for feature in self.features}) != self.n_features:
            raise ValueError("feature names must be unique")
        if self.has_predict_proba and self.task != "classification":
            raise ValueError("only classifiers have predict_proba")
        if self.profile is not None and len(self.profile) != self.n_features:
            raise ValueError(
                f"profile has {len(self.profile)} features, expected {self.n_features}"
            )
        return self

    @property
    def feature_names(self) -> list[str]:
        return [feature.name for feature in self.features]

    def with_version(self, version: int) -> "ModelManifest":
        return self.model_copy(update={"version": version})

    def to_json(self) -> bytes:
        excluded = {"profile"} if self.profile is None else None  # as written before profiles
        return orjson.dumps(
            self.model_dump(mode="json", exclude=excluded), option=orjson.OPT_INDENT_2
        )


def signed_payload(manifest: ModelManifest) -> bytes:
    """Canonical bytes a signature covers: the manifest without its registry-assigned version.

    Fields added since the first manifests (`compiled`, `profile`) are left out while unset,
    so the signatures of versions published before them still verify.
    """
    unset_additions = {
        field for field in ("compiled", "profile") if getattr(manifest, field) is None
    }
    document = manifest.model_dump(mode="json", exclude={"version", *unset_additions})
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)
