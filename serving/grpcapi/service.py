"""inference.GRPCInferenceService: each RPC translated onto the protocol's data plane (serving/v2).

The same registry, predictor (cache, batching, prediction metrics) and metadata as /v2 over
HTTP, so both transports give the same answers. Health and server metadata are open, as
/v2/health/* and /v2 are; model RPCs need an API key when SERVING_API_KEYS is set; the
repository RPCs need an admin token and act on this worker only, as over HTTP.
"""

from dataclasses import dataclass, field
from typing import Any

import anyio

from serving.core.errors import MalformedRequestError, ModelNotFoundError
from serving.core.tracing import Tracing
from serving.dataplane.inputs import VersionSpec, parse_version
from serving.dataplane.predictor import Predictor
from serving.grpcapi.admission import CallAdmission
from serving.grpcapi.calls import CallMetrics, Context, Guard, log_fields, observed, routing_key
from serving.grpcapi.protocol import open_inference_pb2 as pb
from serving.grpcapi.protocol.open_inference_pb2_grpc import GRPCInferenceServiceServicer
from serving.grpcapi.tensors import decode_request, encode_response
from serving.registry.registry import ModelRegistry
from serving.repository.manifest import ModelManifest
from serving.repository.store import ModelStore
from serving.v2 import inference
from serving.v2.metadata import model_metadata, repository_index, server_metadata


@dataclass(frozen=True)
class DataPlane:
    registry: ModelRegistry
    store: ModelStore
    predictor: Predictor
    max_rows: int
    admission: CallAdmission
    tracing: Tracing = field(default_factory=Tracing)  # the HTTP side's: started with it


class InferenceServicer(GRPCInferenceServiceServicer):
    def __init__(self, plane: DataPlane, guard: Guard, metrics: CallMetrics) -> None:
        self.plane, self.guard, self.metrics = plane, guard, metrics
        self.tracing = plane.tracing
        self._server = pb.ServerMetadataResponse(**server_metadata())

    # --- server ---------------------------------------------------------------------------
    @observed
    async def ServerLive(
        self, request: pb.ServerLiveRequest, context: Context
    ) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    @observed
    async def ServerReady(
        self, request: pb.ServerReadyRequest, context: Context
    ) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.plane.registry.is_ready())

    @observed
    async def ServerMetadata(
        self, request: pb.ServerMetadataRequest, context: Context
    ) -> pb.ServerMetadataResponse:
        return self._server

    # --- models ---------------------------------------------------------------------------
    @observed
    async def ModelReady(
        self, request: pb.ModelReadyRequest, context: Context
    ) -> pb.ModelReadyResponse:
        """The default version: loaded in this worker. A named one: loaded, or loaded now."""
        self.guard.require_api_key(context)
        registry = self.plane.registry
        version = _version(request.version)
        if version is not None:
            await registry.resolve(request.name, version)
            return pb.ModelReadyResponse(ready=True)
        state = registry.models.get(request.name)
        if state is None:
            raise ModelNotFoundError(f"unknown model {request.name!r}")
        ready = state.served is not None and not registry.is_unloaded(request.name)
        return pb.ModelReadyResponse(ready=ready)

    @observed
    async def ModelMetadata(
        self, request: pb.ModelMetadataRequest, context: Context
    ) -> pb.ModelMetadataResponse:
        self.guard.require_api_key(context)
        metadata = await self._metadata(request.name, _version(request.version))
        return pb.ModelMetadataResponse(
            name=metadata["name"],
            versions=metadata["versions"],
            platform=metadata["platform"],
            inputs=[pb.ModelMetadataResponse.TensorMetadata(**t) for t in metadata["inputs"]],
            outputs=[pb.ModelMetadataResponse.TensorMetadata(**t) for t in metadata["outputs"]],
        )

    async def _metadata(self, name: str, version: VersionSpec) -> dict[str, Any]:
        state = self.plane.registry.models.get(name)
        if state is None:
            raise ModelNotFoundError(f"unknown model {name!r}")
        if version is None and state.served is not None:
            return model_metadata(state.served.manifest, state.versions)
        manifest = await anyio.to_thread.run_sync(_read_manifest, self.plane.store, name, version)
        return model_metadata(manifest, state.versions)

    @observed
    async def ModelInfer(
        self, request: pb.ModelInferRequest, context: Context
    ) -> pb.ModelInferResponse:
        self.guard.require_api_key(context)
        return await self.plane.admission.run(lambda: self._infer(request, context))

    async def _infer(
        self, request: pb.ModelInferRequest, context: Context
    ) -> pb.ModelInferResponse:
        plane = self.plane
        decoded, as_raw = decode_request(request)
        name = request.model_name
        scored = await inference.score(
            plane.registry,
            plane.predictor,
            name,
            _version(request.model_version),
            decoded,
            plane.max_rows,
            routing_key(context),
        )
        log_fields().update(
            model=name, version=scored.version, cache="HIT" if scored.is_cache_hit else "MISS"
        )
        tensors = [tensor for tensor, _ in scored.outputs]
        return encode_response(name, scored.version, decoded.id, tensors, as_raw)

    # --- model repository extension (admin) -------------------------------------------------
    @observed
    async def RepositoryIndex(
        self, request: pb.RepositoryIndexRequest, context: Context
    ) -> pb.RepositoryIndexResponse:
        self.guard.require_admin(context)
        entries = repository_index(self.plane.registry, only_ready=request.ready)
        return pb.RepositoryIndexResponse(
            models=[pb.RepositoryIndexResponse.ModelIndex(**entry) for entry in entries]
        )

    @observed
    async def RepositoryModelLoad(
        self, request: pb.RepositoryModelLoadRequest, context: Context
    ) -> pb.RepositoryModelLoadResponse:
        """Serve the model's default version in this worker again (loads it if needed)."""
        self.guard.require_admin(context)
        parameters = request.parameters
        if "config" in parameters or any(key.startswith("file:") for key in parameters):
            raise MalformedRequestError("load takes no config or files; publish a version instead")
        await self.plane.registry.load(request.model_name)
        return pb.RepositoryModelLoadResponse()

    @observed
    async def RepositoryModelUnload(
        self, request: pb.RepositoryModelUnloadRequest, context: Context
    ) -> pb.RepositoryModelUnloadResponse:
        """Stop serving the model in this worker until it is loaded again."""
        self.guard.require_admin(context)
        await self.plane.registry.unload(request.model_name)
        return pb.RepositoryModelUnloadResponse()


def _version(value: str) -> VersionSpec:
    """Proto3 strings are never absent: empty means the model's default version."""
    return parse_version(value) if value else None


def _read_manifest(store: ModelStore, name: str, version: VersionSpec) -> ModelManifest:
    return store.read_manifest(name, store.resolve(name, version))
