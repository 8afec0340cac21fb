"""Compile serving/grpcapi/protocol/open_inference.proto into the checked-in Python modules.

    python scripts/compile_protos.py

Needs grpcio-tools and mypy-protobuf (both in the `test` extra). Writes, next to the proto:
open_inference_pb2.py (messages), open_inference_pb2_grpc.py (servicer base class, stub and
registration function) and their typed .pyi stubs, which mypy reads instead of the modules.

One edit after protoc: the messages are built in a descriptor pool of their own instead of
protobuf's process-wide default pool. tritonclient and MLServer register the same protocol
(package `inference`) in the default pool under other file names, and protobuf refuses a
second definition of a symbol there, so without it a process could not import both (the
tests do; so may an application that embeds this server next to a client).
tests/unit/test_grpc_protocol.py checks the modules still match the proto.
"""

import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO = Path("serving/grpcapi/protocol/open_inference.proto")
MESSAGES = ROOT / PROTO.with_name("open_inference_pb2.py")
DEFAULT_POOL = "DESCRIPTOR = _descriptor_pool.Default().AddSerializedFile("
PRIVATE_POOL = "DESCRIPTOR = _descriptor_pool.DescriptorPool().AddSerializedFile("


def compile_into(out_dir: Path) -> None:
    """protoc with the Python, gRPC and mypy plugins; module paths follow the proto's path."""
    plugins_dir = Path(sys.executable).parent  # protoc-gen-mypy and protoc-gen-mypy_grpc
    arguments = [
        "grpc_tools.protoc",
        f"--proto_path={ROOT}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--plugin=protoc-gen-mypy={plugins_dir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={plugins_dir / 'protoc-gen-mypy_grpc'}",
        f"--mypy_out={out_dir}",
        f"--mypy_grpc_out={out_dir}",
        str(ROOT / PROTO),
    ]
    if protoc.main(arguments) != 0:
        raise SystemExit(f"protoc failed on {PROTO}")
    messages = out_dir / PROTO.with_name("open_inference_pb2.py")
    text = messages.read_text()
    if DEFAULT_POOL not in text:
        raise SystemExit("protoc's output changed shape: the default-pool line was not found")
    messages.write_text(text.replace(DEFAULT_POOL, PRIVATE_POOL))


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        compile_into(Path(scratch))
        for built in (Path(scratch) / PROTO.parent).glob("open_inference_pb2*"):
            shutil.copyfile(built, ROOT / PROTO.parent / built.name)
            print(f"wrote {PROTO.parent / built.name}")


if __name__ == "__main__":
    main()
