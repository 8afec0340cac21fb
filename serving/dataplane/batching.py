"""Adaptive batching: concurrent requests for one model version share one estimator call.

As Triton, MLServer and Ray Serve do it, but without their fixed wait: a request that
finds its model version idle is scored at once, alone. Requests that arrive while a
call is running queue up and go together in the next call, up to `max_batch_size`
rows, optionally waiting up to `max_delay_ms` for more rows when the batch is not full.
Answers are split back row for row. Input errors never reach a batch (the predictor
validates before scoring), and an estimator error in a merged call is retried request
by request, so only the request that causes it fails.

Bounded: each queue holds at most `max_queued` live requests (the server passes
SERVING_MAX_INFLIGHT), one more is refused with OverloadedError. A caller that stops
waiting (its deadline passed) cancels its place: a queued request is then dropped before
its call, and an unbatched one that has not reached a thread never runs. A call already
running in a thread cannot be interrupted; it finishes and its answer is dropped.

The estimator's cost per call is mostly fixed (a 200-tree forest: about 8 ms whether it
gets 1 row or 32), so merging turns that fixed cost into a cost per batch.
"""

import asyncio
import time
import weakref
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import anyio

from serving.core.errors import OverloadedError
from serving.core.metrics import ServingMetrics
from serving.core.settings import Settings
from serving.core.tracing import clock_ns, record_span, span
from serving.dataplane.inputs import Matrix
from serving.dataplane.merged import BatchObserver, Pending, score_batch, score_observed
from serving.dataplane.scoring import Scores
from serving.repository.manifest import ModelManifest
from serving.repository.store import LoadedModel

_T = TypeVar("_T")


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


class _InPool(Protocol):
    async def __call__(self, call: Callable[..., _T], *args: Any) -> _T: ...


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
        max_queued: int = 256,  # live requests waiting per model version
        on_full: Callable[[], None] | None = None,  # told of each request refused for that
    ) -> None:
        # An executor rather than anyio's thread pool: cancelling the wait for a call that has
        # not started yet removes it from the pool's queue, so it never runs.
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="scoring")
        self._max_queued, self._on_full = max_queued, on_full or _nothing
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
            queue = self._queues[model] = _ModelQueue(policy, self._in_pool, self._observe)
        try:
            return await queue.score(model, matrix, probabilities, self._max_queued)
        except OverloadedError:
            self._on_full()
            raise

    async def _in_pool(self, call: Callable[..., _T], *args: Any) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, call, *args)

    def close(self) -> None:
        """Calls not started are dropped; a running one finishes in its thread."""
        self._pool.shutdown(wait=False, cancel_futures=True)


class _ModelQueue:
    """One version's waiting requests and the task that drains them, one call at a time."""

    def __init__(self, policy: BatchPolicy, in_pool: "_InPool", observe: BatchObserver) -> None:
        self._policy, self._in_pool, self._observe = policy, in_pool, observe
        self._waiting: deque[Pending] = deque()
        self._waiting_rows = 0
        self._full = asyncio.Event()
        self._drainer: asyncio.Task[None] | None = None  # holds the model only while busy

    async def score(
        self, model: LoadedModel, matrix: Matrix, probabilities: bool, max_queued: int
    ) -> Scores:
        if not self._policy.merges:
            with span("score"):
                return await self._in_pool(
                    score_observed, model, matrix, probabilities, self._observe
                )
        self._make_room(max_queued)
        loop = asyncio.get_running_loop()
        pending = Pending(matrix, probabilities, loop.create_future(), clock_ns())
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

    def _make_room(self, max_queued: int) -> None:
        """Drops the places of callers that went away; refuses when the rest fill the queue."""
        if len(self._waiting) < max_queued:
            return
        self._waiting = deque(p for p in self._waiting if not p.answer.done())
        self._waiting_rows = sum(len(p.matrix) for p in self._waiting)
        if len(self._waiting) >= max_queued:
            raise OverloadedError(f"{max_queued} requests already wait for this model version")

    async def _drain(self, model: LoadedModel) -> None:
        batch: list[Pending] = []
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

    def _take_batch(self) -> list[Pending]:
        """Oldest first, up to max_batch_size rows; the first request always goes."""
        batch: list[Pending] = []
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

    async def _call(self, model: LoadedModel, batch: list[Pending]) -> list[Scores | Exception]:
        called_ns = time.time_ns()
        for pending in batch:
            pending.called_ns = called_ns
        return await self._in_pool(score_batch, model, batch, self._observe)

    @staticmethod
    def _settle(batch: list[Pending], outcomes: list[Scores | Exception]) -> None:
        for pending, outcome in zip(batch, outcomes, strict=True):
            if pending.answer.done():
                continue
            if isinstance(outcome, Exception):
                pending.answer.set_exception(outcome)
            else:
                pending.answer.set_result(outcome)


def _ignore(model: LoadedModel, rows: int, seconds: float) -> None:
    return None


def _nothing() -> None:
    return None


def build_scorer(settings: Settings, metrics: ServingMetrics) -> BatchingScorer:
    """The scorer the app uses: batching per the settings; each estimator call into metrics."""

    def observe(model: LoadedModel, rows: int, seconds: float) -> None:
        labels = (model.manifest.name, str(model.manifest.version))
        metrics.batch_rows.labels(*labels).observe(rows)
        metrics.inference_seconds.labels(*labels, model.runtime).observe(seconds)

    policy = BatchPolicy(settings.max_batch_size, settings.max_delay_ms)
    return BatchingScorer(
        settings.predict_threads,
        policy,
        observe,
        enabled=settings.batching,
        max_queued=settings.max_inflight,
        on_full=metrics.requests_shed.labels("queue_full").inc,
    )
