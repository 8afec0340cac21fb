"""Model signatures from manifests: metadata, input tensors to a matrix, scores to outputs."""

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from serving.core.errors import InvalidInputError
from serving.dataplane.scoring import Scores
from serving.repository.manifest import ArtifactInfo, Feature, ModelManifest
from serving.v2.signature import input_metadata, output_metadata, output_tensors, to_matrix
from serving.v2.tensors import Tensor


def _manifest(**changes: Any) -> ModelManifest:
    values: dict[str, Any] = {
        "name": "flowers",
        "version": 2,
        "created_at": datetime(2025, 1, 1, tzinfo=UTC),
        "task": "classification",
        "features": [Feature(name="a"), Feature(name="b")],
        "n_features": 2,
        "classes": ["red", "blue"],
        "has_predict_proba": True,
        "python_version": "3.11",
        "sklearn_version": "1.5.0",
        "numpy_version": "2.0",
        "artifact": ArtifactInfo(sha256="0" * 64),
        "example": [0.0, 0.0],
    }
    return ModelManifest(**(values | changes))


def _tensor(name: str, shape: tuple[int, ...], values: list[Any], datatype: str = "FP64") -> Tensor:
    return Tensor(name, datatype, shape, np.asarray(values).reshape(shape))


def test_uniform_features_are_one_tensor() -> None:
    assert input_metadata(_manifest()) == [{"name": "input", "datatype": "FP64", "shape": [-1, 2]}]


def test_mixed_dtypes_are_one_tensor_per_feature() -> None:
    manifest = _manifest(features=[Feature(name="a"), Feature(name="b", dtype="int64")])

    assert input_metadata(manifest) == [
        {"name": "a", "datatype": "FP64", "shape": [-1]},
        {"name": "b", "datatype": "INT64", "shape": [-1]},
    ]


def test_string_classes_predict_bytes() -> None:
    assert output_metadata(_manifest()) == [
        {"name": "predict", "datatype": "BYTES", "shape": [-1]},
        {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 2]},
    ]


def test_feature_tensors_in_any_order_build_the_matrix_in_feature_order() -> None:
    inputs = [_tensor("b", (2, 1), [3, 4], "INT32"), _tensor("a", (2,), [1.5, 2.5])]

    matrix = to_matrix(inputs, _manifest())

    np.testing.assert_array_equal(matrix, [[1.5, 3.0], [2.5, 4.0]])
    assert matrix.dtype == np.float64


def test_one_tensor_of_any_name_is_the_matrix() -> None:
    matrix = to_matrix([_tensor("input-0", (1, 2), [1, 2])], _manifest())

    np.testing.assert_array_equal(matrix, [[1.0, 2.0]])


@pytest.mark.parametrize(
    ("inputs", "fragment"),
    [
        ([_tensor("x", (2,), [1, 2])], r"takes \[rows, 2\]"),
        ([_tensor("x", (1, 3), [1, 2, 3])], r"takes \[rows, 2\]"),
        ([_tensor("a", (1,), [1]), _tensor("c", (1,), [2])], "one tensor per feature"),
        ([_tensor("a", (1,), [1]), _tensor("b", (2,), [2, 3])], "same number of rows"),
        ([_tensor("a", (1, 2), [1, 2]), _tensor("b", (1,), [2])], r"\[rows\] or \[rows, 1\]"),
        ([_tensor("x", (0, 2), [])], "at least one row"),
        ([_tensor("x", (1, 2), [np.inf, 1])], "finite"),
        ([Tensor("x", "BOOL", (1, 2), np.asarray([[True, False]]))], "BOOL"),
    ],
)
def test_unusable_inputs_are_refused(inputs: list[Tensor], fragment: str) -> None:
    with pytest.raises(InvalidInputError, match=fragment):
        to_matrix(inputs, _manifest())


def test_outputs_in_the_order_asked_with_string_labels_as_bytes() -> None:
    scores = Scores(np.asarray(["red", "blue"]), np.asarray([[0.9, 0.1], [0.2, 0.8]]))

    proba, labels = output_tensors(scores, _manifest(), ["predict_proba", "predict"])

    assert (labels.datatype, labels.data.tolist()) == ("BYTES", [b"red", b"blue"])
    assert (proba.datatype, proba.shape) == ("FP64", (2, 2))


def test_integer_labels_are_int64() -> None:
    scores = Scores(np.asarray([1, 0], dtype=np.int32), None)

    (labels,) = output_tensors(scores, _manifest(classes=[0, 1]), ["predict"])

    assert (labels.datatype, labels.data.dtype) == ("INT64", np.dtype(np.int64))
