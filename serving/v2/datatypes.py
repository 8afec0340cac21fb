"""The protocol's tensor datatypes and the numpy dtypes they travel as (little-endian)."""

from typing import Any

import numpy as np
import numpy.typing as npt

from serving.core.errors import MalformedRequestError
from serving.core.quoting import shown

# Fixed-width types: every element is `itemsize` bytes in the binary tensor data extension.
FIXED_WIDTH: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype("?"),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "BF16": np.dtype("<u2"),  # numpy has no bfloat16: carried as raw 16-bit words
}
BYTES = "BYTES"  # variable width: each element is a 4-byte length, then that many bytes
DATATYPES = frozenset({*FIXED_WIDTH, BYTES})
INTEGER_TYPES = frozenset(name for name, dtype in FIXED_WIDTH.items() if dtype.kind in "iu")
FLOAT_TYPES = frozenset({"FP16", "FP32", "FP64", "BF16"})
NUMERIC_TYPES = INTEGER_TYPES | FLOAT_TYPES

_MANIFEST_DTYPES = {"float64": "FP64", "float32": "FP32", "int64": "INT64"}


def check_datatype(datatype: object, where: str) -> str:
    if not isinstance(datatype, str) or datatype not in DATATYPES:
        known = ", ".join(sorted(DATATYPES))
        raise MalformedRequestError(
            f"{where}: datatype must be one of {known}, not {shown(datatype)}"
        )
    return datatype


def from_manifest_dtype(dtype: str) -> str:
    """A manifest feature dtype (`float64`, ...) as a protocol datatype (`FP64`, ...)."""
    return _MANIFEST_DTYPES[dtype]


def bf16_to_float32(words: npt.NDArray[np.uint16]) -> npt.NDArray[np.float32]:
    """bfloat16 is the top half of a float32: shift the 16-bit words back into place."""
    return (words.astype(np.uint32) << 16).view(np.float32)
