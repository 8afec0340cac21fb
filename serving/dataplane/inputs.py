"""Request bodies to numpy: parse JSON, check every field, build the feature matrix.

Hand-written rather than a pydantic model: a 10,000-row body would cost tens of
milliseconds as pydantic objects, while numpy converts the whole list in one call.
The OpenAPI schema that documents these bodies is in schemas.py.
"""

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from serving.core.errors import InvalidInputError, MalformedRequestError, TooManyRowsError
from serving.core.quoting import shown, shown_names
from serving.dataplane.booleans import BooleanLiterals, first_boolean
from serving.repository.manifest import ModelManifest
from serving.repository.names import is_valid_name, is_version_number

Matrix = npt.NDArray[np.float64]
VersionSpec = int | str | None
_FIELDS = frozenset({"model", "version", "instances", "probabilities"})


@dataclass(frozen=True)
class PredictBody:
    model: str | None
    version: VersionSpec
    instances: list[Any]
    probabilities: bool
    # The rows as a float64 matrix, built while parsing, before the model is known (see
    # `positional_matrix`), or None: then `to_matrix` builds it once the model is resolved.
    prebuilt_matrix: Matrix | None = None
    boolean_literals: BooleanLiterals | None = None  # None: any cell may have been a boolean


def parse_predict_body(
    raw: bytes, *, allowed: frozenset[str], max_rows: int, convert: bool = False
) -> PredictBody:
    """Decode and check a predict body. `allowed` is the set of fields the route takes.

    With `convert`, positional rows are also turned into a matrix here, so a big body is
    decoded and converted in one worker-thread hop instead of two.
    """
    document = decode_object(raw)
    unknown = sorted(set(document) - (allowed & _FIELDS))
    if unknown:
        raise MalformedRequestError(f"unknown field(s): {shown_names(unknown)}")
    instances = _instances(document.get("instances"), max_rows)
    literals = BooleanLiterals(
        raw, outside_rows=int(isinstance(document.get("probabilities"), bool))
    )
    return PredictBody(
        model=_optional_model(document.get("model")),
        version=parse_version(document.get("version")),
        instances=instances,
        probabilities=_flag(document.get("probabilities", False)),
        prebuilt_matrix=positional_matrix(instances, literals) if convert else None,
        boolean_literals=literals,
    )


def decode_object(raw: bytes | memoryview) -> dict[str, Any]:
    """A JSON object, or MalformedRequestError."""
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedRequestError(f"body is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise MalformedRequestError("body must be a JSON object")
    return document


def parse_version(value: object) -> VersionSpec:
    """A version is a positive integer, an alias name, or absent."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise MalformedRequestError("version must be an integer or an alias name")
    if isinstance(value, int) and value >= 1:
        return value
    if isinstance(value, str):
        if is_version_number(value) and int(value) >= 1:
            return int(value)
        if is_valid_name(value):
            return value
    raise MalformedRequestError("version must be a positive integer or an alias name")


def _optional_model(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise MalformedRequestError("model must be a string")


def _flag(value: object) -> bool:
    if isinstance(value, bool):
        return value
    raise MalformedRequestError("probabilities must be true or false")


def _instances(value: object, max_rows: int) -> list[Any]:
    if value is None:
        raise MalformedRequestError("instances is required")
    if not isinstance(value, list):
        raise MalformedRequestError("instances must be a list of rows")
    if not value:
        raise MalformedRequestError("instances must hold at least one row")
    if len(value) > max_rows:
        raise TooManyRowsError(f"{len(value)} rows sent; at most {max_rows} per request")
    return value


def positional_matrix(
    instances: list[Any], literals: BooleanLiterals | None = None
) -> Matrix | None:
    """Positional rows as a float64 matrix, or None when they are by name or bad.

    Needs no model: the width, NaN and infinity are checked by `to_matrix` later. Bad rows
    return None and take `to_matrix`'s full path, which raises the error once the model is
    known (so an unknown model is still a 404).
    """
    if not isinstance(instances[0], list):
        return None
    try:
        return _numeric(instances, len(instances[0]), literals)
    except InvalidInputError:
        return None


def to_matrix(
    instances: list[Any],
    manifest: ModelManifest,
    prebuilt_matrix: Matrix | None = None,
    literals: BooleanLiterals | None = None,
) -> Matrix:
    """Rows (lists in feature order, or objects keyed by feature name) to a float64 matrix.

    `prebuilt_matrix` is `positional_matrix(instances)` when the caller already built it;
    `literals`, from the raw body, spares the boolean check a look at every 0 or 1
    (serving.dataplane.booleans).
    """
    if prebuilt_matrix is not None:
        if prebuilt_matrix.shape[1] != manifest.n_features:
            raise InvalidInputError(_shape_problem(instances, manifest.n_features))
        return check_values(prebuilt_matrix, manifest)
    if isinstance(instances[0], dict) and all(isinstance(row, dict) for row in instances):
        instances = _rows_by_name(instances, manifest.feature_names)
    names = manifest.feature_names
    return check_values(_numeric(instances, manifest.n_features, literals, names), manifest)


def check_values(matrix: Matrix, manifest: ModelManifest) -> Matrix:
    """NaN (a missing value, JSON null) only where the model takes it; infinity never."""
    if not manifest.accepts_nan and not (finite := np.isfinite(matrix)).all():
        row, feature = np.argwhere(~finite)[0]
        what = "infinity" if np.isinf(matrix[row, feature]) else "a missing value (null or NaN)"
        where = _cell(int(row), int(feature), manifest.feature_names)
        raise InvalidInputError(f"{where}: {what}; {manifest.name} takes finite numbers only")
    if manifest.accepts_nan and (infinite := np.isinf(matrix)).any():
        row, feature = np.argwhere(infinite)[0]
        where = _cell(int(row), int(feature), manifest.feature_names)
        raise InvalidInputError(f"{where}: infinity is not a valid feature value")
    return matrix


def _cell(row: int, feature: int, names: list[str] | None) -> str:
    """Where a bad value is, as a caller finds it: row number, feature number and name."""
    name = f" ({names[feature]})" if names else ""
    return f"row {row}, feature {feature}{name}"


def _numeric(
    rows: list[Any],
    n_features: int,
    literals: BooleanLiterals | None,
    names: list[str] | None = None,
) -> Matrix:
    try:
        # One C-level pass; builds a ragged or non-numeric array only on bad input.
        array = np.array(rows)
    except (ValueError, OverflowError):
        array = np.array(rows, dtype=object)  # ragged rows or huge ints: sorted out below
    if array.ndim != 2 or array.shape[1] != n_features:
        # Only here, on bad input, is each row's type looked at: a 2-D array means they
        # are all lists (numpy takes a dict or a string as one cell, not as a row).
        if any(not isinstance(row, list) for row in rows):
            raise InvalidInputError("each row must be a list of numbers or an object of features")
        raise InvalidInputError(_shape_problem(rows, n_features))
    if array.dtype.kind in "iuf":
        if (cell := first_boolean(array, rows, literals)) is not None:
            row, feature = cell
            value = rows[row][feature]
            raise InvalidInputError(f"{_cell(row, feature, names)}: {value!r} is not a number")
        return array.astype(np.float64, copy=False)
    if array.dtype.kind != "O":  # strings or booleans, alone or among numbers
        array = np.array(rows, dtype=object)
    return _numeric_objects(array, names)


def _numeric_objects(array: npt.NDArray[Any], names: list[str] | None) -> Matrix:
    """Mixed cells: numbers and nulls (missing values) only; booleans and strings are refused."""
    out = np.empty(array.shape, dtype=np.float64)
    for (row, feature), cell in np.ndenumerate(array):
        if cell is None:
            out[row, feature] = math.nan
        elif isinstance(cell, int | float) and not isinstance(cell, bool):
            out[row, feature] = _as_float(cell, _cell(row, feature, names))
        else:
            raise InvalidInputError(f"{_cell(row, feature, names)}: {shown(cell)} is not a number")
    return out


def _as_float(cell: float, where: str) -> float:
    try:
        return float(cell)
    except OverflowError:
        raise InvalidInputError(f"{where}: number too large") from None


def _shape_problem(rows: list[Any], n_features: int) -> str:
    for number, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != n_features:
            got = len(row) if isinstance(row, list) else "not a list"
            return f"row {number} has {got} values; the model takes {n_features} features"
    return f"each row must be a flat list of {n_features} numbers"


def _rows_by_name(rows: list[dict[str, Any]], names: list[str]) -> list[list[Any]]:
    expected = set(names)
    ordered = []
    for number, row in enumerate(rows):
        if row.keys() != expected:
            missing = shown_names(sorted(expected - row.keys()))
            unknown = shown_names(sorted(row.keys() - expected))
            raise InvalidInputError(
                f"row {number}: missing features {missing}, unknown features {unknown}"
            )
        ordered.append([row[name] for name in names])
    return ordered
