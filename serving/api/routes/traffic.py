"""Traffic routes (admin bearer token): split a model's requests between aliases, shadow them."""

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from serving.api.deps import AdminTokenRequired, ManagementDep
from serving.api.schemas import ErrorResponse
from serving.repository.traffic import MAX_SPLIT_ALIASES, TrafficTable, Weight

ROUTING_KEY = "x-routing-key"  # requests with the same key land on the same alias

router = APIRouter(tags=["management"], dependencies=[AdminTokenRequired])

_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or invalid admin token"},
    403: {"model": ErrorResponse, "description": "No admin token is configured"},
    404: {"model": ErrorResponse, "description": "Unknown model or alias"},
    422: {"model": ErrorResponse, "description": "Weights are not integers summing to 100"},
}


class TrafficRequest(TrafficTable):
    """The table of TrafficTable with `weights` required."""

    weights: dict[str, Weight] = Field(
        max_length=MAX_SPLIT_ALIASES,
        description="Percent of the requests that name no version, by alias; sums to 100",
        examples=[{"production": 90, "canary": 10}],
    )


class TrafficState(BaseModel):
    name: str
    weights: dict[str, int]
    shadow: str | None


@router.put("/models/{name}/traffic", responses=_RESPONSES)
async def set_traffic(name: str, body: TrafficRequest, management: ManagementDep) -> TrafficState:
    """Split requests that name no version between aliases, and optionally shadow them.

    Every worker and replica follows within 2 seconds, like an alias move."""
    traffic = TrafficTable(weights=body.weights, shadow=body.shadow)
    await management.set_traffic(name, traffic)
    return TrafficState(name=name, weights=traffic.weights, shadow=traffic.shadow)


@router.delete("/models/{name}/traffic", responses=_RESPONSES)
async def clear_traffic(name: str, management: ManagementDep) -> TrafficState:
    """Back to `production` alone, no shadow."""
    traffic = TrafficTable()
    await management.set_traffic(name, traffic)
    return TrafficState(name=name, weights=traffic.weights, shadow=traffic.shadow)
