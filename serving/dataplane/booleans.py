"""JSON booleans hiding among numbers.

`numpy.array([[1.5, True]])` is a float64 array holding 1.0: numpy converts the whole nested
list in one C-level pass and leaves no sign that a cell was a boolean. The contract refuses
non-numeric feature values, so this module finds such cells afterwards, cheaply: only a cell
equal to 0 or 1 can have been a boolean, and a body that never spells out `true` or `false`
holds none at all.
"""

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

# Candidates (cells equal to 0 or 1) up to this many are looked at one by one in Python,
# about 0.1 us each; beyond it the raw body is scanned instead (about 0.5 ms per MB).
_MAX_CANDIDATES_LOOKED_AT = 2048
# Bodies up to this size are scanned first: that takes less than numpy's calls on a tiny array.
_SCAN_FIRST_MAX_BYTES = 16 * 1024


@dataclass(frozen=True)
class BooleanLiterals:
    """Whether a JSON body can hold a boolean where numbers are expected, from its raw bytes.

    A boolean is always the literal `true` or `false`, so a body in which those literals
    occur no more often than its other fields account for has none among its numbers. (The
    letters inside a string only make the answer a cautious yes.)
    """

    raw: bytes = field(repr=False)
    outside_rows: int = 0  # literals the body's other boolean fields account for

    def may_be_among_numbers(self) -> bool:
        return self.raw.count(b"true") + self.raw.count(b"false") > self.outside_rows


def first_boolean(
    array: npt.NDArray[Any], data: list[Any], literals: BooleanLiterals | None
) -> tuple[int, ...] | None:
    """The index of the first cell of `array`, numpy's numeric view of the nested lists
    `data`, that was a JSON boolean; None when there is none. `literals`, when given, saves
    looking at thousands of candidates one by one in a body that holds no boolean.
    """
    if literals is not None and len(literals.raw) <= _SCAN_FIRST_MAX_BYTES:
        if not literals.may_be_among_numbers():
            return None
        literals = None  # it may: every candidate is looked at
    candidates = np.nonzero((array == 0) | (array == 1))
    many = len(candidates[0]) > _MAX_CANDIDATES_LOOKED_AT
    if many and literals is not None and not literals.may_be_among_numbers():
        return None
    for index in zip(*(axis.tolist() for axis in candidates), strict=True):
        cell: Any = data
        for position in index:
            cell = cell[position]
        if isinstance(cell, bool):
            return tuple(index)
    return None
