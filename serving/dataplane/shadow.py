"""Shadow traffic: a copy of a routed request is scored by the model's shadow alias, off the
request path, and compared with the answer the caller got.

The primary never waits and never fails because of the shadow: `offer` only puts the copy
in a bounded buffer (at most `max_copies` requests and `max_rows` rows; when either is full
the copy is dropped and counted), and a fixed number of consumer tasks per worker (one by
default) score the copies: each takes whatever is queued, up to about 1,024 rows, and scores
it in one estimator call per model version, so shadow load cannot grow with the request
rate. Any error in the shadow (it cannot load, it raises, its features differ) is counted as
verdict `error`.
"""

import logging
import random
import time
from dataclasses import dataclass
from typing import Any

import anyio
import numpy as np
import numpy.typing as npt
import orjson
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from prometheus_client import CollectorRegistry, Counter, Histogram

from serving.core.errors import ModelLoadError, ServingError
from serving.dataplane.inputs import Matrix
from serving.dataplane.scoring import Scorer, Scores
from serving.registry.registry import ModelRegistry
from serving.repository.store import LoadedModel

log = logging.getLogger(__name__)
Predictions = npt.NDArray[Any]

# A shadow version that failed to load is not tried again for this long: each try reads,
# verifies and unpickles it, which a stream of copies must not repeat.
_LOAD_RETRY_SECONDS = 10.0
_MAX_MERGED_ROWS = 1024  # rows per shadow call when copies wait in the queue
# Mean absolute difference between a regressor's answer and its shadow's, per request.
_DIFFERENCE_BUCKETS = (1e-9, 1e-6, 1e-4, 1e-3, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 50, 100)


@dataclass(frozen=True, eq=False)
class ShadowCopy:
    primary: LoadedModel
    shadow_alias: str
    matrix: Matrix
    answer: Scores | bytes  # the scores, or the encoded answer when it came from the cache


class ShadowMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ["model", "primary_version", "shadow_version"]
        self.results = Counter(
            "serving_shadow_results_total",
            "Requests scored by the shadow alias, by whether it agreed with the answer sent",
            [*labels, "verdict"],  # same, different, error
            registry=registry,
        )
        self.abs_difference = Histogram(
            "serving_shadow_abs_difference",
            "Regressors: mean absolute difference between the answer and the shadow's",
            labels,
            buckets=_DIFFERENCE_BUCKETS,
            registry=registry,
        )
        self.queued = Counter(
            "serving_shadow_queued_total",
            "Copies of routed requests queued for the shadow (after SERVING_SHADOW_SAMPLE)",
            ["model"],
            registry=registry,
        )
        self.dropped = Counter(
            "serving_shadow_dropped_total",
            "Copies for the shadow dropped because its queue was full",
            ["model"],
            registry=registry,
        )


class ShadowCopier:
    """Takes copies of routed requests and scores them with the shadow, in the background."""

    def __init__(
        self,
        registry: ModelRegistry,
        scorer: Scorer,
        metrics: ShadowMetrics,
        sample: float = 1.0,
        *,
        max_copies: int = 64,
        max_rows: int = 20_000,
        consumers: int = 1,
    ) -> None:
        self._registry, self._scorer, self._metrics = registry, scorer, metrics
        self._sample, self._max_rows, self._consumers = sample, max_rows, consumers
        self._queued_rows = 0
        self._unloadable: dict[tuple[str, int | None], float] = {}  # -> monotonic retry time
        streams = anyio.create_memory_object_stream[ShadowCopy](max_buffer_size=max_copies)
        self._send: MemoryObjectSendStream[ShadowCopy] = streams[0]
        self._receive: MemoryObjectReceiveStream[ShadowCopy] = streams[1]

    def offer(self, primary: LoadedModel, matrix: Matrix, answer: Scores | bytes) -> None:
        """Queue a copy when the model has a shadow and this request is sampled. Never waits."""
        name, version = primary.manifest.name, primary.manifest.version
        state = self._registry.models.get(name)
        alias = state.traffic.shadow if state is not None else None
        if alias is None or state is None or state.aliases.get(alias) == version:
            return
        if self._sample < 1.0 and random.random() >= self._sample:
            return
        if self._queued_rows + len(matrix) > self._max_rows:
            self._metrics.dropped.labels(name).inc()
            return
        try:
            self._send.send_nowait(ShadowCopy(primary, alias, matrix, answer))
        except anyio.WouldBlock:
            self._metrics.dropped.labels(name).inc()
            return
        self._queued_rows += len(matrix)
        self._metrics.queued.labels(name).inc()

    async def run(self) -> None:
        """The consumers, for as long as the worker runs; then the queue is closed."""
        try:
            async with anyio.create_task_group() as tasks:
                for _ in range(self._consumers):
                    tasks.start_soon(self._consume, self._receive.clone())
        finally:
            self._send.close()
            self._receive.close()

    async def _consume(self, copies: MemoryObjectReceiveStream[ShadowCopy]) -> None:
        """Takes what is waiting (up to _MAX_MERGED_ROWS) and scores each model's copies in
        one estimator call: a forest's cost per call is mostly fixed, as for the primary."""
        with copies:
            async for first in copies:
                taken = [first, *_waiting(copies, len(first.matrix))]
                self._queued_rows -= sum(len(copy.matrix) for copy in taken)
                for group in _grouped(taken):
                    await self._compare_safely(group)

    async def _compare_safely(self, group: list[ShadowCopy]) -> None:
        try:
            await self._compare(group)
        except Exception:  # a shadow must never take its consumer down
            log.exception("shadow comparison failed")

    async def _compare(self, group: list[ShadowCopy]) -> None:
        """`group`: copies of one model version for one shadow alias."""
        primary = group[0].primary.manifest
        state = self._registry.models.get(primary.name)
        known = state.aliases.get(group[0].shadow_alias) if state is not None else None
        labels = [primary.name, str(primary.version), str(known or "unknown")]
        try:
            shadow = await self._loaded_shadow(group[0], known)
            labels[2] = str(shadow.manifest.version)
            if shadow.manifest.feature_names != primary.feature_names:
                raise ValueError(f"the shadow takes features {shadow.manifest.feature_names}")
            answers = await self._score(shadow, group)
        except Exception as exc:  # whatever the shadow raises is its verdict, not ours
            log.debug("shadow %s of %s failed: %r", group[0].shadow_alias, primary.name, exc)
            self._metrics.results.labels(*labels, "error").inc(len(group))
            return
        for copy, shadow_predictions in zip(group, answers, strict=True):
            answered = _predictions(copy.answer)
            if primary.task == "regression":
                verdict = self._regression_verdict(labels, answered, shadow_predictions)
            else:
                verdict = "same" if np.array_equal(answered, shadow_predictions) else "different"
            self._metrics.results.labels(*labels, verdict).inc()

    async def _score(self, shadow: LoadedModel, group: list[ShadowCopy]) -> list[Predictions]:
        """The shadow's predictions per copy, from one call over all their rows."""
        if len(group) == 1:
            return [(await self._scorer.score(shadow, group[0].matrix, False)).predictions]
        merged = np.concatenate([copy.matrix for copy in group])
        predictions = (await self._scorer.score(shadow, merged, False)).predictions
        ends = np.cumsum([len(copy.matrix) for copy in group])[:-1]
        return list(np.split(predictions, ends))

    async def _loaded_shadow(self, copy: ShadowCopy, known: int | None) -> LoadedModel:
        name, now = copy.primary.manifest.name, time.monotonic()
        if self._unloadable.get((name, known), 0.0) > now:
            raise ModelLoadError(f"{name} v{known} failed to load a moment ago")
        try:
            return await self._registry.resolve(name, copy.shadow_alias)
        except ServingError:
            self._unloadable = {k: t for k, t in self._unloadable.items() if t > now}
            self._unloadable[(name, known)] = now + _LOAD_RETRY_SECONDS
            raise

    def _regression_verdict(
        self, labels: list[str], answered: Predictions, shadow: Predictions
    ) -> str:
        difference = np.abs(answered.astype(np.float64) - shadow.astype(np.float64))
        self._metrics.abs_difference.labels(*labels).observe(float(difference.mean()))
        return "same" if np.allclose(answered, shadow, rtol=1e-6, atol=1e-9) else "different"


def _waiting(copies: MemoryObjectReceiveStream[ShadowCopy], rows: int) -> list[ShadowCopy]:
    """The copies already queued, without waiting, until about _MAX_MERGED_ROWS rows."""
    taken: list[ShadowCopy] = []
    while rows < _MAX_MERGED_ROWS:
        try:
            copy = copies.receive_nowait()
        except (anyio.WouldBlock, anyio.EndOfStream):
            break
        taken.append(copy)
        rows += len(copy.matrix)
    return taken


def _grouped(copies: list[ShadowCopy]) -> list[list[ShadowCopy]]:
    """By model version and shadow alias, in the order they came."""
    groups: dict[tuple[str, int, str], list[ShadowCopy]] = {}
    for copy in copies:
        manifest = copy.primary.manifest
        groups.setdefault((manifest.name, manifest.version, copy.shadow_alias), []).append(copy)
    return list(groups.values())


def _predictions(answer: Scores | bytes) -> Predictions:
    if isinstance(answer, Scores):
        return answer.predictions
    return np.asarray(orjson.loads(answer)["predictions"])
