"""Scorer: runs an estimator on a feature matrix in a worker thread, never on the event loop."""

from dataclasses import dataclass
from typing import Any, Protocol

import anyio
import numpy as np
import numpy.typing as npt

from serving.repository.store import LoadedModel


@dataclass(frozen=True)
class Scores:
    predictions: npt.NDArray[Any]
    probabilities: npt.NDArray[np.float64] | None


class Scorer(Protocol):
    async def score(
        self, model: LoadedModel, matrix: npt.NDArray[np.float64], probabilities: bool
    ) -> Scores: ...


def score_now(model: LoadedModel, matrix: npt.NDArray[np.float64], probabilities: bool) -> Scores:
    """Blocking: the estimator's own predict (and predict_proba when asked), or one run of
    the compiled model, which answers both at once."""
    if model.compiled is not None:
        return Scores(*model.compiled.run(matrix, probabilities))
    predictions = np.ascontiguousarray(model.estimator.predict(matrix))
    proba = None
    if probabilities:
        proba = np.ascontiguousarray(model.estimator.predict_proba(matrix), dtype=np.float64)
    return Scores(predictions, proba)


class ThreadScorer:
    """One estimator call per request, in a bounded pool of worker threads."""

    def __init__(self, threads: int) -> None:
        self._limiter = anyio.CapacityLimiter(threads)

    async def score(
        self, model: LoadedModel, matrix: npt.NDArray[np.float64], probabilities: bool
    ) -> Scores:
        return await anyio.to_thread.run_sync(
            score_now, model, matrix, probabilities, limiter=self._limiter
        )
