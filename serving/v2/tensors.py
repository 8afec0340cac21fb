"""One tensor's data to numpy and back: JSON `data` (flat or nested) and binary bytes.

Binary data is little-endian, row-major, without padding; a BYTES element is a 4-byte
length followed by that many bytes; BOOL is one byte, 0 or 1.
"""

import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from serving.core.errors import InvalidInputError, MalformedRequestError
from serving.core.quoting import shown
from serving.dataplane.booleans import BooleanLiterals, first_boolean
from serving.v2.datatypes import BYTES, FIXED_WIDTH, FLOAT_TYPES, INTEGER_TYPES, bf16_to_float32

_LENGTH_PREFIX = struct.Struct("<I")  # BYTES elements: a 4-byte little-endian length first


@dataclass(frozen=True)
class Tensor:
    """A named tensor. `data` has `shape`; BYTES hold `bytes` objects, BF16 arrives as float32."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: npt.NDArray[Any]


def json_values(
    data: object, datatype: str, count: int, where: str, literals: BooleanLiterals | None = None
) -> npt.NDArray[Any]:
    """Flat or nested JSON `data` as a flat array of `datatype`, `count` elements long.

    `literals` tells, from the body's raw bytes, whether it spells out any boolean at all.
    """
    if not isinstance(data, list):
        raise MalformedRequestError(f"{where}: data must be a list")
    if datatype == BYTES:
        array = _text_array(data, where)
    else:
        try:
            nested = np.array(data)
        except (ValueError, OverflowError):
            raise InvalidInputError(f"{where}: data is ragged or not numeric") from None
        if datatype != "BOOL" and nested.dtype.kind in "iuf":
            _refuse_booleans(nested, data, where, literals)
        array = _as_datatype(nested.ravel(), datatype, where)
    if array.size != count:
        raise InvalidInputError(f"{where}: shape holds {count} elements, data has {array.size}")
    return array


def _refuse_booleans(
    nested: npt.NDArray[Any], data: list[Any], where: str, literals: BooleanLiterals | None
) -> None:
    """numpy reads true and false among numbers as 1 and 0; a numeric tensor takes neither."""
    index = first_boolean(nested, data, literals)
    if index is not None:
        position = "".join(f"[{i}]" for i in index)
        raise InvalidInputError(f"{where}: data{position} is a boolean, not a number")


def _as_datatype(array: npt.NDArray[Any], datatype: str, where: str) -> npt.NDArray[Any]:
    kind = array.dtype.kind
    if datatype == "BOOL":
        if kind != "b" and array.size:
            raise InvalidInputError(f"{where}: BOOL data must be true or false")
        return array.astype(np.bool_)
    if kind == "O" and datatype in FLOAT_TYPES:
        array = _floats_with_nulls(array, where)
    elif kind not in "iuf" and array.size:
        raise InvalidInputError(f"{where}: {datatype} data must be numbers")
    if datatype in INTEGER_TYPES:
        return _as_integers(array, datatype, where)
    return array.astype(np.float32 if datatype == "BF16" else FIXED_WIDTH[datatype])


def _as_integers(array: npt.NDArray[Any], datatype: str, where: str) -> npt.NDArray[Any]:
    target = FIXED_WIDTH[datatype]
    if array.dtype.kind == "f" and array.size:
        raise InvalidInputError(f"{where}: {datatype} data must be whole numbers")
    limits = np.iinfo(target)
    if array.size and (array.min() < limits.min or array.max() > limits.max):
        raise InvalidInputError(f"{where}: a value is outside the range of {datatype}")
    return array.astype(target)


def _floats_with_nulls(array: npt.NDArray[Any], where: str) -> npt.NDArray[np.float64]:
    """JSON null is a missing value (NaN), as in /predict; other non-numbers are refused."""
    out = np.empty(array.shape, dtype=np.float64)
    for index, cell in enumerate(array):
        if cell is None:
            out[index] = math.nan
        elif isinstance(cell, int | float) and not isinstance(cell, bool):
            out[index] = float(cell)
        else:
            raise InvalidInputError(f"{where}: element {index} ({shown(cell)}) is not a number")
    return out


def _text_array(data: list[Any], where: str) -> npt.NDArray[np.object_]:
    flat: list[bytes] = []
    pending: list[Any] = list(reversed(data))
    while pending:
        item = pending.pop()
        if isinstance(item, list):
            pending.extend(reversed(item))
        elif isinstance(item, str):
            flat.append(item.encode())
        else:
            raise InvalidInputError(f"{where}: BYTES data must be strings")
    array = np.empty(len(flat), dtype=object)
    array[:] = flat
    return array


def binary_values(
    chunk: memoryview, datatype: str, count: int, where: str, shape: tuple[int, ...]
) -> npt.NDArray[Any]:
    if datatype == BYTES:
        return _unpack_bytes(chunk, count, where).reshape(shape)
    dtype = FIXED_WIDTH[datatype]
    if len(chunk) != count * dtype.itemsize:
        raise InvalidInputError(
            f"{where}: binary_data_size is {len(chunk)} bytes; "
            f"shape {list(shape)} of {datatype} needs {count * dtype.itemsize}"
        )
    if datatype == "BOOL":
        raw = np.frombuffer(chunk, dtype=np.uint8)
        if raw.size and raw.max() > 1:
            raise InvalidInputError(f"{where}: BOOL bytes must be 0 or 1")
        return raw.astype(np.bool_).reshape(shape)
    array = np.frombuffer(chunk, dtype=dtype)
    if datatype == "BF16":
        array = bf16_to_float32(array)
    return array.reshape(shape)


def _unpack_bytes(chunk: memoryview, count: int, where: str) -> npt.NDArray[np.object_]:
    items: list[bytes] = []
    offset = 0
    while offset < len(chunk):
        if offset + _LENGTH_PREFIX.size > len(chunk):
            raise InvalidInputError(f"{where}: BYTES data ends inside a length prefix")
        (length,) = _LENGTH_PREFIX.unpack_from(chunk, offset)
        offset += _LENGTH_PREFIX.size
        if offset + length > len(chunk):
            raise InvalidInputError(f"{where}: a BYTES element runs past binary_data_size")
        items.append(bytes(chunk[offset : offset + length]))
        offset += length
    if len(items) != count:
        raise InvalidInputError(f"{where}: shape holds {count} elements, data has {len(items)}")
    array = np.empty(len(items), dtype=object)
    array[:] = items
    return array


def json_data(tensor: Tensor) -> Any:
    if tensor.datatype == BYTES:
        return [item.decode("utf-8", errors="replace") for item in tensor.data.ravel()]
    return np.ascontiguousarray(tensor.data.ravel())


def packed(tensor: Tensor) -> bytes:
    if tensor.datatype == BYTES:
        return b"".join(_LENGTH_PREFIX.pack(len(item)) + item for item in tensor.data.ravel())
    return np.ascontiguousarray(tensor.data, dtype=FIXED_WIDTH[tensor.datatype]).tobytes()
