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

# Candidates (cells equal to 0 or 1) looked at one by one in Python, about 0.1 us each,
# before the raw body is scanned instead (about 0.5 ms per MB).
_FEW_CANDIDATES = 2048
# Bodies this small are scanned first: that takes less than numpy's calls on a tiny array.
_SCAN_FIRST_BYTES = 16 * 1024


@dataclass(frozen=True)
class BooleanWords:
    """Whether a JSON body can hold a boolean where numbers are expected, from its raw bytes.

    A boolean is always spelled `true` or `false`, so a body in which those words occur no
    more often than its other fields account for has none among its numbers. (A word inside
    a string only makes the answer a cautious yes.)
    """

    raw: bytes = field(repr=False)
    elsewhere: int = 0  # words the body's other boolean fields account for

    def may_be_among_numbers(self) -> bool:
        return self.raw.count(b"true") + self.raw.count(b"false") > self.elsewhere


def first_boolean(
    array: npt.NDArray[Any], data: list[Any], words: BooleanWords | None
) -> tuple[int, ...] | None:
    """The index of the first cell of `array`, numpy's numeric view of the nested lists
    `data`, that was a JSON boolean; None when there is none. `words`, when given, saves
    looking at thousands of candidates one by one in a body that holds no boolean.
    """
    if words is not None and len(words.raw) <= _SCAN_FIRST_BYTES:
        if not words.may_be_among_numbers():
            return None
        words = None  # it may: every candidate is looked at
    candidates = np.nonzero((array == 0) | (array == 1))
    many = len(candidates[0]) > _FEW_CANDIDATES
    if many and words is not None and not words.may_be_among_numbers():
        return None
    for index in zip(*(axis.tolist() for axis in candidates), strict=True):
        cell: Any = data
        for position in index:
            cell = cell[position]
        if isinstance(cell, bool):
            return tuple(index)
    return None
