"""Training profile of a version's inputs, and the binning and PSI that compare against it.

Each feature keeps interior quantile edges of its training values and the share of training
rows in each bin. A value falls in bin `i` = the number of edges <= value (numpy's
searchsorted, side "right"), so `len(edges) + 1` finite bins; one more bin at the end
holds non-finite values (NaN, infinity), which a model that accepts missing values sees.

The same functions bin training rows at publish time and live inputs in the server, so the
two distributions are cut identically.
"""

from collections.abc import Sequence
from typing import Annotated

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_EDGES = 63  # bounds a manifest's profile: 64 finite bins per feature at most
SHARE_FLOOR = 1e-4  # an empty bin counts as this share in the PSI (log of 0 is undefined)

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


class FeatureProfile(BaseModel):
    """One feature: interior bin edges, strictly increasing, and the training share per bin."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    edges: list[FiniteFloat] = Field(max_length=MAX_EDGES)
    shares: list[Annotated[float, Field(ge=0, le=1)]]

    @model_validator(mode="after")
    def _check(self) -> "FeatureProfile":
        if len(self.shares) != len(self.edges) + 2:
            raise ValueError("a profile needs len(edges) + 2 shares (the last: non-finite)")
        if any(b <= a for a, b in zip(self.edges, self.edges[1:], strict=False)):
            raise ValueError("profile edges must be strictly increasing")
        if abs(sum(self.shares) - 1.0) > 1e-6:
            raise ValueError("profile shares must sum to 1")
        return self

    @property
    def bins(self) -> int:
        return len(self.shares)


def bin_counts(
    matrix: npt.NDArray[np.float64], profiles: Sequence[FeatureProfile], width: int
) -> npt.NDArray[np.int64]:
    """Rows per (feature, bin) as an array of shape (features, width), width >= every bins.

    One searchsorted per column, then a single bincount over the whole matrix.
    """
    rows, features = matrix.shape
    index = np.empty((rows, features), dtype=np.int64)
    for column, profile in enumerate(profiles):
        values = matrix[:, column]
        bins = np.searchsorted(np.asarray(profile.edges), values, side="right")
        bins[~np.isfinite(values)] = profile.bins - 1
        index[:, column] = bins + column * width
    flat = np.bincount(index.ravel(), minlength=features * width)
    return flat.reshape(features, width).astype(np.int64, copy=False)


def profile_of(matrix: npt.NDArray[np.float64], bins: int = 10) -> list[FeatureProfile]:
    """The profile of training rows: `bins` quantile bins per feature (fewer where values
    repeat, e.g. a binary feature gets two)."""
    quantiles = np.linspace(0.0, 1.0, min(bins, MAX_EDGES + 1) + 1)[1:-1]
    profiles = []
    for column in matrix.T:
        finite = column[np.isfinite(column)]
        edges = (
            np.unique(np.quantile(finite, quantiles, method="inverted_cdf"))
            if finite.size
            else np.empty(0)
        )
        empty = FeatureProfile.model_construct(
            edges=edges.tolist(), shares=[0.0] * (edges.size + 2)
        )
        counts = bin_counts(column.reshape(-1, 1), [empty], edges.size + 2)[0]
        shares = (counts / max(1, column.size)).tolist()
        profiles.append(FeatureProfile(edges=edges.tolist(), shares=shares))
    return profiles


def psi(counts: npt.NDArray[np.int64], profile: FeatureProfile) -> float:
    """Population stability index of one feature's counts against its training shares:
    sum over bins of (actual - expected) * ln(actual / expected), shares floored at 1e-4.
    Below 0.1 is usually read as no shift, above 0.25 as a large one."""
    total = int(counts[: profile.bins].sum())
    if total == 0:
        return 0.0
    actual = np.maximum(counts[: profile.bins] / total, SHARE_FLOOR)
    expected = np.maximum(np.asarray(profile.shares), SHARE_FLOOR)
    return float(np.sum((actual - expected) * np.log(actual / expected)))
