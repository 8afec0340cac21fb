"""Compiling at publish: what converts, the parity gate, and what the manifest records."""

from pathlib import Path

import numpy as np
import onnxruntime
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from skl2onnx import to_onnx
from sklearn.ensemble import ExtraTreesClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from training.compile import NotCompilableError, compile_estimator
from training.data import load_dataset
from training.parity import CheckRows, check_parity, generated_rows, read_rows
from training.pipelines import build_pipeline
from training.publish import prepare


@pytest.fixture(scope="module")
def forest() -> Pipeline:
    data = load_dataset("breast_cancer")
    return build_pipeline("breast_cancer").fit(data.x_train, data.y_train)


def test_the_forest_agrees_on_held_out_rows_and_a_float32_threshold_conversion_does_not(
    forest: Pipeline,
) -> None:
    """The parity trap: skl2onnx's own forest compares raw float64 inputs with float32
    thresholds, and on the held-out rows some probabilities move; the gate refuses it."""
    held_out = CheckRows(load_dataset("breast_cancer").x_test, "held-out")
    plain = to_onnx(forest, held_out.rows[:1], options={"zipmap": False}).SerializeToString()

    parity = check_parity(forest, compile_estimator(forest, 30), held_out, probabilities=True)
    with pytest.raises(NotCompilableError, match="differ from scikit-learn"):
        check_parity(forest, plain, held_out, probabilities=True)

    assert (parity.rows, parity.rows_from) == (143, "held-out")
    assert parity.max_difference <= 1e-6


def test_generated_rows_sit_on_the_forests_thresholds_and_reach_missing_values(
    forest: Pipeline,
) -> None:
    example = load_dataset("breast_cancer").x_test[0].tolist()
    rows = generated_rows(forest, example, accepts_nan=True)
    first_split = forest[-1].estimators_[0].tree_
    feature, threshold = first_split.feature[0], first_split.threshold[0]

    parity = check_parity(forest, compile_estimator(forest, 30), rows, probabilities=True)

    assert threshold in rows.rows[:, feature]
    assert np.isnan(rows.rows).any()
    assert parity.rows == len(rows.rows) and parity.rows_from == "generated"


def test_extra_trees_with_string_classes_and_a_forest_regressor_compile_exactly() -> None:
    data = load_dataset("iris")
    names = np.array(["setosa", "versicolor", "virginica"])[data.y_train]
    trees = ExtraTreesClassifier(n_estimators=30, random_state=0).fit(data.x_train, names)
    regressor = RandomForestRegressor(n_estimators=30, random_state=0).fit(
        data.x_train[:, :3], data.x_train[:, 3] * 100
    )

    labelled = check_parity(
        trees, compile_estimator(trees, 4), CheckRows(data.x_test, "held-out"), True
    )
    regressed = check_parity(
        regressor,
        compile_estimator(regressor, 3),
        CheckRows(data.x_test[:, :3], "held-out"),
        probabilities=False,
    )

    assert labelled.max_difference <= 1e-6 and regressed.max_difference <= 1e-6


def test_a_compiled_form_of_another_model_is_refused() -> None:
    data = load_dataset("iris")
    fitted = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    one = fitted.fit(data.x_train, data.y_train)
    other = make_pipeline(StandardScaler(), LogisticRegression(C=0.01, max_iter=500)).fit(
        data.x_train, data.y_train
    )

    with pytest.raises(NotCompilableError, match="differ from scikit-learn"):
        check_parity(one, compile_estimator(other, 4), CheckRows(data.x_test, "held-out"), True)


def test_an_unconvertible_pipeline_is_published_without_a_compiled_form_saying_why() -> None:
    data = load_dataset("iris")
    logged = make_pipeline(FunctionTransformer(np.log1p), LogisticRegression(max_iter=500))
    logged.fit(data.x_train, data.y_train)

    signed = prepare(logged, name="logged", signing_key=Ed25519PrivateKey.generate())

    assert signed.compiled is None
    assert signed.manifest.compiled is not None
    assert signed.manifest.compiled.sha256 is None
    assert "FunctionTransformer is not supported" in signed.manifest.compiled.reason


def test_a_published_compiled_form_is_listed_with_its_checksum_and_loads(
    forest: Pipeline,
) -> None:
    example = load_dataset("breast_cancer").x_test[0].tolist()

    signed = prepare(
        forest, name="forest", signing_key=Ed25519PrivateKey.generate(), example=example
    )

    info = signed.manifest.compiled
    assert signed.compiled is not None and info is not None and info.parity is not None
    assert info.parity.rows_from == "generated"
    session = onnxruntime.InferenceSession(signed.compiled, providers=["CPUExecutionProvider"])
    assert [output.name for output in session.get_outputs()] == ["label", "probabilities"]


def test_data_files_are_read_as_csv_with_a_header_or_npy(tmp_path: Path) -> None:
    rows = load_dataset("iris").x_test
    csv = tmp_path / "rows.csv"
    csv.write_text("a,b,c,d\n" + "\n".join(",".join(map(str, row)) for row in rows))
    npy = tmp_path / "rows.npy"
    np.save(npy, rows)

    from_csv, from_npy = read_rows(csv, 4), read_rows(npy, 4)

    np.testing.assert_array_equal(from_csv.rows, rows)
    np.testing.assert_array_equal(from_npy.rows, rows)
    assert from_csv.source == "data-file"
    with pytest.raises(ValueError, match="4 columns; the model takes 3"):
        read_rows(npy, 3)
