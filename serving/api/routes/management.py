"""Management routes (admin bearer token): upload a version, move aliases, delete a version."""

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, StrictInt
from starlette.datastructures import UploadFile
from starlette.responses import Response

from serving.api.deps import AdminTokenRequired, ManagementDep
from serving.api.schemas import ErrorResponse
from serving.core.errors import MalformedRequestError
from serving.registry.management import Upload

router = APIRouter(tags=["management"], dependencies=[AdminTokenRequired])

_PARTS = ("artifact", "manifest", "signature", "compiled")
_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or invalid admin token"},
    403: {"model": ErrorResponse, "description": "No admin token is configured"},
    404: {"model": ErrorResponse, "description": "Unknown model, version or alias"},
}
_UPLOAD_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["artifact", "manifest", "signature"],
                    "properties": {
                        "artifact": {"type": "string", "format": "binary"},
                        "manifest": {"type": "string", "format": "binary"},
                        "signature": {"type": "string", "format": "binary"},
                        "compiled": {
                            "type": "string",
                            "format": "binary",
                            "description": "model.onnx, when the manifest lists a compiled form",
                        },
                    },
                }
            }
        },
    }
}


class VersionCreated(BaseModel):
    name: str
    version: int


class AliasTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: StrictInt = Field(ge=1, description="The version the alias should point at")


class AliasState(BaseModel):
    name: str
    alias: str
    version: int


@router.post(
    "/models/{name}/versions",
    status_code=201,
    responses={**_RESPONSES, 422: {"model": ErrorResponse, "description": "Rejected artifact"}},
    openapi_extra=_UPLOAD_DOC,
)
async def upload_version(name: str, request: Request, management: ManagementDep) -> VersionCreated:
    """Publish the next version of `name` once its signature and checksum verify."""
    upload = await _read_upload(request)
    return VersionCreated(name=name, version=await management.publish(name, upload))


@router.put("/models/{name}/aliases/{alias}", responses=_RESPONSES)
async def set_alias(
    name: str, alias: str, target: AliasTarget, management: ManagementDep
) -> AliasState:
    """Point `alias` at a version; every worker and replica follows within 2 seconds."""
    await management.set_alias(name, alias, target.version)
    return AliasState(name=name, alias=alias, version=target.version)


@router.post("/models/{name}/aliases/{alias}/rollback", responses=_RESPONSES)
async def rollback_alias(name: str, alias: str, management: ManagementDep) -> AliasState:
    """Point `alias` back at the version it held before (what `serving rollback` does)."""
    return AliasState(name=name, alias=alias, version=await management.rollback(name, alias))


@router.delete("/models/{name}/aliases/{alias}", status_code=204, responses=_RESPONSES)
async def remove_alias(name: str, alias: str, management: ManagementDep) -> Response:
    await management.remove_alias(name, alias)
    return Response(status_code=204)


@router.delete(
    "/models/{name}/versions/{version}",
    status_code=204,
    responses={**_RESPONSES, 409: {"model": ErrorResponse, "description": "An alias uses it"}},
)
async def delete_version(name: str, version: int, management: ManagementDep) -> Response:
    """Delete a version no alias points at; its number is never handed out again."""
    await management.delete_version(name, version)
    return Response(status_code=204)


async def _read_upload(request: Request) -> Upload:
    """The multipart parts as bytes; each may be sent as a file or as a plain field."""
    try:
        form = await request.form(max_files=len(_PARTS), max_fields=len(_PARTS))
    except Exception as exc:  # malformed multipart bodies raise several starlette/multipart types
        raise MalformedRequestError(f"body is not a valid multipart form: {exc}") from None
    try:
        parts = {part: await _part_bytes(form.get(part)) for part in _PARTS}
    finally:
        await form.close()
    artifact, manifest = parts["artifact"], parts["manifest"]
    if not artifact or not manifest:
        missing = [part for part in ("artifact", "manifest") if not parts[part]]
        raise MalformedRequestError(f"missing multipart part(s): {', '.join(missing)}")
    return Upload(
        manifest=manifest,
        artifact=artifact,
        signature=parts["signature"],
        compiled=parts["compiled"] or None,
    )


async def _part_bytes(value: UploadFile | str | None) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode()
    return await value.read()
