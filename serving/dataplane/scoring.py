"""Scores and the Scorer protocol: what the predictor asks of a scorer (batching.py has the one
the app uses), and the blocking estimator call itself."""

from dataclasses import dataclass
from typing import Any, Protocol

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
