"""The parity gate: a compiled form is kept only if it answers as scikit-learn does.

Same labels, and probabilities or regression outputs within TOLERANCE, on the publisher's
held-out rows, on rows from `serving push --data FILE`, or else on rows generated here.

Generated rows are a weaker check than real data, and the manifest says which was used.
Each feature is drawn around the example row: uniformly over the span of the thresholds
the model's trees split that feature on (widened by a tenth each side), plus rows placed
exactly on those thresholds and on their float32 neighbours, where a rounding difference
would show; for a feature no tree splits on, over the example value +/- max(1, |value|).
Models that accept missing values also get rows with missing cells. What generated rows
cannot reach (a combination of features the example never comes near) is not checked.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import onnxruntime

from serving.repository.manifest import Parity
from training.compile import INPUT_NAME, NotCompilableError

TOLERANCE = 1e-6  # absolute, or relative to the value where scikit-learn's exceeds 1
MAX_ROWS = 10_000  # rows checked at most; more adds time, not much confidence
GENERATED_ROWS = 2_000
Matrix = npt.NDArray[np.float64]
RowsFrom = Literal["held-out", "data-file", "generated"]


@dataclass(frozen=True)
class CheckRows:
    """The rows the gate runs on, and where they came from (recorded in the manifest)."""

    rows: Matrix
    source: RowsFrom


def check_parity(estimator: Any, compiled: bytes, check: CheckRows, probabilities: bool) -> Parity:
    """The parity result, or NotCompilableError saying where the compiled form disagrees."""
    rows = usable_rows(estimator, check.rows)
    session = onnxruntime.InferenceSession(compiled, providers=["CPUExecutionProvider"])
    outputs = session.run(None, {INPUT_NAME: rows})
    expected = np.asarray(estimator.predict(rows))
    got = np.asarray(outputs[0]).reshape(expected.shape)
    if probabilities:
        if not np.array_equal(got, expected):
            wrong = int(np.count_nonzero(got != expected))
            raise NotCompilableError(f"labels differ from scikit-learn on {wrong} rows")
        expected = np.asarray(estimator.predict_proba(rows), dtype=np.float64)
        got = np.asarray(outputs[1], dtype=np.float64)
    difference = _largest_difference(np.asarray(got, dtype=np.float64), expected)
    if difference > TOLERANCE:
        raise NotCompilableError(
            f"outputs differ from scikit-learn by up to {difference:.3g} (tolerance {TOLERANCE})"
        )
    return Parity(rows=len(rows), max_difference=difference, rows_from=check.source)


def usable_rows(estimator: Any, rows: Matrix) -> Matrix:
    """At most MAX_ROWS rows, without missing values unless the model accepts them."""
    rows = np.ascontiguousarray(rows[:MAX_ROWS], dtype=np.float64)
    try:
        estimator.predict(rows[:1])
    except ValueError:
        rows = rows[~np.isnan(rows).any(axis=1)]
    if len(rows) == 0:
        raise NotCompilableError("no rows to check the compiled form on")
    return rows


def _largest_difference(got: Matrix, expected: Matrix) -> float:
    scale = np.maximum(1.0, np.abs(expected))
    relative = np.abs(got - expected) / scale
    if np.isnan(relative).any():
        return float("inf")
    return float(relative.max()) if relative.size else 0.0


def generated_rows(
    estimator: Any, example: list[float], accepts_nan: bool, seed: int = 0
) -> CheckRows:
    rng = np.random.default_rng(seed)
    n_features = len(example)
    thresholds = split_thresholds(estimator, n_features)
    columns = []
    for feature, centre in enumerate(example):
        splits = thresholds[feature]
        if splits.size:
            low, high = float(splits.min()), float(splits.max())
            margin = (high - low) / 10 or 1.0
            low, high = low - margin, high + margin
        else:
            spread = max(1.0, abs(centre))
            low, high = centre - spread, centre + spread
        drawn = rng.uniform(low, high, GENERATED_ROWS)
        edges = _on_and_beside(splits)
        if edges.size:
            drawn[: min(edges.size, GENERATED_ROWS // 2)] = rng.permutation(edges)[
                : GENERATED_ROWS // 2
            ]
        columns.append(rng.permutation(drawn))
    rows = np.column_stack(columns)
    rows[0] = example
    if accepts_nan:
        rows[rng.random(rows.shape) < 0.05] = np.nan
    return CheckRows(rows, "generated")


def _on_and_beside(splits: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Each threshold, and the float32 values on either side of it."""
    if not splits.size:
        return splits
    as_float32 = splits.astype(np.float32)
    below = np.nextafter(as_float32, np.float32(-np.inf))
    above = np.nextafter(as_float32, np.float32(np.inf))
    return np.concatenate([splits, as_float32, below, above]).astype(np.float64)


def split_thresholds(estimator: Any, n_features: int) -> list[npt.NDArray[np.float64]]:
    """Per input feature, the thresholds of the trees that read that feature directly
    (the first step of a pipeline, or the estimator itself)."""
    found: list[list[npt.NDArray[np.float64]]] = [[] for _ in range(n_features)]
    steps = [step for _, step in getattr(estimator, "steps", [])] or [estimator]
    first = steps[0]
    trees = getattr(first, "estimators_", None)
    for tree in trees if isinstance(trees, list) else []:
        structure = getattr(tree, "tree_", None)
        if structure is None:
            continue
        split = structure.feature >= 0
        for feature in np.unique(structure.feature[split]):
            if 0 <= feature < n_features:
                found[feature].append(structure.threshold[split & (structure.feature == feature)])
    return [np.unique(np.concatenate(parts)) if parts else np.empty(0) for parts in found]


def read_rows(path: Path, n_features: int) -> CheckRows:
    """Rows from `--data FILE`: a .npy matrix, or CSV (a header line is skipped)."""
    try:
        if path.suffix == ".npy":
            rows = np.load(path, allow_pickle=False)
        else:
            rows = np.genfromtxt(path, delimiter=",", dtype=np.float64, max_rows=MAX_ROWS + 1)
            if rows.ndim == 2 and np.isnan(rows[0]).all():
                rows = rows[1:]  # the header line
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read rows from {path}: {exc}") from exc
    rows = np.atleast_2d(np.asarray(rows, dtype=np.float64))
    if rows.shape[1] != n_features:
        raise ValueError(
            f"{path} has {rows.shape[1]} columns; the model takes {n_features} columns"
        )
    return CheckRows(rows[:MAX_ROWS], "data-file")
