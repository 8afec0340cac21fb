"""Inference bodies of the protocol to numpy and back: JSON tensors and binary tensor data.

A request body is a JSON object, optionally followed by raw tensor bytes (the binary tensor
data extension): the header `Inference-Header-Content-Length` says where the JSON ends, and
each input with a `binary_data_size` parameter takes its bytes from the tail, in input order.
Answers use the same layout for outputs asked for as binary.
"""

import math
import re
from dataclasses import dataclass
from typing import Any

import orjson

from serving.core.errors import InvalidInputError, MalformedRequestError
from serving.core.quoting import shown, shown_names
from serving.dataplane.booleans import BooleanLiterals
from serving.dataplane.inputs import decode_object
from serving.v2.datatypes import check_datatype
from serving.v2.limits import (
    MAX_DIMENSIONS,
    MAX_INPUTS,
    MAX_NAME_LENGTH,
    MAX_OUTPUTS,
    MAX_PARAMETERS,
    check_count,
)
from serving.v2.tensors import Tensor, binary_values, json_data, json_values, packed

_DIGITS = re.compile(r"[0-9]{1,18}")  # a byte count; int() of thousands of digits raises


@dataclass(frozen=True)
class RequestedOutput:
    name: str
    is_binary: bool | None  # None: the request's `binary_data_output` decides


@dataclass(frozen=True)
class InferenceRequest:
    id: str | None
    inputs: list[Tensor]
    outputs: list[RequestedOutput] | None  # None: every output the model has
    is_binary_output: bool  # request parameter `binary_data_output`


# --- decoding ---------------------------------------------------------------------------
def decode_request(body: bytes, header_length: str | None) -> InferenceRequest:
    """Parse and check a whole inference body; raises MalformedRequestError or InvalidInputError.

    Linear in the body's size: counts are capped (serving.v2.limits) before per-item work.
    """
    json_length = _json_length(header_length, len(body))
    json_part = body[:json_length]
    document = decode_object(json_part)
    literals = BooleanLiterals(json_part)
    tail = _BinaryTail(memoryview(body)[json_length:])
    inputs = _list(document.get("inputs"), "inputs")
    if not inputs:
        raise MalformedRequestError("inputs must hold at least one tensor")
    check_count(inputs, MAX_INPUTS, "inputs")
    tensors = [_input(item, f"inputs[{i}]", tail, literals) for i, item in enumerate(inputs)]
    tail.check_consumed()
    _check_unique([t.name for t in tensors], "input")
    parameters = _parameters(document.get("parameters"), "parameters")
    return InferenceRequest(
        id=_optional_str(document.get("id"), "id"),
        inputs=tensors,
        outputs=_requested_outputs(document.get("outputs")),
        is_binary_output=_optional_bool(parameters.get("binary_data_output"), False),
    )


def _json_length(header: str | None, body_length: int) -> int:
    if header is None:
        return body_length
    if not _DIGITS.fullmatch(header.strip()) or int(header) > body_length:
        raise MalformedRequestError(
            f"Inference-Header-Content-Length must be a byte count up to {body_length}"
        )
    return int(header)


def _input(item: object, where: str, tail: "_BinaryTail", literals: BooleanLiterals) -> Tensor:
    if not isinstance(item, dict):
        raise MalformedRequestError(f"{where} must be an object")
    name = _name(item.get("name"), where)
    where = f"input {name!r}"
    datatype = check_datatype(item.get("datatype"), where)
    shape = _shape(item.get("shape"), where)
    parameters = _parameters(item.get("parameters"), f"{where} parameters")
    if "shared_memory_region" in parameters:
        raise InvalidInputError(f"{where}: shared memory is not supported; send the data")
    count = math.prod(shape)
    size = parameters.get("binary_data_size")
    if size is not None:
        if "data" in item:
            raise MalformedRequestError(f"{where}: binary_data_size and data are exclusive")
        chunk = tail.take(_size(size, where), where)
        return Tensor(name, datatype, shape, binary_values(chunk, datatype, count, where, shape))
    if "data" not in item:
        raise MalformedRequestError(f"{where}: data is required (or binary_data_size)")
    values = json_values(item["data"], datatype, count, where, literals)
    return Tensor(name, datatype, shape, values.reshape(shape))


class _BinaryTail:
    """The bytes after the JSON, handed out to binary inputs in order."""

    def __init__(self, tail: memoryview) -> None:
        self._tail, self._offset = tail, 0

    def take(self, size: int, where: str) -> memoryview:
        if self._offset + size > len(self._tail):
            raise MalformedRequestError(
                f"{where}: binary_data_size {size} runs past the end of the body "
                "(is Inference-Header-Content-Length set?)"
            )
        chunk = self._tail[self._offset : self._offset + size]
        self._offset += size
        return chunk

    def check_consumed(self) -> None:
        if self._offset != len(self._tail):
            extra = len(self._tail) - self._offset
            raise MalformedRequestError(
                f"{extra} bytes after the JSON belong to no input's binary_data_size"
            )


def _requested_outputs(value: object) -> list[RequestedOutput] | None:
    if value is None:
        return None
    outputs_list = _list(value, "outputs")
    check_count(outputs_list, MAX_OUTPUTS, "outputs")
    outputs = [_requested_output(item, f"outputs[{i}]") for i, item in enumerate(outputs_list)]
    _check_unique([output.name for output in outputs], "output")
    return outputs or None


def _requested_output(item: object, where: str) -> RequestedOutput:
    if not isinstance(item, dict):
        raise MalformedRequestError(f"{where} must be an object")
    name = _name(item.get("name"), where)
    parameters = _parameters(item.get("parameters"), f"output {name!r} parameters")
    for unsupported in ("classification", "shared_memory_region"):
        if unsupported in parameters:
            raise InvalidInputError(f"output {name!r}: {unsupported} is not supported")
    is_binary = parameters.get("binary_data")
    return RequestedOutput(name, None if is_binary is None else _optional_bool(is_binary, False))


# --- small field checks -----------------------------------------------------------------
def _list(value: object, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise MalformedRequestError(f"{where} must be a list")
    return value


def _name(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise MalformedRequestError(f"{where}: name must be a non-empty string")
    if len(value) > MAX_NAME_LENGTH:
        raise MalformedRequestError(
            f"{where}: name {shown(value)} is longer than {MAX_NAME_LENGTH} characters"
        )
    return value


def _shape(value: object, where: str) -> tuple[int, ...]:
    if isinstance(value, list) and len(value) > MAX_DIMENSIONS:
        raise MalformedRequestError(f"{where}: shape has more than {MAX_DIMENSIONS} dimensions")
    if not isinstance(value, list) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in value
    ):
        raise MalformedRequestError(f"{where}: shape must be a list of non-negative integers")
    return tuple(value)


def _size(value: object, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise MalformedRequestError(f"{where}: binary_data_size must be a non-negative integer")
    return value


def _parameters(value: object, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MalformedRequestError(f"{where} must be an object")
    check_count(value, MAX_PARAMETERS, where)
    return value


def _optional_str(value: object, where: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise MalformedRequestError(f"{where} must be a string")


def _optional_bool(value: object, default: bool) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise MalformedRequestError(
            f"binary_data parameters must be true or false, not {shown(value)}"
        )
    return value


def _check_unique(names: list[str], what: str) -> None:
    seen: set[str] = set()
    repeated: set[str] = set()
    for name in names:  # one pass: linear in the number of names
        (repeated if name in seen else seen).add(name)
    if repeated:
        listed = shown_names(sorted(repeated))
        raise MalformedRequestError(f"{what} names must be unique; repeated: {listed}")


# --- encoding ---------------------------------------------------------------------------
def encode_response(
    model_name: str, model_version: int, request_id: str | None, outputs: list[tuple[Tensor, bool]]
) -> tuple[bytes, int | None]:
    """The answer body and, when binary outputs follow the JSON, the JSON's length."""
    documents: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for tensor, is_binary in outputs:
        document: dict[str, Any] = {
            "name": tensor.name,
            "datatype": tensor.datatype,
            "shape": list(tensor.shape),
        }
        if is_binary:
            chunks.append(packed(tensor))
            document["parameters"] = {"binary_data_size": len(chunks[-1])}
        else:
            document["data"] = json_data(tensor)
        documents.append(document)
    answer: dict[str, Any] = {"model_name": model_name, "model_version": str(model_version)}
    if request_id is not None:
        answer["id"] = request_id
    answer["outputs"] = documents
    header = orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)
    if not chunks:
        return header, None
    return b"".join([header, *chunks]), len(header)
