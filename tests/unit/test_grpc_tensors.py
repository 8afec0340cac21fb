"""ModelInfer messages to serving/v2 tensors and back, for every datatype family."""

import numpy as np
import pytest

from serving.core.errors import InvalidInputError, MalformedRequestError
from serving.grpcapi.protocol import open_inference_pb2 as pb
from serving.grpcapi.tensors import CONTENTS_FIELD, decode_request, encode_response
from serving.v2.datatypes import DATATYPES, FIXED_WIDTH
from serving.v2.tensors import Tensor


def _typed(datatype: str, values: list[object], shape: list[int]) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="m")
    tensor = request.inputs.add(name="x", datatype=datatype, shape=shape)
    getattr(tensor.contents, CONTENTS_FIELD[datatype]).extend(values)
    return request


@pytest.mark.parametrize(
    ("datatype", "values", "expected"),
    [
        ("BOOL", [True, False], np.array([True, False])),
        ("INT8", [-128, 127], np.array([-128, 127], dtype=np.int8)),
        ("INT32", [-(2**31), 2**31 - 1], np.array([-(2**31), 2**31 - 1], dtype=np.int32)),
        ("INT64", [-(2**63), 2**63 - 1], np.array([-(2**63), 2**63 - 1], dtype=np.int64)),
        ("UINT16", [0, 65535], np.array([0, 65535], dtype=np.uint16)),
        ("UINT64", [0, 2**64 - 1], np.array([0, 2**64 - 1], dtype=np.uint64)),
        ("FP32", [0.5, -1.25], np.array([0.5, -1.25], dtype=np.float32)),
        ("FP64", [0.1, 1e300], np.array([0.1, 1e300])),
        ("BYTES", [b"a", b""], np.array([b"a", b""], dtype=object)),
    ],
)
def test_typed_contents(datatype: str, values: list[object], expected: np.ndarray) -> None:
    request, as_raw = decode_request(_typed(datatype, values, [1, 2]))

    (tensor,) = request.inputs
    assert not as_raw and tensor.shape == (1, 2) and tensor.datatype == datatype
    np.testing.assert_array_equal(tensor.data, expected.reshape(1, 2))
    assert tensor.data.dtype == expected.dtype


@pytest.mark.parametrize(("datatype", "value"), [("INT8", 128), ("INT16", -32769), ("UINT8", 256)])
def test_narrow_integers_out_of_range(datatype: str, value: int) -> None:
    with pytest.raises(InvalidInputError, match="outside the range"):
        decode_request(_typed(datatype, [value], [1]))


def test_every_datatype_has_a_typed_field_but_the_16_bit_floats() -> None:
    assert set(CONTENTS_FIELD) == DATATYPES - {"FP16", "BF16"}


@pytest.mark.parametrize("datatype", ["FP16", "BF16", "FP32", "INT16", "UINT32", "BOOL"])
def test_raw_contents(datatype: str) -> None:
    values = np.array([[1, 0, 1]], dtype=FIXED_WIDTH[datatype])
    if datatype == "BF16":  # the top 16 bits of each float32
        values = (np.array([[1, 0, 1]], dtype="<f4").view("<u4") >> 16).astype("<u2")
    message = pb.ModelInferRequest(model_name="m")
    message.inputs.add(name="x", datatype=datatype, shape=[1, 3])
    message.raw_input_contents.append(values.tobytes())

    request, as_raw = decode_request(message)

    assert as_raw and request.is_binary_output
    assert request.inputs[0].data.shape == (1, 3)
    assert request.inputs[0].data.astype(np.float64).tolist() == [[1.0, 0.0, 1.0]]


def test_request_parts_carried_over() -> None:
    message = _typed("FP64", [1.0, 2.0], [1, 2])
    message.id = "abc"
    message.outputs.add(name="predict")

    request, _ = decode_request(message)

    assert request.id == "abc"
    assert request.outputs is not None and [o.name for o in request.outputs] == ["predict"]


def test_refusals() -> None:
    repeated = _typed("FP64", [1.0], [1])
    repeated.inputs.add(name="x", datatype="FP64", shape=[1]).contents.fp64_contents.append(1.0)
    nameless = _typed("FP64", [1.0], [1])
    nameless.inputs[0].name = ""
    shared_memory = _typed("FP64", [1.0], [1])
    shared_memory.inputs[0].parameters["shared_memory_region"].string_param = "r"
    classification = _typed("FP64", [1.0], [1])
    classification.outputs.add(name="p").parameters["classification"].int64_param = 2

    for malformed in (repeated, nameless):
        with pytest.raises(MalformedRequestError):
            decode_request(malformed)
    for unsupported in (shared_memory, classification):
        with pytest.raises(InvalidInputError):
            decode_request(unsupported)


def test_encode_typed_and_raw() -> None:
    labels = Tensor("predict", "BYTES", (2,), np.array([b"setosa", b"virginica"], dtype=object))
    proba = Tensor("predict_proba", "FP64", (2, 2), np.array([[0.25, 0.75], [1.0, 0.0]]))

    typed = encode_response("m", 3, "id-1", [labels, proba], as_raw=False)
    raw = encode_response("m", 3, None, [labels, proba], as_raw=True)

    assert (typed.model_name, typed.model_version, typed.id) == ("m", "3", "id-1")
    assert list(typed.outputs[0].contents.bytes_contents) == [b"setosa", b"virginica"]
    assert list(typed.outputs[1].contents.fp64_contents) == [0.25, 0.75, 1.0, 0.0]
    assert list(typed.outputs[1].shape) == [2, 2] and not typed.raw_output_contents
    assert raw.id == "" and len(raw.raw_output_contents) == 2
    assert raw.raw_output_contents[0] == b"\x06\x00\x00\x00setosa\x09\x00\x00\x00virginica"
    assert np.frombuffer(raw.raw_output_contents[1], "<f8").tolist() == [0.25, 0.75, 1.0, 0.0]
    assert not raw.outputs[0].HasField("contents")
