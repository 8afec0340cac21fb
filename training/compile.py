"""Compile a fitted estimator (pipelines included) to ONNX with skl2onnx, in double precision.

Linear models, scalers and the other converters skl2onnx ships compute in double when fed
double. Tree ensembles need two corrections, made here while skl2onnx converts them:

- scikit-learn casts a tree's input to float32 and compares it with float64 thresholds.
  skl2onnx's converters store thresholds as float32, so a row lying between a threshold and
  its float32 rounding takes the other branch. Forests and extra-trees are emitted instead as
  ai.onnx.ml opset 3 nodes with float64 thresholds and leaf values (`*_as_tensor`), and their
  input is rounded through float32 first, exactly as scikit-learn does.
- Rows with missing values go where each node's `missing_go_to_left` sends them.

Any other tree model would keep float32 thresholds, so it is refused (scikit-learn serves it).
"""

from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
import skl2onnx
from onnx import TensorProto, numpy_helper
from skl2onnx.common.data_types import DoubleTensorType
from skl2onnx.operator_converters.random_forest import (
    convert_sklearn_random_forest_classifier,
    convert_sklearn_random_forest_regressor_converter,
)
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)

OPSET = {"": 21, "ai.onnx.ml": 3}
INPUT_NAME = "X"
TREE_OPS = ("TreeEnsembleClassifier", "TreeEnsembleRegressor", "TreeEnsemble")
_DOUBLE_ATTRIBUTES = ("nodes_values", "class_weights", "target_weights", "base_values")
_CLASSIFIERS = (RandomForestClassifier, ExtraTreesClassifier)
_REGRESSORS = (RandomForestRegressor, ExtraTreesRegressor)


class NotCompilableError(Exception):
    """The estimator has no faithful ONNX form; the message says why."""


def converter_version() -> str:
    return f"skl2onnx {skl2onnx.__version__}, onnx opset {OPSET['']}"


def compile_estimator(estimator: Any, n_features: int) -> bytes:
    """The ONNX model (input `X`: float64 [rows, n_features]; outputs labels and
    probabilities for classifiers, `variable` for regressors) as bytes."""
    custom: dict[type, Callable[..., None]] = {
        kind: _exact_forest(convert_sklearn_random_forest_classifier) for kind in _CLASSIFIERS
    }
    custom.update(
        {
            kind: _exact_forest(convert_sklearn_random_forest_regressor_converter)
            for kind in _REGRESSORS
        }
    )
    try:
        model = skl2onnx.convert_sklearn(
            estimator,
            initial_types=[(INPUT_NAME, DoubleTensorType([None, n_features]))],
            target_opset=OPSET,
            options={id(step): {"zipmap": False} for step in _classifiers_in(estimator)},
            custom_conversion_functions=custom,
        )
    except Exception as exc:  # the converter raises many kinds for what it does not support
        what = ", ".join(type(step).__name__ for step in _steps(estimator))
        raise NotCompilableError(
            f"skl2onnx {skl2onnx.__version__} cannot convert ({what}): {_first_line(exc)}"
        ) from exc
    _refuse_float32_trees(model)
    return bytes(model.SerializeToString())


def _classifiers_in(estimator: Any) -> list[Any]:
    """Every step that is a classifier: each is asked for a plain probability matrix."""
    return [step for step in _steps(estimator) if hasattr(step, "classes_")]


def _steps(estimator: Any) -> list[Any]:
    return [step for _, step in getattr(estimator, "steps", [])] or [estimator]


def _exact_forest(convert: Callable[..., None]) -> Callable[..., None]:
    """skl2onnx's forest converter, made to emit double-precision opset 3 tree nodes."""

    def converter(scope: Any, operator: Any, container: Any) -> None:
        forest = operator.raw_operator
        missing_left = np.concatenate(
            [tree.tree_.missing_go_to_left for tree in forest.estimators_]
        ).astype(np.int64)
        add_node = container.add_node

        def add_tree_node(op_type: str, inputs: Any, outputs: Any, **attrs: Any) -> None:
            if op_type not in TREE_OPS:
                add_node(op_type, inputs, outputs, **attrs)
                return
            rounded = _round_through_float32(scope, add_node, inputs)
            attrs = _double_attributes(attrs)
            attrs["nodes_missing_value_tracks_true"] = _tracks(attrs, missing_left)
            if op_type == "TreeEnsembleClassifier":
                declared = _tensor_type(operator.outputs[1].type)
                _classify_first_max(scope, container, add_node, rounded, outputs, attrs, declared)
            else:
                as_float = scope.get_unique_variable_name("ensemble_float32")
                add_node(op_type, rounded, [as_float], **attrs)
                add_node("Cast", [as_float], outputs, to=TensorProto.DOUBLE, op_version=OPSET[""])

        container.add_node = add_tree_node
        try:
            convert(scope, operator, container, op_version=3)
        finally:
            container.add_node = add_node

    return converter


def _round_through_float32(scope: Any, add_node: Callable[..., None], inputs: Any) -> list[str]:
    """float64 -> float32 -> float64, as scikit-learn's trees see their input."""
    source = inputs if isinstance(inputs, str) else inputs[0]
    as_float = scope.get_unique_variable_name("tree_input_float32")
    rounded = scope.get_unique_variable_name("tree_input_rounded")
    add_node("Cast", [source], [as_float], to=TensorProto.FLOAT, op_version=OPSET[""])
    add_node("Cast", [as_float], [rounded], to=TensorProto.DOUBLE, op_version=OPSET[""])
    return [rounded]


def _classify_first_max(
    scope: Any,
    container: Any,
    add_node: Callable[..., None],
    inputs: list[str],
    outputs: list[str],
    attrs: dict[str, Any],
    probability_type: int,
) -> None:
    """Labels as scikit-learn picks them: the first class of highest probability (the
    ONNX Runtime node takes the last one on a tie, e.g. 0.5 against 0.5). The node's
    probabilities are float32; they are cast to the type skl2onnx declared."""
    label, probabilities = outputs
    as_float = scope.get_unique_variable_name("ensemble_probabilities")
    add_node(
        "TreeEnsembleClassifier",
        inputs,
        [scope.get_unique_variable_name("ensemble_label"), as_float],
        **attrs,
    )
    add_node("Cast", [as_float], [probabilities], to=probability_type, op_version=OPSET[""])
    best = scope.get_unique_variable_name("first_max")
    add_node("ArgMax", [probabilities], [best], axis=1, keepdims=0, op_version=OPSET[""])
    classes = scope.get_unique_variable_name("classes")
    if "classlabels_int64s" in attrs:
        values = list(attrs["classlabels_int64s"])
        container.add_initializer(classes, TensorProto.INT64, [len(values)], values)
    else:
        values = [_as_bytes(v) for v in attrs["classlabels_strings"]]
        container.add_initializer(classes, TensorProto.STRING, [len(values)], values)
    add_node("Gather", [classes, best], [label], axis=0, op_version=OPSET[""])


def _tensor_type(declared: Any) -> int:
    return TensorProto.DOUBLE if isinstance(declared, DoubleTensorType) else TensorProto.FLOAT


def _double_attributes(attrs: dict[str, Any]) -> dict[str, Any]:
    """Thresholds and leaf values as float64 tensors (opset 3), not float32 lists."""
    converted = dict(attrs)
    for name in _DOUBLE_ATTRIBUTES:
        if name in converted:
            values = np.asarray(converted.pop(name), dtype=np.float64).ravel()
            converted[f"{name}_as_tensor"] = numpy_helper.from_array(values)
    converted.pop("nodes_hitrates", None)
    return converted


def _tracks(attrs: dict[str, Any], missing_left: np.ndarray[Any, Any]) -> list[int]:
    """Where each node sends a missing value: the true branch is scikit-learn's left."""
    if len(attrs["nodes_nodeids"]) != len(missing_left):
        raise NotCompilableError("tree nodes do not line up with the forest's trees")
    return [int(value) for value in missing_left]


def _refuse_float32_trees(model: onnx.ModelProto) -> None:
    for node in model.graph.node:
        is_tree = node.domain == "ai.onnx.ml" and node.op_type in TREE_OPS
        has_double_thresholds = any(a.name == "nodes_values_as_tensor" for a in node.attribute)
        if is_tree and not has_double_thresholds:
            raise NotCompilableError(
                "only random forests and extra-trees compile exactly; other tree models "
                "would compare against float32 thresholds"
            )


def _as_bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:160]


__all__ = ["INPUT_NAME", "NotCompilableError", "compile_estimator", "converter_version"]
