"""Inference bodies to numpy and back: JSON and binary tensors of every datatype."""

import struct
from typing import Any

import numpy as np
import orjson
import pytest

from serving.core.errors import ServingError
from serving.v2.codec import decode_request, encode_response
from serving.v2.datatypes import FIXED_WIDTH
from serving.v2.tensors import Tensor

NUMERIC = ["UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64"]
NUMERIC += ["FP16", "FP32", "FP64"]


def _binary(document: dict[str, Any], *chunks: bytes) -> tuple[bytes, str]:
    header = orjson.dumps(document)
    return header + b"".join(chunks), str(len(header))


def _one_input(**tensor: Any) -> bytes:
    return orjson.dumps({"inputs": [{"name": "x", **tensor}]})


@pytest.mark.parametrize("datatype", NUMERIC)
def test_json_and_binary_give_the_same_array(datatype: str) -> None:
    values = np.arange(6, dtype=FIXED_WIDTH[datatype]).reshape(2, 3)
    tensor = {"name": "x", "shape": [2, 3], "datatype": datatype}
    json_body = _one_input(shape=[2, 3], datatype=datatype, data=values.tolist())
    binary_document = {"inputs": [{**tensor, "parameters": {"binary_data_size": values.nbytes}}]}
    binary_body, header = _binary(binary_document, values.tobytes())

    from_json = decode_request(json_body, None).inputs[0].data
    from_binary = decode_request(binary_body, header).inputs[0].data

    assert from_json.dtype == from_binary.dtype == FIXED_WIDTH[datatype]
    np.testing.assert_array_equal(from_json, values)
    np.testing.assert_array_equal(from_binary, values)


def test_flat_and_nested_json_data_are_the_same() -> None:
    flat = decode_request(_one_input(shape=[2, 2], datatype="FP64", data=[1, 2, 3, 4]), None)
    nested = decode_request(_one_input(shape=[2, 2], datatype="FP64", data=[[1, 2], [3, 4]]), None)

    np.testing.assert_array_equal(flat.inputs[0].data, nested.inputs[0].data)
    assert flat.inputs[0].data.shape == (2, 2)


def test_bf16_binary_is_the_top_half_of_float32() -> None:
    values = np.asarray([1.5, -2.0, 3.25], dtype=np.float32)
    words = (values.view(np.uint32) >> 16).astype("<u2")
    tensor = {"name": "x", "shape": [3], "datatype": "BF16"}
    document = {"inputs": [{**tensor, "parameters": {"binary_data_size": words.nbytes}}]}
    body, header = _binary(document, words.tobytes())

    decoded = decode_request(body, header).inputs[0].data

    np.testing.assert_array_equal(decoded, values)


def test_bytes_in_json_and_binary() -> None:
    items = ["setosa", "", "virginica"]
    raw = b"".join(struct.pack("<I", len(s.encode())) + s.encode() for s in items)
    tensor = {"name": "x", "shape": [3], "datatype": "BYTES"}
    document = {"inputs": [{**tensor, "parameters": {"binary_data_size": len(raw)}}]}
    body, header = _binary(document, raw)

    from_json = decode_request(_one_input(shape=[3], datatype="BYTES", data=items), None)
    from_binary = decode_request(body, header)

    expected = [item.encode() for item in items]
    assert from_json.inputs[0].data.tolist() == expected
    assert from_binary.inputs[0].data.tolist() == expected


def test_json_null_is_a_missing_value() -> None:
    decoded = decode_request(_one_input(shape=[3], datatype="FP32", data=[1, None, 2.5]), None)

    assert np.isnan(decoded.inputs[0].data[1])
    assert decoded.inputs[0].data.dtype == np.float32


def test_request_fields_and_output_options() -> None:
    body = orjson.dumps(
        {
            "id": "abc",
            "parameters": {"binary_data_output": True, "custom": [1]},
            "inputs": [{"name": "x", "shape": [1], "datatype": "BOOL", "data": [True]}],
            "outputs": [{"name": "a"}, {"name": "b", "parameters": {"binary_data": False}}],
        }
    )

    request = decode_request(body, None)

    assert request.id == "abc" and request.is_binary_output
    assert [(o.name, o.is_binary) for o in request.outputs or []] == [("a", None), ("b", False)]


@pytest.mark.parametrize(
    ("tensor", "fragment"),
    [
        ({"shape": [2], "datatype": "FP64", "data": [1.0]}, "2 elements"),
        ({"shape": [2], "datatype": "INT8", "data": [1, 128]}, "range of INT8"),
        ({"shape": [2], "datatype": "UINT8", "data": [1, -1]}, "range of UINT8"),
        ({"shape": [1], "datatype": "INT32", "data": [1.5]}, "whole numbers"),
        ({"shape": [1], "datatype": "FP64", "data": ["1.5"]}, "must be numbers"),
        ({"shape": [1], "datatype": "FP64", "data": [True]}, "must be numbers"),
        ({"shape": [1], "datatype": "BOOL", "data": [1]}, "true or false"),
        ({"shape": [1], "datatype": "BYTES", "data": [1]}, "strings"),
        ({"shape": [2], "datatype": "FP64", "data": [[1.0], [2.0, 3.0]]}, "ragged"),
        ({"shape": [1], "datatype": "FP128", "data": [1.0]}, "datatype"),
        ({"shape": [-1], "datatype": "FP64", "data": [1.0]}, "shape"),
        ({"shape": [1], "datatype": "FP64"}, "data is required"),
        ({"shape": [1], "datatype": "FP64", "data": 1.0}, "list"),
    ],
)
def test_bad_json_tensors_say_what_is_wrong(tensor: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ServingError, match=fragment):
        decode_request(_one_input(**tensor), None)


@pytest.mark.parametrize(
    ("datatype", "size", "tail", "fragment"),
    [
        ("FP64", 16, b"\0" * 8, "past the end"),
        ("FP64", 8, b"\0" * 16, "belong to no input"),
        ("FP64", 4, b"\0" * 4, "needs 8"),
        ("BOOL", 1, b"\x02", "0 or 1"),
        ("BYTES", 3, b"\x05\0\0", "length prefix"),
        ("BYTES", 5, b"\x09\0\0\0a", "runs past"),
    ],
)
def test_bad_binary_tensors_say_what_is_wrong(
    datatype: str, size: int, tail: bytes, fragment: str
) -> None:
    tensor = {"name": "x", "shape": [1], "datatype": datatype}
    body, header = _binary({"inputs": [{**tensor, "parameters": {"binary_data_size": size}}]}, tail)

    with pytest.raises(ServingError, match=fragment):
        decode_request(body, header)


def test_encode_json_and_binary_outputs_in_one_answer() -> None:
    labels = np.asarray([b"setosa", b"virginica"], dtype=object)
    proba = np.asarray([[0.25, 0.75], [0.5, 0.5]])
    outputs = [
        (Tensor("predict", "BYTES", (2,), labels), False),
        (Tensor("predict_proba", "FP64", (2, 2), proba), True),
    ]

    body, json_length = encode_response("m", 3, "id-1", outputs)

    assert json_length is not None
    head = orjson.loads(body[:json_length])
    assert (head["model_name"], head["model_version"], head["id"]) == ("m", "3", "id-1")
    assert head["outputs"][0]["data"] == ["setosa", "virginica"]
    assert head["outputs"][1]["parameters"] == {"binary_data_size": 32}
    np.testing.assert_array_equal(np.frombuffer(body[json_length:], "<f8").reshape(2, 2), proba)


def test_encode_binary_bytes_output_is_length_prefixed() -> None:
    labels = np.asarray([b"ab", b"c"], dtype=object)

    body, json_length = encode_response("m", 1, None, [(Tensor("p", "BYTES", (2,), labels), True)])

    assert json_length is not None
    assert "id" not in orjson.loads(body[:json_length])
    assert body[json_length:] == b"\x02\0\0\0ab\x01\0\0\0c"


def test_encode_without_binary_outputs_is_plain_json() -> None:
    body, json_length = encode_response(
        "m", 1, None, [(Tensor("p", "INT64", (2,), np.asarray([0, 2])), False)]
    )

    assert json_length is None
    assert orjson.loads(body)["outputs"][0]["data"] == [0, 2]
