"""Blocking: one estimator call for the requests of a batch, answers split back per request."""

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from serving.dataplane.inputs import Matrix
from serving.dataplane.scoring import Scores, score_now
from serving.repository.store import LoadedModel

BatchObserver = Callable[[LoadedModel, int, float], None]  # each estimator call: rows, seconds


@dataclass(eq=False)
class Pending:
    """One request waiting in a batching queue; `answer` is done once its caller has it."""

    matrix: Matrix
    probabilities: bool
    answer: "asyncio.Future[Scores]"
    queued_ns: int = 0  # for the request's trace: queued, then scored in a (merged) call
    called_ns: int = 0


def score_batch(
    model: LoadedModel, batch: list[Pending], observe: BatchObserver
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


def _alone(model: LoadedModel, pending: Pending, observe: BatchObserver) -> Scores | Exception:
    try:
        return score_observed(model, pending.matrix, pending.probabilities, observe)
    except Exception as exc:  # the estimator's own error, handed to its request
        return exc


def _merged(model: LoadedModel, batch: list[Pending]) -> list[Scores | Exception]:
    matrix = np.concatenate([p.matrix for p in batch])
    wanting = [p for p in batch if p.probabilities]
    if model.compiled is not None:  # one run answers labels and probabilities for every row
        scores = score_now(model, matrix, bool(wanting))
        proba = scores.probabilities
        if proba is not None and len(wanting) < len(batch):
            proba = np.concatenate([proba[rows] for p, rows in _ranges(batch) if p.probabilities])
        return _split(batch, scores.predictions, proba)
    predictions = np.ascontiguousarray(model.estimator.predict(matrix))
    proba = None
    if wanting:
        rows = matrix if len(wanting) == len(batch) else np.concatenate([p.matrix for p in wanting])
        proba = np.ascontiguousarray(model.estimator.predict_proba(rows), dtype=np.float64)
    return _split(batch, predictions, proba)


def _ranges(batch: list[Pending]) -> list[tuple[Pending, slice]]:
    ranges, start = [], 0
    for pending in batch:
        ranges.append((pending, slice(start, start + len(pending.matrix))))
        start += len(pending.matrix)
    return ranges


def _split(
    batch: list[Pending], predictions: npt.NDArray[Any], proba: Matrix | None
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


def score_observed(
    model: LoadedModel, matrix: Matrix, probabilities: bool, observe: BatchObserver
) -> Scores:
    started = time.perf_counter()
    try:
        return score_now(model, matrix, probabilities)
    finally:
        observe(model, len(matrix), time.perf_counter() - started)
