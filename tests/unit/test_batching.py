"""BatchingScorer: merging, exact split, no waiting when alone, error isolation, clean-up.

The estimator is a fake we own: it records every call's rows and can be held inside
`predict` so that later requests are known to queue behind a running call.
"""

import gc
import threading
from datetime import UTC, datetime
from typing import Any

import anyio
import anyio.lowlevel
import numpy as np
import numpy.typing as npt
import pytest

from serving.core.errors import OverloadedError
from serving.dataplane.batching import BatchingScorer, BatchPolicy
from serving.dataplane.scoring import Scores
from serving.repository.manifest import ArtifactInfo, BatchingOverride, Feature, ModelManifest
from serving.repository.store import LoadedModel

POISON = -1.0  # a row starting with this makes the fake estimator raise
BOUND_SECONDS = 10  # a hang guard, not a timing assertion


class FakeEstimator:
    """predict: row sum; predict_proba: [x0, 1 - x0]. Can hold the first call until released."""

    def __init__(self, hold_first_call: bool = False) -> None:
        self.calls: list[int] = []  # rows of each predict call, in order
        self.proba_calls: list[int] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        if not hold_first_call:
            self.release.set()

    def predict(self, matrix: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        self.calls.append(len(matrix))
        self.entered.set()
        self.release.wait(BOUND_SECONDS)
        if (matrix[:, 0] == POISON).any():
            raise ValueError("poisoned row")
        sums: npt.NDArray[np.float64] = matrix.sum(axis=1)
        return sums

    def predict_proba(self, matrix: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        self.proba_calls.append(len(matrix))
        return np.column_stack([matrix[:, 0], 1 - matrix[:, 0]])


def _manifest(batching: BatchingOverride | None = None) -> ModelManifest:
    return ModelManifest(
        name="fake",
        version=1,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        task="classification",
        features=[Feature(name="a"), Feature(name="b")],
        n_features=2,
        classes=[0, 1],
        has_predict_proba=True,
        python_version="3.11",
        sklearn_version="1.9.1",
        numpy_version="2.4",
        artifact=ArtifactInfo(sha256="0" * 64),
        example=[0.0, 0.0],
        batching=batching,
    )


def _model(estimator: FakeEstimator, batching: BatchingOverride | None = None) -> LoadedModel:
    return LoadedModel(manifest=_manifest(batching), estimator=estimator)


def _rows(first: float, count: int) -> npt.NDArray[np.float64]:
    return np.array([[first + i / 10, float(i)] for i in range(count)])


def _check_answer(rows: npt.NDArray[np.float64], scores: Scores, probabilities: bool) -> None:
    np.testing.assert_array_equal(scores.predictions, rows.sum(axis=1))
    if probabilities:
        assert scores.probabilities is not None
        np.testing.assert_array_equal(scores.probabilities[:, 0], rows[:, 0])
    else:
        assert scores.probabilities is None


async def _settle() -> None:
    """Let every started task run up to its first real wait."""
    for _ in range(5):
        await anyio.lowlevel.checkpoint()


async def _score_while_first_is_held(
    scorer: BatchingScorer,
    model: LoadedModel,
    requests: list[tuple[npt.NDArray[np.float64], bool]],
) -> list[Scores | BaseException]:
    """Request 0 starts alone and is held in predict; the rest queue behind it, then all run."""
    estimator = model.estimator
    results: list[Scores | BaseException] = [ValueError("never answered")] * len(requests)

    async def one(index: int) -> None:
        matrix, probabilities = requests[index]
        try:
            results[index] = await scorer.score(model, matrix, probabilities)
        except Exception as exc:
            results[index] = exc

    with anyio.fail_after(BOUND_SECONDS):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(one, 0)
            await anyio.to_thread.run_sync(estimator.entered.wait, BOUND_SECONDS)
            for index in range(1, len(requests)):
                tasks.start_soon(one, index)
            await _settle()
            estimator.release.set()
    return results


@pytest.fixture
def observed() -> list[int]:
    """Rows of each estimator call, as the scorer reports them to metrics."""
    return []


def _scorer(observed: list[int], **policy: Any) -> BatchingScorer:
    return BatchingScorer(
        2, BatchPolicy(**policy), lambda model, rows, seconds: observed.append(rows)
    )


async def test_a_lone_request_is_scored_at_once_even_with_a_long_delay_configured(
    observed: list[int],
) -> None:
    estimator = FakeEstimator()
    scorer = _scorer(observed, max_batch_size=64, max_delay_ms=60_000)
    rows = _rows(1.0, 3)

    with anyio.fail_after(BOUND_SECONDS):
        scores = await scorer.score(_model(estimator), rows, True)

    _check_answer(rows, scores, probabilities=True)
    assert estimator.calls == [3]
    assert observed == [3]


async def test_requests_arriving_during_a_call_are_merged_into_the_next_one(
    observed: list[int],
) -> None:
    estimator = FakeEstimator(hold_first_call=True)
    requests = [(_rows(float(i), 1 + i % 3), False) for i in range(6)]

    results = await _score_while_first_is_held(_scorer(observed), _model(estimator), requests)

    assert estimator.calls == [1, sum(len(rows) for rows, _ in requests[1:])]
    assert observed == estimator.calls
    for (rows, probabilities), scores in zip(requests, results, strict=True):
        assert isinstance(scores, Scores)
        _check_answer(rows, scores, probabilities)


async def test_answers_are_split_back_in_order_with_probabilities_only_where_asked(
    observed: list[int],
) -> None:
    estimator = FakeEstimator(hold_first_call=True)
    requests = [(_rows(float(i), 2 + i), i % 2 == 0) for i in range(5)]

    results = await _score_while_first_is_held(_scorer(observed), _model(estimator), requests)

    for (rows, probabilities), scores in zip(requests, results, strict=True):
        assert isinstance(scores, Scores)
        _check_answer(rows, scores, probabilities)
    merged_wanting_proba = sum(len(rows) for rows, proba in requests[1:] if proba)
    assert estimator.proba_calls == [len(requests[0][0]), merged_wanting_proba]


async def test_a_batch_never_exceeds_max_batch_size_rows(observed: list[int]) -> None:
    estimator = FakeEstimator(hold_first_call=True)
    requests = [(_rows(float(i), 1), False) for i in range(11)]

    results = await _score_while_first_is_held(
        _scorer(observed, max_batch_size=4), _model(estimator), requests
    )

    assert estimator.calls == [1, 4, 4, 2]
    assert all(isinstance(scores, Scores) for scores in results)


async def test_a_request_larger_than_the_batch_limit_runs_alone_and_whole(
    observed: list[int],
) -> None:
    estimator = FakeEstimator(hold_first_call=True)
    requests = [(_rows(0.0, 1), False), (_rows(1.0, 2), False), (_rows(2.0, 9), True)]

    results = await _score_while_first_is_held(
        _scorer(observed, max_batch_size=4), _model(estimator), requests
    )

    assert estimator.calls == [1, 2, 9]
    for (rows, probabilities), scores in zip(requests, results, strict=True):
        assert isinstance(scores, Scores)
        _check_answer(rows, scores, probabilities)


async def test_an_estimator_error_fails_only_the_request_that_caused_it(
    observed: list[int],
) -> None:
    estimator = FakeEstimator(hold_first_call=True)
    requests = [(_rows(float(i), 2), True) for i in range(5)]
    requests[2] = (_rows(POISON, 1), True)

    results = await _score_while_first_is_held(_scorer(observed), _model(estimator), requests)

    assert isinstance(results[2], ValueError)
    for index in (0, 1, 3, 4):
        scores = results[index]
        assert isinstance(scores, Scores)
        _check_answer(requests[index][0], scores, probabilities=True)
    # one call alone, one merged call that failed, then each queued request alone
    assert estimator.calls == [2, 7, 2, 1, 2, 2]


async def test_a_busy_queue_waits_up_to_max_delay_for_a_full_batch(observed: list[int]) -> None:
    estimator = FakeEstimator(hold_first_call=True)
    scorer = _scorer(observed, max_batch_size=3, max_delay_ms=60_000)
    model = _model(estimator)
    requests = [(_rows(float(i), 1), False) for i in range(3)]

    async def late_request() -> Scores:
        # Only sent once the held call is released: the queue is then waiting for rows.
        await anyio.to_thread.run_sync(lambda: estimator.release.wait(BOUND_SECONDS))
        await _settle()
        return await scorer.score(model, _rows(9.0, 1), False)

    with anyio.fail_after(BOUND_SECONDS):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(late_request)
            results = await _score_while_first_is_held(scorer, model, requests)

    assert estimator.calls == [1, 3]
    assert all(isinstance(scores, Scores) for scores in results)


async def test_a_busy_queue_runs_a_partial_batch_once_the_delay_is_over(
    observed: list[int],
) -> None:
    estimator = FakeEstimator(hold_first_call=True)
    scorer = _scorer(observed, max_batch_size=64, max_delay_ms=20)
    requests = [(_rows(float(i), 1), False) for i in range(3)]

    results = await _score_while_first_is_held(scorer, _model(estimator), requests)

    assert estimator.calls == [1, 2]
    assert all(isinstance(scores, Scores) for scores in results)


async def test_with_batching_off_every_request_is_its_own_call(observed: list[int]) -> None:
    estimator = FakeEstimator()
    scorer = BatchingScorer(4, BatchPolicy(), enabled=False)
    model = _model(estimator, BatchingOverride(max_batch_size=32))
    rows = [_rows(float(i), 1) for i in range(8)]

    with anyio.fail_after(BOUND_SECONDS):
        async with anyio.create_task_group() as tasks:
            for matrix in rows:
                tasks.start_soon(scorer.score, model, matrix, False)

    assert estimator.calls == [1] * 8


async def test_a_manifest_can_turn_batching_off_for_its_model(observed: list[int]) -> None:
    estimator = FakeEstimator(hold_first_call=True)
    model = _model(estimator, BatchingOverride(max_batch_size=1))
    requests = [(_rows(float(i), 1), False) for i in range(4)]

    results = await _score_while_first_is_held(_scorer(observed), model, requests)

    assert estimator.calls == [1, 1, 1, 1]
    assert all(isinstance(scores, Scores) for scores in results)


def test_manifest_overrides_apply_field_by_field() -> None:
    server = BatchPolicy(max_batch_size=64, max_delay_ms=2.0)

    assert server.for_manifest(_manifest()) == server
    assert server.for_manifest(_manifest(BatchingOverride(max_batch_size=8))) == BatchPolicy(8, 2.0)
    assert server.for_manifest(_manifest(BatchingOverride(max_delay_ms=0))) == BatchPolicy(64, 0)


async def test_a_caller_that_goes_away_does_not_disturb_the_others(observed: list[int]) -> None:
    estimator = FakeEstimator(hold_first_call=True)
    scorer, model = _scorer(observed), _model(estimator)
    answers: list[Scores] = []

    async def keep(matrix: npt.NDArray[np.float64]) -> None:
        answers.append(await scorer.score(model, matrix, False))

    with anyio.fail_after(BOUND_SECONDS):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(keep, _rows(0.0, 1))
            await anyio.to_thread.run_sync(estimator.entered.wait, BOUND_SECONDS)
            async with anyio.create_task_group() as leaving:
                leaving.start_soon(keep, _rows(7.0, 2))
                await _settle()
                leaving.cancel_scope.cancel()  # e.g. the client disconnected
            tasks.start_soon(keep, _rows(3.0, 1))
            await _settle()
            estimator.release.set()

    assert sorted(float(a.predictions[0]) for a in answers) == [0.0, 3.0]
    assert estimator.calls == [1, 1]  # the departed request's rows were never scored


async def test_the_queue_of_a_version_no_longer_served_goes_away(observed: list[int]) -> None:
    scorer = _scorer(observed)
    model = _model(FakeEstimator())
    await scorer.score(model, _rows(0.0, 1), False)
    assert scorer.queue_count == 1

    del model
    gc.collect()

    assert scorer.queue_count == 0


async def test_a_full_queue_refuses_the_next_request_and_says_so(observed: list[int]) -> None:
    estimator = FakeEstimator(hold_first_call=True)
    full: list[int] = []
    scorer = BatchingScorer(2, BatchPolicy(), max_queued=3, on_full=lambda: full.append(1))
    model = _model(estimator)
    outcomes: list[Scores | BaseException] = []

    async def one(first: float) -> None:
        try:
            outcomes.append(await scorer.score(model, _rows(first, 1), False))
        except OverloadedError as exc:
            outcomes.append(exc)

    with anyio.fail_after(BOUND_SECONDS):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(one, 0.0)
            await anyio.to_thread.run_sync(estimator.entered.wait, BOUND_SECONDS)
            for first in (1.0, 2.0, 3.0, 4.0):  # 3 fill the queue, the 4th is refused
                tasks.start_soon(one, first)
                await _settle()
            refused = [o for o in outcomes if isinstance(o, OverloadedError)]
            estimator.release.set()

    assert len(refused) == 1 and full == [1]
    assert estimator.calls == [1, 3]
    scorer.close()


async def test_a_caller_that_stops_waiting_frees_its_place_and_is_never_scored(
    observed: list[int],
) -> None:
    estimator = FakeEstimator(hold_first_call=True)
    scorer = BatchingScorer(2, BatchPolicy(), max_queued=2)
    model = _model(estimator)

    with anyio.fail_after(BOUND_SECONDS):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(scorer.score, model, _rows(0.0, 1), False)
            await anyio.to_thread.run_sync(estimator.entered.wait, BOUND_SECONDS)
            for first in (POISON, POISON):  # would fail if scored: they must not be
                with anyio.move_on_after(0.05):
                    await scorer.score(model, _rows(first, 1), False)
            tasks.start_soon(scorer.score, model, _rows(5.0, 1), False)
            tasks.start_soon(scorer.score, model, _rows(6.0, 1), False)
            await _settle()
            estimator.release.set()

    assert estimator.calls == [1, 2]  # the two that gave up took no place and no rows
    scorer.close()
