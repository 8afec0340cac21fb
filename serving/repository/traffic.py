"""Traffic table of one model: how requests that name no version are split between aliases,
and which alias (if any) shadows them.

Persisted as `<model>/traffic.json` next to the alias table, replaced whole like it. No file
means the default: `production` alone, no shadow.
"""

from collections.abc import Collection
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, field_validator

from serving.core.errors import AliasNotFoundError, ModelLoadError
from serving.repository.aliases import DEFAULT_ALIAS
from serving.repository.names import is_valid_name

TRAFFIC_FILE = "traffic.json"
MAX_SPLIT_ALIASES = 16  # more arms than this is not a canary; it also bounds the body
TOTAL_WEIGHT = 100

Weight = Annotated[StrictInt, Field(ge=0, le=TOTAL_WEIGHT)]


class TrafficTable(BaseModel):
    """Weights are integers (booleans and floats refused) over aliases, summing to 100."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    weights: dict[str, Weight] = Field(
        default_factory=lambda: {DEFAULT_ALIAS: TOTAL_WEIGHT},
        max_length=MAX_SPLIT_ALIASES,
        description="Percent of the requests that name no version, by alias",
        examples=[{"production": 90, "canary": 10}],
    )
    shadow: str | None = Field(
        default=None, description="Alias that scores a copy of each request, after the answer"
    )

    @field_validator("weights")
    @classmethod
    def _sums_to_100(cls, weights: dict[str, int]) -> dict[str, int]:
        for alias in weights:
            _check_alias(alias)
        total = sum(weights.values())
        if total != TOTAL_WEIGHT:
            raise ValueError(f"weights must sum to {TOTAL_WEIGHT}, not {total}")
        return weights

    @field_validator("shadow")
    @classmethod
    def _shadow_name(cls, shadow: str | None) -> str | None:
        if shadow is not None:
            _check_alias(shadow)
        return shadow

    @property
    def is_default(self) -> bool:
        return self.shadow is None and self.weights == {DEFAULT_ALIAS: TOTAL_WEIGHT}

    def aliases(self) -> set[str]:
        """Every alias this table names, with a weight of 0 or as the shadow included."""
        named = set(self.weights)
        return named | {self.shadow} if self.shadow is not None else named

    def check_aliases_exist(self, name: str, existing: Collection[str]) -> None:
        unknown = sorted(self.aliases() - set(existing))
        if unknown:
            raise AliasNotFoundError(f"model {name!r} has no alias {', '.join(unknown)}")


def read_traffic_file(path: Path) -> TrafficTable:
    """The stored table; the default when there is none."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return DEFAULT_TRAFFIC
    try:
        return TrafficTable.model_validate_json(raw)
    except ValidationError as exc:
        raise ModelLoadError(f"{path}: invalid traffic: {exc.errors()[0]['msg']}") from exc


def _check_alias(alias: str) -> None:
    if not is_valid_name(alias) or alias.isdigit():
        raise ValueError(f"{alias!r} is not an alias name")


DEFAULT_TRAFFIC = TrafficTable()
