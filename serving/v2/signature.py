"""What tensors a model takes and gives under the protocol, derived from its manifest.

Inputs: one tensor of shape [-1, n_features] (named `input`), or one tensor per feature,
named after it, of shape [-1] or [-1, 1]. Both are accepted; the metadata advertises the
single tensor unless the features have different dtypes, which one tensor cannot describe.
Outputs: `predict` (labels or values), and `predict_proba` for classifiers that have it.
"""

from typing import Any

import numpy as np
import numpy.typing as npt

from serving.core.errors import InvalidInputError
from serving.core.quoting import shown_names
from serving.dataplane.inputs import Matrix, check_values
from serving.dataplane.scoring import Scores
from serving.repository.manifest import ModelManifest
from serving.v2.datatypes import BYTES, NUMERIC_TYPES, from_manifest_dtype
from serving.v2.tensors import Tensor

MATRIX_INPUT = "input"
PREDICT = "predict"
PREDICT_PROBA = "predict_proba"


def tensor_metadata(name: str, datatype: str, shape: list[int]) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": shape}


def input_metadata(manifest: ModelManifest) -> list[dict[str, Any]]:
    datatypes = {from_manifest_dtype(feature.dtype) for feature in manifest.features}
    if len(datatypes) == 1:
        return [tensor_metadata(MATRIX_INPUT, datatypes.pop(), [-1, manifest.n_features])]
    return [
        tensor_metadata(feature.name, from_manifest_dtype(feature.dtype), [-1])
        for feature in manifest.features
    ]


def output_metadata(manifest: ModelManifest) -> list[dict[str, Any]]:
    outputs = [tensor_metadata(PREDICT, _prediction_datatype(manifest), [-1])]
    if manifest.has_predict_proba:
        n_classes = len(manifest.classes) if manifest.classes else -1
        outputs.append(tensor_metadata(PREDICT_PROBA, "FP64", [-1, n_classes]))
    return outputs


def output_names(manifest: ModelManifest) -> list[str]:
    return [PREDICT, PREDICT_PROBA] if manifest.has_predict_proba else [PREDICT]


def _prediction_datatype(manifest: ModelManifest) -> str:
    if manifest.task == "regression":
        return "FP64"
    classes = manifest.classes or []
    if classes and all(isinstance(label, int) for label in classes):
        return "INT64"
    return BYTES


# --- requests in -------------------------------------------------------------------------
def to_matrix(inputs: list[Tensor], manifest: ModelManifest) -> Matrix:
    """The request's input tensors as the model's float64 feature matrix, checked."""
    names = {tensor.name for tensor in inputs}
    if names == set(manifest.feature_names):
        matrix = _from_feature_tensors(inputs, manifest)
    elif len(inputs) == 1:
        matrix = _from_one_tensor(inputs[0], manifest)
    else:
        raise InvalidInputError(
            f"{manifest.name} takes one tensor of shape [-1, {manifest.n_features}] or one "
            f"tensor per feature ({', '.join(manifest.feature_names)}); "
            f"got {shown_names(sorted(names))}"
        )
    if matrix.shape[0] == 0:
        raise InvalidInputError("inputs must hold at least one row")
    return check_values(matrix, manifest)


def _from_one_tensor(tensor: Tensor, manifest: ModelManifest) -> Matrix:
    n_features = manifest.n_features
    if len(tensor.shape) != 2 or tensor.shape[1] != n_features:
        raise InvalidInputError(
            f"input {tensor.name!r} has shape {list(tensor.shape)}; "
            f"{manifest.name} takes [rows, {n_features}]"
        )
    return _as_float64(tensor)


def _from_feature_tensors(inputs: list[Tensor], manifest: ModelManifest) -> Matrix:
    by_name = {tensor.name: tensor for tensor in inputs}
    columns = [_column(by_name[name]) for name in manifest.feature_names]
    if len({len(column) for column in columns}) != 1:
        raise InvalidInputError("every feature tensor must hold the same number of rows")
    return np.column_stack(columns)


def _column(tensor: Tensor) -> npt.NDArray[np.float64]:
    shape = tensor.shape
    if len(shape) == 1 or (len(shape) == 2 and shape[1] == 1):
        return _as_float64(tensor).reshape(-1)
    raise InvalidInputError(
        f"feature tensor {tensor.name!r} has shape {list(shape)}; use [rows] or [rows, 1]"
    )


def _as_float64(tensor: Tensor) -> Matrix:
    if tensor.datatype not in NUMERIC_TYPES:
        raise InvalidInputError(
            f"input {tensor.name!r} is {tensor.datatype}; the model takes numbers (e.g. FP64)"
        )
    return tensor.data.astype(np.float64)


# --- answers out -------------------------------------------------------------------------
def output_tensors(scores: Scores, manifest: ModelManifest, names: list[str]) -> list[Tensor]:
    """The named outputs, in the order asked for; `names` are checked by `check_outputs`."""
    return [
        _predict_tensor(scores, manifest) if name == PREDICT else _proba(scores) for name in names
    ]


def check_outputs(names: list[str], manifest: ModelManifest) -> None:
    unknown = [name for name in names if name not in output_names(manifest)]
    if unknown:
        raise InvalidInputError(
            f"{manifest.name} has no output {unknown[0]!r}; "
            f"it has {', '.join(output_names(manifest))}"
        )


def _predict_tensor(scores: Scores, manifest: ModelManifest) -> Tensor:
    datatype = _prediction_datatype(manifest)
    predictions = scores.predictions
    if datatype == BYTES:
        data = np.empty(len(predictions), dtype=object)
        data[:] = [str(label).encode() for label in predictions.tolist()]
    else:
        data = predictions.astype(np.int64 if datatype == "INT64" else np.float64)
    return Tensor(PREDICT, datatype, (len(predictions),), data)


def _proba(scores: Scores) -> Tensor:
    assert scores.probabilities is not None  # asked for whenever predict_proba is requested
    probabilities = scores.probabilities
    return Tensor(PREDICT_PROBA, "FP64", tuple(probabilities.shape), probabilities)
