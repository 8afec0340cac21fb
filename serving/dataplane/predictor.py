"""Predictor: the data plane of /predict. Resolve the version, validate, cache, score, encode."""

import logging
from dataclasses import dataclass
from typing import Any

import anyio
import numpy as np
import orjson

from serving.cache.base import CacheUnavailableError, PredictionCache, cache_key
from serving.core.errors import (
    InvalidInputError,
    RejectedByModelError,
    ScoringFailedError,
    ServingError,
)
from serving.core.metrics import ServingMetrics
from serving.core.tracing import annotate_prediction, span
from serving.dataplane.drift import DriftMonitor
from serving.dataplane.inputs import Matrix, PredictBody, to_matrix
from serving.dataplane.offload import converts_inline
from serving.dataplane.scoring import Scorer, Scores
from serving.dataplane.shadow import ShadowCopier
from serving.registry.registry import ModelRegistry
from serving.repository.manifest import ModelManifest
from serving.repository.store import LoadedModel

log = logging.getLogger(__name__)
_MAX_REFUSAL_CHARS = 1000  # an estimator's message may list every unseen value it met


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
        shadow: ShadowCopier | None = None,
        drift: DriftMonitor | None = None,
    ) -> None:
        self._registry, self._cache, self._scorer = registry, cache, scorer
        self._metrics, self._shadow, self._drift = metrics, shadow, drift

    async def predict(
        self, name: str, body: PredictBody, routing_key: str | None = None
    ) -> Prediction:
        """`routing_key` (X-Routing-Key) keeps a caller on one arm of the traffic split."""
        model = await self._registry.resolve(name, body.version, routing_key)
        manifest = model.manifest
        try:
            if body.probabilities and not manifest.has_predict_proba:
                raise InvalidInputError(f"{name} is a {manifest.task} model: no probabilities")
            with span("convert"):
                matrix = await _convert(body, model)
            payload, scores, is_hit = await self._answer(model, matrix, body.probabilities)
        except ServingError as exc:  # by version, so a canary's error rate can be compared
            self._metrics.prediction_errors.labels(name, str(manifest.version), exc.code).inc()
            raise
        if body.version is None:
            self.copy_to_shadow(model, matrix, payload if scores is None else scores)
        return Prediction(name, manifest.version, payload, is_cache_hit=is_hit)

    def copy_to_shadow(self, model: LoadedModel, matrix: Matrix, answer: Scores | bytes) -> None:
        """A request the traffic split routed: its model's shadow alias scores a copy later."""
        if self._shadow is not None:
            self._shadow.offer(model, matrix, answer)

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
        key = self._key(manifest, matrix, probabilities)
        with span("cache.lookup"):
            cached = await self._lookup(key)
        annotate_prediction(manifest.name, manifest.version, len(matrix), cached is not None)
        if cached is not None:
            self._metrics.predictions.labels(*labels, "hit").inc()
            self._metrics.rows.labels(*labels).inc(len(matrix))
            return cached, None, True
        scores = await self._scored(model, matrix, probabilities)
        with span("encode"):
            payload = encode(manifest.name, manifest.version, scores)
        await self._cache.set(key, payload)
        self._metrics.predictions.labels(*labels, "miss").inc()
        self._metrics.rows.labels(*labels).inc(len(matrix))
        return payload, scores, False

    async def _scored(self, model: LoadedModel, matrix: Matrix, probabilities: bool) -> Scores:
        """The scorer's answer; the estimator's own ValueError is the caller's (422), anything
        else it raises is the model's or ours (500, traceback in the log only)."""
        try:
            return await self._scorer.score(model, matrix, probabilities)  # times its own calls
        except ServingError:
            raise
        except ValueError as exc:
            labels = (model.manifest.name, str(model.manifest.version))
            self._metrics.scoring_errors.labels(*labels, "refused").inc()
            raise RejectedByModelError(_refusal(labels, exc)) from None
        except Exception:
            labels = (model.manifest.name, str(model.manifest.version))
            self._metrics.scoring_errors.labels(*labels, "failed").inc()
            log.exception("scoring failed", extra={"model": labels[0], "version": labels[1]})
            raise ScoringFailedError(
                f"{labels[0]} v{labels[1]} failed to score these rows; see the server log"
            ) from None

    def _key(self, manifest: ModelManifest, matrix: Matrix, probabilities: bool) -> str:
        # Hashing a 10,000-row matrix costs ~0.2 ms: not worth it when nothing is cached.
        if not self._cache.is_enabled:
            return ""
        artifact = manifest.artifact.sha256
        return cache_key(manifest.name, manifest.version, artifact, matrix, probabilities)

    async def _lookup(self, key: str) -> bytes | None:
        try:
            cached = await self._cache.get(key)
        except CacheUnavailableError:  # counted here; the request goes on as a miss
            self._metrics.cache_lookups.labels("error").inc()
            return None
        self._metrics.cache_lookups.labels("miss" if cached is None else "hit").inc()
        return cached


async def _convert(body: PredictBody, model: LoadedModel) -> Matrix:
    # With the matrix built while parsing only the model's checks are left: a few array passes.
    if body.prebuilt_matrix is not None or converts_inline(len(body.instances)):
        return to_matrix(
            body.instances, model.manifest, body.prebuilt_matrix, body.boolean_literals
        )
    return await anyio.to_thread.run_sync(
        to_matrix, body.instances, model.manifest, None, body.boolean_literals
    )


def _refusal(labels: tuple[str, str], exc: ValueError) -> str:
    message = str(exc) or type(exc).__name__
    if len(message) > _MAX_REFUSAL_CHARS:
        message = message[:_MAX_REFUSAL_CHARS] + "..."
    return f"{labels[0]} v{labels[1]} refused these rows: {message}"


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
