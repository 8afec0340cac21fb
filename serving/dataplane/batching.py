"""Adaptive batching: concurrent requests for one model version share one estimator call.

As Triton, MLServer and Ray Serve do it, but without their fixed wait: a request that
finds its model version idle is scored at once, alone. Requests that arrive while a
call is running queue up and go together in the next call, up to `max_batch_size`
rows, optionally waiting up to `max_delay_ms` for more rows when the batch is not full.
Answers are split back row for row. Input errors never reach a batch (the predictor
validates before scoring), and an estimator error in a merged call is retried request
by request, so only the request that causes it fails.

The estimator's cost per call is mostly fixed (a 200-tree forest: about 8 ms whether it
gets 1 row or 32), so merging turns that fixed cost into a cost per batch.
"""

import asyncio
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import numpy as np
import numpy.typing as npt

from serving.core.metrics import ServingMetrics
from serving.core.settings import Settings
from serving.core.tracing import clock_ns, record_span, span
from serving.dataplane.inputs import Matrix
from serving.dataplane.scoring import Scores, score_now
from serving.repository.manifest import ModelManifest
from serving.repository.store import LoadedModel

BatchObserver = Callable[[LoadedModel, int, float], None]  # each estimator call: rows, seconds


@dataclass(frozen=True)
class BatchPolicy:
    """How one model version batches; `max_batch_size` 1 means it does not."""

    max_batch_size: int = 256  # rows per estimator call; a larger request still runs, alone
    max_delay_ms: float = 0.0  # wait for more rows after a busy spell; never when idle

    @property
    def merges(self) -> bool:
        return self.max_batch_size > 1

    def for_manifest(self, manifest: ModelManifest) -> "BatchPolicy":
        """The server's policy with the model's manifest overrides applied."""
        override = manifest.batching
        if override is None:
            return self
        size, delay = override.max_batch_size, override.max_delay_ms
        return BatchPolicy(
            self.max_batch_size if size is None else size,
            self.max_delay_ms if delay is None else delay,
        )


UNBATCHED = BatchPolicy(max_batch_size=1)


@dataclass(eq=False)
class _Pending:
    matrix: Matrix
    probabilities: bool
    answer: "asyncio.Future[Scores]"
    queued_ns: int = 0  # for the request's trace: queued, then scored in a (merged) call
    called_ns: int = 0


class BatchingScorer:
    """A Scorer that merges concurrent requests per loaded model version.

    Queues are keyed weakly by the LoadedModel, so the queue of a version that is no
    longer served goes away with it.
    """

    def __init__(
        self,
        threads: int,
        policy: BatchPolicy = BatchPolicy(),  # frozen, so sharing the default is safe
        observe: BatchObserver | None = None,
        *,
        enabled: bool = True,  # False: every model unbatched, whatever its manifest says
    ) -> None:
        self._limiter = anyio.CapacityLimiter(threads)
        self._policy = policy if enabled else UNBATCHED
        self._enabled, self._observe = enabled, observe or _ignore
        self._queues: weakref.WeakKeyDictionary[LoadedModel, _ModelQueue] = (
            weakref.WeakKeyDictionary()
        )

    @property
    def queue_count(self) -> int:
        return len(self._queues)

    async def score(self, model: LoadedModel, matrix: Matrix, probabilities: bool) -> Scores:
        queue = self._queues.get(model)
        if queue is None:
            policy = self._policy.for_manifest(model.manifest) if self._enabled else UNBATCHED
            queue = self._queues[model] = _ModelQueue(policy, self._limiter, self._observe)
        return await queue.score(model, matrix, probabilities)


class _ModelQueue:
    """One version's waiting requests and the task that drains them, one call at a time."""

    def __init__(
        self, policy: BatchPolicy, limiter: anyio.CapacityLimiter, observe: BatchObserver
    ) -> None:
        self._policy, self._limiter, self._observe = policy, limiter, observe
        self._waiting: deque[_Pending] = deque()
        self._waiting_rows = 0
        self._full = asyncio.Event()
        self._drainer: asyncio.Task[None] | None = None  # holds the model only while busy

    async def score(self, model: LoadedModel, matrix: Matrix, probabilities: bool) -> Scores:
        if not self._policy.merges:
            with span("score"):
                return await anyio.to_thread.run_sync(
                    _score_observed,
                    model,
                    matrix,
                    probabilities,
                    self._observe,
                    limiter=self._limiter,
                )
        loop = asyncio.get_running_loop()
        pending = _Pending(matrix, probabilities, loop.create_future(), clock_ns())
        self._waiting.append(pending)
        self._waiting_rows += len(matrix)
        if self._waiting_rows >= self._policy.max_batch_size:
            self._full.set()
        if self._drainer is None:
            self._drainer = loop.create_task(self._drain(model))
        scores = await pending.answer
        if pending.queued_ns:  # traced
            record_span("batch.wait", pending.queued_ns, pending.called_ns)
            record_span("score", pending.called_ns, time.time_ns())
        return scores

    async def _drain(self, model: LoadedModel) -> None:
        batch: list[_Pending] = []
        try:
            was_busy = False
            while self._waiting:
                if was_busy and self._policy.max_delay_ms > 0:
                    await self._wait_for_more_rows()
                batch = self._take_batch()
                if batch:
                    self._settle(batch, await self._call(model, batch))
                was_busy = True
        finally:
            self._drainer = None
            for pending in [*batch, *self._waiting]:  # only if cancelled (event loop closing)
                pending.answer.cancel()

    async def _wait_for_more_rows(self) -> None:
        if self._waiting_rows < self._policy.max_batch_size:
            with anyio.move_on_after(self._policy.max_delay_ms / 1000):
                await self._full.wait()

    def _take_batch(self) -> list[_Pending]:
        """Oldest first, up to max_batch_size rows; the first request always goes."""
        batch: list[_Pending] = []
        rows = 0
        while self._waiting:
            head = self._waiting[0]
            if batch and rows + len(head.matrix) > self._policy.max_batch_size:
                break
            self._waiting.popleft()
            self._waiting_rows -= len(head.matrix)
            if not head.answer.done():  # a caller that went away needs no answer
                batch.append(head)
                rows += len(head.matrix)
        if self._waiting_rows < self._policy.max_batch_size:
            self._full.clear()
        return batch

    async def _call(self, model: LoadedModel, batch: list[_Pending]) -> list[Scores | Exception]:
        called_ns = time.time_ns()
        for pending in batch:
            pending.called_ns = called_ns
        return await anyio.to_thread.run_sync(
            score_batch, model, batch, self._observe, limiter=self._limiter
        )

    @staticmethod
    def _settle(batch: list[_Pending], outcomes: list[Scores | Exception]) -> None:
        for pending, outcome in zip(batch, outcomes, strict=True):
            if pending.answer.done():
                continue
            if isinstance(outcome, Exception):
                pending.answer.set_exception(outcome)
            else:
                pending.answer.set_result(outcome)


def score_batch(
    model: LoadedModel, batch: "list[_Pending]", observe: BatchObserver
) -> list[Scores | Exception]:
    """Blocking: one estimator call for the whole batch, split back per request.

    If the merged call fails, each request is scored alone, so an error belongs
    to the request that causes it and every other request still gets its answer.
    """
    if len(batch) > 1:
        started = time.perf_counter()
        try:
            answers = _merged(model, batch)
        except Exception:
            answers = None  # find out below which request it was
        observe(model, sum(len(p.matrix) for p in batch), time.perf_counter() - started)
        if answers is not None:
            return answers
    return [_alone(model, pending, observe) for pending in batch]


def _alone(model: LoadedModel, pending: _Pending, observe: BatchObserver) -> Scores | Exception:
    try:
        return _score_observed(model, pending.matrix, pending.probabilities, observe)
    except Exception as exc:  # the estimator's own error, handed to its request
        return exc


def _merged(model: LoadedModel, batch: list[_Pending]) -> list[Scores | Exception]:
    matrix = np.concatenate([p.matrix for p in batch])
    predictions = np.ascontiguousarray(model.estimator.predict(matrix))
    wanting = [p for p in batch if p.probabilities]
    proba = None
    if wanting:
        rows = matrix if len(wanting) == len(batch) else np.concatenate([p.matrix for p in wanting])
        proba = np.ascontiguousarray(model.estimator.predict_proba(rows), dtype=np.float64)
    return _split(batch, predictions, proba)


def _split(
    batch: list[_Pending], predictions: npt.NDArray[Any], proba: Matrix | None
) -> list[Scores | Exception]:
    """Row ranges back to their requests, in order; probabilities only where asked for."""
    answers: list[Scores | Exception] = []
    start = proba_start = 0
    for pending in batch:
        stop = start + len(pending.matrix)
        mine = None
        if pending.probabilities and proba is not None:
            mine = proba[proba_start : proba_start + len(pending.matrix)]
            proba_start += len(pending.matrix)
        answers.append(Scores(predictions[start:stop], mine))
        start = stop
    return answers


def _score_observed(
    model: LoadedModel, matrix: Matrix, probabilities: bool, observe: BatchObserver
) -> Scores:
    started = time.perf_counter()
    try:
        return score_now(model, matrix, probabilities)
    finally:
        observe(model, len(matrix), time.perf_counter() - started)


def _ignore(model: LoadedModel, rows: int, seconds: float) -> None:
    return None


def build_scorer(settings: Settings, metrics: ServingMetrics) -> BatchingScorer:
    """The scorer the app uses: batching per the settings; each estimator call into metrics."""

    def observe(model: LoadedModel, rows: int, seconds: float) -> None:
        labels = (model.manifest.name, str(model.manifest.version))
        metrics.batch_rows.labels(*labels).observe(rows)
        metrics.inference_seconds.labels(*labels).observe(seconds)

    policy = BatchPolicy(settings.max_batch_size, settings.max_delay_ms)
    return BatchingScorer(settings.predict_threads, policy, observe, enabled=settings.batching)
