"""Predictor: the data plane of /predict. Resolve the version, validate, cache, score, encode."""

from dataclasses import dataclass
from typing import Any

import anyio
import numpy as np
import orjson

from serving.cache.base import CacheUnavailableError, PredictionCache, cache_key
from serving.core.errors import InvalidInputError
from serving.core.metrics import ServingMetrics
from serving.core.tracing import annotate_prediction, span
from serving.dataplane.drift import DriftMonitor
from serving.dataplane.inputs import Matrix, PredictBody, to_matrix
from serving.dataplane.scoring import Scorer, Scores
from serving.registry.registry import ModelRegistry
from serving.repository.store import LoadedModel

# Bodies larger than this are converted in a worker thread, so a 10,000-row request
# never holds the event loop for milliseconds.
_INLINE_ROWS = 256


@dataclass(frozen=True)
class Prediction:
    """An encoded answer, ready to send."""

    model: str
    version: int
    payload: bytes  # the JSON body
    is_cache_hit: bool


class Predictor:
    def __init__(
        self,
        registry: ModelRegistry,
        cache: PredictionCache,
        scorer: Scorer,
        metrics: ServingMetrics,
        drift: DriftMonitor | None = None,
    ) -> None:
        self._registry, self._cache, self._scorer = registry, cache, scorer
        self._metrics, self._drift = metrics, drift

    async def predict(self, name: str, body: PredictBody) -> Prediction:
        model = await self._registry.resolve(name, body.version)
        manifest = model.manifest
        if body.probabilities and not manifest.has_predict_proba:
            raise InvalidInputError(f"{name} is a {manifest.task} model: it has no probabilities")
        with span("convert"):
            matrix = await _convert(body, model)
        payload, _, is_hit = await self._answer(model, matrix, body.probabilities)
        return Prediction(name, manifest.version, payload, is_cache_hit=is_hit)

    async def score(
        self, model: LoadedModel, matrix: Matrix, probabilities: bool
    ) -> tuple[Scores, bool]:
        """Scores as arrays, and whether they came from the cache, for other protocols (/v2).

        Same cache entries as `predict` for the same rows: a hit is decoded from the stored
        /predict answer, which round-trips exactly (orjson writes the shortest exact floats).
        """
        payload, scores, is_hit = await self._answer(model, matrix, probabilities)
        return (scores if scores is not None else decode(payload)), is_hit

    async def _answer(
        self, model: LoadedModel, matrix: Matrix, probabilities: bool
    ) -> tuple[bytes, Scores | None, bool]:
        """The encoded /predict answer from the cache or the scorer; Scores only when scored."""
        manifest = model.manifest
        labels = (manifest.name, str(manifest.version))
        if self._drift is not None:
            self._drift.observe(model, matrix)
        key = self._key(manifest.name, manifest.version, matrix, probabilities)
        with span("cache.lookup"):
            cached = await self._lookup(key)
        is_hit = cached is not None
        annotate_prediction(manifest.name, manifest.version, len(matrix), is_hit)
        if cached is not None:
            self._metrics.predictions.labels(*labels, "hit").inc()
            self._metrics.rows.labels(*labels).inc(len(matrix))
            return cached, None, True
        scores = await self._scorer.score(model, matrix, probabilities)  # times its own calls
        with span("encode"):
            payload = encode(manifest.name, manifest.version, scores)
        await self._cache.set(key, payload)
        self._metrics.predictions.labels(*labels, "miss").inc()
        self._metrics.rows.labels(*labels).inc(len(matrix))
        return payload, scores, False

    def _key(self, name: str, version: int, matrix: Matrix, probabilities: bool) -> str:
        # Hashing a 10,000-row matrix costs ~0.2 ms: not worth it when nothing is cached.
        if not self._cache.is_enabled:
            return ""
        return cache_key(name, version, matrix, probabilities)

    async def _lookup(self, key: str) -> bytes | None:
        try:
            cached = await self._cache.get(key)
        except CacheUnavailableError:  # counted here; the request goes on as a miss
            self._metrics.cache_lookups.labels("error").inc()
            return None
        self._metrics.cache_lookups.labels("miss" if cached is None else "hit").inc()
        return cached


async def _convert(body: PredictBody, model: LoadedModel) -> Matrix:
    # With the matrix built early only the model's checks are left: a few array passes.
    if body.early is not None or len(body.instances) <= _INLINE_ROWS:
        return to_matrix(body.instances, model.manifest, body.early, body.boolean_words)
    return await anyio.to_thread.run_sync(
        to_matrix, body.instances, model.manifest, None, body.boolean_words
    )


def encode(name: str, version: int, scores: Scores) -> bytes:
    predictions: Any = scores.predictions
    if predictions.dtype.kind not in "biuf":  # e.g. string class labels: orjson wants lists
        predictions = predictions.tolist()
    answer: dict[str, Any] = {"model": name, "version": version, "predictions": predictions}
    if scores.probabilities is not None:
        answer["probabilities"] = scores.probabilities
    return orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)


def decode(payload: bytes) -> Scores:
    """The inverse of `encode`: a stored answer back to arrays."""
    answer = orjson.loads(payload)
    probabilities = answer.get("probabilities")
    return Scores(
        np.asarray(answer["predictions"]),
        None if probabilities is None else np.asarray(probabilities, dtype=np.float64),
    )
