"""Kubernetes probes: liveness checks nothing; readiness means models are loaded."""

from fastapi import APIRouter

from serving.api.deps import RegistryDep
from serving.api.responses import JSONBytes
from serving.core.errors import NotReadyError

router = APIRouter(tags=["health"])


@router.get("/health/live")
@router.head("/health/live", include_in_schema=False)
async def live() -> JSONBytes:
    """200 while the process answers. Checks no dependency, so an outage restarts nothing."""
    return JSONBytes({"status": "live"})


@router.get("/health/ready", responses={503: {"description": "No model loaded yet"}})
@router.head("/health/ready", include_in_schema=False)
async def ready(registry: RegistryDep) -> JSONBytes:
    """200 once every model in the registry has been tried and at least one serves."""
    if not registry.is_ready():
        raise NotReadyError("no model is loaded yet")
    loaded = {name: registry.loaded_versions(name) for name in registry.models}
    return JSONBytes({"status": "ready", "models": loaded})
