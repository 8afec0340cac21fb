"""The checked-in protocol modules match the .proto; errors map to the right gRPC status."""

import importlib.util
import sys
from http import HTTPStatus
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pb2

from serving.core.errors import (
    AuthenticationError,
    BodyTooLargeError,
    InvalidInputError,
    ManagementDisabledError,
    ModelLoadError,
    ModelNotFoundError,
    NotReadyError,
    ServingError,
)
from serving.grpcapi.protocol import open_inference_pb2
from serving.grpcapi.status import status_of

REPO_ROOT = Path(__file__).resolve().parents[2]


def _compile_script() -> object:
    spec = importlib.util.spec_from_file_location(
        "compile_protos", REPO_ROOT / "scripts" / "compile_protos.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_checked_in_modules_match_the_proto(tmp_path: Path) -> None:
    """Regenerate into a scratch folder: the same descriptor and the same typed stubs."""
    script = _compile_script()
    script.compile_into(tmp_path)  # type: ignore[attr-defined]
    built = tmp_path / "serving" / "grpcapi" / "protocol"
    checked_in = REPO_ROOT / "serving" / "grpcapi" / "protocol"

    fresh = descriptor_pb2.FileDescriptorProto()
    fresh.ParseFromString(_serialized_descriptor(built / "open_inference_pb2.py"))
    current = descriptor_pb2.FileDescriptorProto()
    open_inference_pb2.DESCRIPTOR.CopyToProto(current)

    assert fresh == current
    for stub in ("open_inference_pb2.pyi", "open_inference_pb2_grpc.pyi"):
        assert (built / stub).read_text() == (checked_in / stub).read_text(), stub


def _serialized_descriptor(module_path: Path) -> bytes:
    """The FileDescriptorProto bytes a generated module registers, read without importing it."""
    source = module_path.read_text()
    start = source.index("AddSerializedFile(") + len("AddSerializedFile(")
    end = source.index(")\n", start)
    value = eval(source[start:end], {})  # a bytes literal written by protoc
    assert isinstance(value, bytes)
    return value


def test_messages_live_outside_the_default_pool() -> None:
    """tritonclient registers the same package in protobuf's default pool: no clash."""
    import tritonclient.grpc.service_pb2 as triton_messages

    ours = open_inference_pb2.ModelInferRequest(model_name="iris", id="x")
    theirs = triton_messages.ModelInferRequest.FromString(ours.SerializeToString())

    assert "tritonclient.grpc.service_pb2" in sys.modules
    assert (theirs.model_name, theirs.id) == ("iris", "x")


class _OverloadedError(ServingError):
    status_code = HTTPStatus.SERVICE_UNAVAILABLE
    code = "overloaded"


class _TimedOutError(ServingError):
    status_code = HTTPStatus.GATEWAY_TIMEOUT
    code = "timeout"


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (InvalidInputError("x"), grpc.StatusCode.INVALID_ARGUMENT),
        (ModelNotFoundError("x"), grpc.StatusCode.NOT_FOUND),
        (AuthenticationError("x"), grpc.StatusCode.UNAUTHENTICATED),
        (ManagementDisabledError("x"), grpc.StatusCode.PERMISSION_DENIED),
        (BodyTooLargeError("x"), grpc.StatusCode.RESOURCE_EXHAUSTED),
        (NotReadyError("x"), grpc.StatusCode.UNAVAILABLE),
        (ModelLoadError("x"), grpc.StatusCode.UNAVAILABLE),
        (_OverloadedError("x"), grpc.StatusCode.RESOURCE_EXHAUSTED),  # 503, but by its code
        (_TimedOutError("x"), grpc.StatusCode.DEADLINE_EXCEEDED),
        (ServingError("x"), grpc.StatusCode.INTERNAL),
    ],
)
def test_status_of(error: ServingError, expected: grpc.StatusCode) -> None:
    assert status_of(error) == expected
