"""One inference request under the protocol: decode, resolve, score through the Predictor, encode.

Scoring goes through `Predictor.score`, so /v2 shares the version resolution, cache entries,
metrics and scorer (and any batching behind it) with /predict.
"""

from dataclasses import dataclass

import anyio

from serving.core.errors import MalformedRequestError, TooManyRowsError
from serving.dataplane.inflate import WBITS, inflate
from serving.dataplane.inputs import VersionSpec
from serving.dataplane.offload import decodes_inline
from serving.dataplane.predictor import Predictor
from serving.registry.registry import ModelRegistry
from serving.v2.codec import InferenceRequest, decode_request, encode_response
from serving.v2.signature import PREDICT_PROBA, check_outputs, output_names, output_tensors
from serving.v2.signature import to_matrix as tensors_to_matrix
from serving.v2.tensors import Tensor


@dataclass(frozen=True)
class InferenceAnswer:
    model: str
    version: int
    body: bytes
    json_length: int | None  # set when binary outputs follow the JSON
    is_cache_hit: bool


async def decode(
    body: bytes, header_length: str | None, content_encoding: str | None, max_bytes: int
) -> InferenceRequest:
    """The request, inflated first when the client compressed it (tritonclient can)."""
    if content_encoding not in (None, "identity"):
        body = await anyio.to_thread.run_sync(_inflate, body, content_encoding, max_bytes)
    if decodes_inline(len(body)):
        return decode_request(body, header_length)
    return await anyio.to_thread.run_sync(decode_request, body, header_length)


def _inflate(body: bytes, encoding: str | None, max_bytes: int) -> bytes:
    if encoding not in WBITS:
        raise MalformedRequestError(f"Content-Encoding {encoding!r} is not supported; use gzip")
    return inflate(body, encoding, max_bytes)


async def infer(
    registry: ModelRegistry,
    predictor: Predictor,
    name: str,
    version: VersionSpec,
    request: InferenceRequest,
    max_rows: int,
    routing_key: str | None = None,
) -> InferenceAnswer:
    """Raises ServingError subclasses: bad tensors, unknown model or version, not loaded."""
    scored = await score(registry, predictor, name, version, request, max_rows, routing_key)
    body, json_length = encode_response(name, scored.version, request.id, scored.outputs)
    return InferenceAnswer(name, scored.version, body, json_length, scored.is_cache_hit)


@dataclass(frozen=True)
class ScoredTensors:
    """The output tensors of one request, each with whether it was asked for as binary."""

    version: int
    outputs: list[tuple[Tensor, bool]]
    is_cache_hit: bool


async def score(
    registry: ModelRegistry,
    predictor: Predictor,
    name: str,
    version: VersionSpec,
    request: InferenceRequest,
    max_rows: int,
    routing_key: str | None = None,
) -> ScoredTensors:
    """`infer` before encoding, for other transports of the protocol (gRPC). Without a
    version the model's traffic split chooses one, as for /predict."""
    model = await registry.resolve(name, version, routing_key)
    manifest = model.manifest
    wanted = _wanted_outputs(request, output_names(manifest))
    check_outputs([output for output, _ in wanted], manifest)
    matrix = tensors_to_matrix(request.inputs, manifest)
    if len(matrix) > max_rows:
        raise TooManyRowsError(f"{len(matrix)} rows sent; at most {max_rows} per request")
    is_proba = any(output == PREDICT_PROBA for output, _ in wanted)
    scores, is_hit = await predictor.score(model, matrix, is_proba)
    if version is None:
        predictor.copy_to_shadow(model, matrix, scores)
    tensors = output_tensors(scores, manifest, [output for output, _ in wanted])
    outputs: list[tuple[Tensor, bool]] = [
        (tensor, is_binary) for tensor, (_, is_binary) in zip(tensors, wanted, strict=True)
    ]
    return ScoredTensors(manifest.version, outputs, is_hit)


def _wanted_outputs(request: InferenceRequest, every_output: list[str]) -> list[tuple[str, bool]]:
    """(name, as binary) per output to send: those asked for, or every output the model has."""
    default = request.is_binary_output
    if request.outputs is None:
        return [(name, default) for name in every_output]
    return [
        (output.name, default if output.is_binary is None else output.is_binary)
        for output in request.outputs
    ]
