"""ModelInfer messages to the protocol's tensors (serving/v2) and back.

A tensor's data comes either typed, in the `contents` field of its datatype's family, or raw,
as one entry of `raw_input_contents` per input: the same bytes as the binary tensor data
extension over HTTP, so serving/v2/tensors.py reads them. Answers are raw when the request
was raw or asked for binary data (the `binary_data_output` request parameter or an output's
`binary_data`); typed otherwise. The protocol allows one form or the other for all outputs.
"""

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from serving.core.errors import InvalidInputError, MalformedRequestError
from serving.grpcapi.protocol.open_inference_pb2 import (
    InferParameter,
    InferTensorContents,
    ModelInferRequest,
    ModelInferResponse,
)
from serving.v2.codec import InferenceRequest, RequestedOutput
from serving.v2.datatypes import BYTES, FIXED_WIDTH, INTEGER_TYPES, check_datatype
from serving.v2.tensors import Tensor, binary_values, packed

# The typed field of each datatype; FP16 and BF16 have none and travel raw only.
CONTENTS_FIELD: dict[str, str] = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    BYTES: "bytes_contents",
}
BINARY_OUTPUT = "binary_data_output"  # request parameter, as over HTTP
BINARY_DATA = "binary_data"  # requested output parameter


def decode_request(message: ModelInferRequest) -> tuple[InferenceRequest, bool]:
    """The request as serving/v2 takes it, and whether the answer should be raw."""
    if not message.inputs:
        raise MalformedRequestError("inputs must hold at least one tensor")
    raw = message.raw_input_contents
    if raw and len(raw) != len(message.inputs):
        raise MalformedRequestError(
            f"raw_input_contents has {len(raw)} entries for {len(message.inputs)} inputs"
        )
    inputs = [
        _input(tensor, raw[index] if raw else None) for index, tensor in enumerate(message.inputs)
    ]
    _check_unique([tensor.name for tensor in inputs], "input")
    outputs = [_requested_output(output) for output in message.outputs]
    _check_unique([output.name for output in outputs], "output")
    as_raw = (
        bool(raw)
        or _bool_parameter(message.parameters, BINARY_OUTPUT)
        or any(output.is_binary for output in outputs)
    )
    request = InferenceRequest(
        id=message.id or None,
        inputs=inputs,
        outputs=outputs or None,
        is_binary_output=as_raw,
    )
    return request, as_raw


def _input(tensor: ModelInferRequest.InferInputTensor, raw: bytes | None) -> Tensor:
    if not tensor.name:
        raise MalformedRequestError("every input needs a name")
    where = f"input {tensor.name!r}"
    datatype = check_datatype(tensor.datatype, where)
    shape = tuple(tensor.shape)
    if any(size < 0 for size in shape):
        raise MalformedRequestError(f"{where}: shape must be a list of non-negative integers")
    if "shared_memory_region" in tensor.parameters:
        raise InvalidInputError(f"{where}: shared memory is not supported; send the data")
    count = math.prod(shape)
    if raw is not None:
        if tensor.HasField("contents"):
            raise MalformedRequestError(f"{where}: raw_input_contents and contents are exclusive")
        values = binary_values(memoryview(raw), datatype, count, where, shape)
        return Tensor(tensor.name, datatype, shape, values)
    values = _typed_values(tensor.contents, datatype, count, where)
    return Tensor(tensor.name, datatype, shape, values.reshape(shape))


def _typed_values(
    contents: InferTensorContents, datatype: str, count: int, where: str
) -> npt.NDArray[Any]:
    field = CONTENTS_FIELD.get(datatype)
    if field is None:
        raise InvalidInputError(f"{where}: {datatype} has no typed contents; send it raw")
    values: Sequence[Any] = getattr(contents, field)
    if len(values) != count:
        raise InvalidInputError(f"{where}: shape holds {count} elements, {field} has {len(values)}")
    if datatype == BYTES:
        array = np.empty(count, dtype=object)
        array[:] = list(values)
        return array
    if datatype in INTEGER_TYPES:
        return _integers(values, datatype, where)
    return np.array(values, dtype=FIXED_WIDTH[datatype])


def _integers(values: Sequence[int], datatype: str, where: str) -> npt.NDArray[Any]:
    """int_contents carries INT8 and INT16 as int32: values out of the type's range are refused."""
    target = FIXED_WIDTH[datatype]
    wide = np.array(values, dtype=np.uint64 if datatype == "UINT64" else np.int64)
    limits = np.iinfo(target)
    if wide.size and (wide.min() < limits.min or wide.max() > limits.max):
        raise InvalidInputError(f"{where}: a value is outside the range of {datatype}")
    return wide.astype(target)


def _requested_output(output: ModelInferRequest.InferRequestedOutputTensor) -> RequestedOutput:
    if not output.name:
        raise MalformedRequestError("every requested output needs a name")
    for unsupported in ("classification", "shared_memory_region"):
        if unsupported in output.parameters:
            raise InvalidInputError(f"output {output.name!r}: {unsupported} is not supported")
    is_binary = (
        _bool_parameter(output.parameters, BINARY_DATA)
        if BINARY_DATA in output.parameters
        else None
    )
    return RequestedOutput(output.name, is_binary)


def _bool_parameter(parameters: Mapping[str, InferParameter], name: str) -> bool:
    parameter = parameters.get(name)
    if parameter is None:
        return False
    if parameter.WhichOneof("parameter_choice") != "bool_param":
        raise MalformedRequestError(f"parameter {name} must be a bool_param")
    return parameter.bool_param


def _check_unique(names: list[str], what: str) -> None:
    repeated = sorted(name for name, count in Counter(names).items() if count > 1)
    if repeated:
        raise MalformedRequestError(f"{what} names must be unique; repeated: {repeated}")


def encode_response(
    model_name: str,
    model_version: int,
    request_id: str | None,
    outputs: Sequence[Tensor],
    as_raw: bool,
) -> ModelInferResponse:
    response = ModelInferResponse(
        model_name=model_name, model_version=str(model_version), id=request_id or ""
    )
    for tensor in outputs:
        output = response.outputs.add(
            name=tensor.name, datatype=tensor.datatype, shape=tensor.shape
        )
        if as_raw:
            response.raw_output_contents.append(packed(tensor))
        else:
            typed = getattr(output.contents, CONTENTS_FIELD[tensor.datatype])
            typed.extend(tensor.data.ravel().tolist())
    return response
