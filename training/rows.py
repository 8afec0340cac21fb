"""Read a table of feature rows from a file: the training data behind `serving push --data`."""

from pathlib import Path

import numpy as np
import numpy.typing as npt


def read_rows(path: Path) -> npt.NDArray[np.float64]:
    """A .npy array (no pickles) or a CSV of numbers, with or without a header line.

    Raises ValueError when the file holds no numeric table.
    """
    if path.suffix == ".npy":
        rows = np.load(path, allow_pickle=False)
    else:
        with path.open(encoding="utf-8") as file:
            first = file.readline()
        rows = np.loadtxt(path, delimiter=",", skiprows=0 if _is_numeric(first) else 1, ndmin=2)
    matrix = np.asarray(rows, dtype=np.float64)
    if matrix.ndim != 2 or matrix.size == 0:
        raise ValueError(f"{path} holds no table of rows")
    return matrix


def _is_numeric(line: str) -> bool:
    try:
        [float(cell) for cell in line.split(",")]
    except ValueError:
        return False
    return True
