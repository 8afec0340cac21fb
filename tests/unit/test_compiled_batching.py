"""Adaptive batching over a compiled model: merged calls answer each request as a call of
its own would, probabilities only where asked for."""

import asyncio
from pathlib import Path

import numpy as np

from serving.dataplane.batching import BatchingScorer, BatchPolicy
from serving.dataplane.scoring import score_now
from serving.repository.compiled import CompiledModel
from serving.repository.manifest import ModelManifest
from serving.repository.store import LoadedModel
from training.data import load_dataset


def _compiled_forest(trained_registry: Path) -> LoadedModel:
    folder = trained_registry / "breast_cancer" / "1"
    manifest = ModelManifest.model_validate_json((folder / "manifest.json").read_bytes())
    compiled = CompiledModel((folder / "model.onnx").read_bytes(), threads=1)
    return LoadedModel(manifest, None, compiled=compiled)


async def test_merged_requests_with_and_without_probabilities_get_their_own_rows(
    trained_registry: Path,
) -> None:
    model = _compiled_forest(trained_registry)
    rows = load_dataset("breast_cancer").x_test
    requests = [(rows[i * 7 : i * 7 + 1 + i], i % 2 == 0) for i in range(12)]
    calls: list[int] = []
    scorer = BatchingScorer(1, BatchPolicy(max_batch_size=64), lambda m, n, s: calls.append(n))

    answers = await asyncio.gather(*(scorer.score(model, m, p) for m, p in requests))

    assert len(calls) < len(requests)  # some calls were merged
    assert model.runtime == "onnx"
    for (matrix, probabilities), answer in zip(requests, answers, strict=True):
        alone = score_now(model, matrix, probabilities)
        np.testing.assert_array_equal(answer.predictions, alone.predictions)
        if probabilities:
            assert alone.probabilities is not None and answer.probabilities is not None
            np.testing.assert_array_equal(answer.probabilities, alone.probabilities)
        else:
            assert answer.probabilities is None
