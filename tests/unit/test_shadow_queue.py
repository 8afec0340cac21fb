"""The shadow's queue is bounded: when full, copies are dropped and counted, never waited on."""

from pathlib import Path

import anyio
import anyio.lowlevel
import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client import CollectorRegistry

from serving.dataplane.scoring import Scores, score_now
from serving.dataplane.shadow import ShadowCopier, ShadowMetrics
from serving.registry.registry import ModelRegistry
from serving.repository.signing import TrustedKeys
from serving.repository.store import LoadedModel, ModelStore
from serving.repository.traffic import TrafficTable
from tests.traffic_versions import IRIS_ROWS
from tests.uploads import eventually


class GatedScorer:
    """Scores for real once the gate opens; until then every call waits (a slow shadow)."""

    def __init__(self) -> None:
        self.gate = anyio.Event()

    async def score(
        self, model: LoadedModel, matrix: npt.NDArray[np.float64], probabilities: bool
    ) -> Scores:
        await self.gate.wait()
        return score_now(model, matrix, probabilities)


def _sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


async def test_a_full_queue_drops_copies_and_the_offer_never_waits(
    traffic_registry: Path, signing_key: Ed25519PrivateKey
) -> None:
    store = ModelStore(traffic_registry, TrustedKeys([signing_key.public_key()]))
    store.set_traffic("iris", TrafficTable(weights={"production": 100}, shadow="canary"))
    registry = ModelRegistry(store)
    await registry.refresh()
    prometheus = CollectorRegistry()
    scorer = GatedScorer()
    copier = ShadowCopier(registry, scorer, ShadowMetrics(prometheus), max_copies=3)
    primary = await registry.resolve("iris", None)
    matrix = np.asarray(IRIS_ROWS, dtype=np.float64)
    answer = score_now(primary, matrix, False)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(copier.run)
        await anyio.lowlevel.checkpoint()  # the consumer takes the first copy and waits at the gate
        for _ in range(10):  # offer is not async: it cannot wait, by construction
            copier.offer(primary, matrix, answer)
        queued = _sample(prometheus, "serving_shadow_queued_total", model="iris")
        dropped = _sample(prometheus, "serving_shadow_dropped_total", model="iris")
        scorer.gate.set()
        labels = {"model": "iris", "primary_version": "1", "shadow_version": "2"}

        async def all_scored() -> bool:
            results = "serving_shadow_results_total"
            return _sample(prometheus, results, **labels, verdict="same") >= queued

        await eventually(all_scored, timeout_seconds=5)
        tasks.cancel_scope.cancel()

    assert queued + dropped == 10
    assert 3 <= queued <= 4  # the buffer, plus the one the consumer may already hold
    assert dropped >= 6


async def test_copies_waiting_together_are_scored_in_one_call_and_judged_each(
    traffic_registry: Path, signing_key: Ed25519PrivateKey
) -> None:
    store = ModelStore(traffic_registry, TrustedKeys([signing_key.public_key()]))
    store.set_traffic("iris", TrafficTable(weights={"production": 100}, shadow="candidate"))
    registry = ModelRegistry(store)
    await registry.refresh()
    prometheus = CollectorRegistry()
    scorer = GatedScorer()
    copier = ShadowCopier(registry, scorer, ShadowMetrics(prometheus))
    primary = await registry.resolve("iris", None)
    # v3 (candidate) agrees with v1 on the first row only.
    bodies = [IRIS_ROWS[:1], IRIS_ROWS[:1], IRIS_ROWS, IRIS_ROWS[:1], IRIS_ROWS[1:2]]
    labels = {"model": "iris", "primary_version": "1", "shadow_version": "3"}

    def verdicts(verdict: str) -> float:
        return _sample(prometheus, "serving_shadow_results_total", **labels, verdict=verdict)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(copier.run)
        await anyio.lowlevel.checkpoint()
        for rows in bodies:
            matrix = np.asarray(rows, dtype=np.float64)
            copier.offer(primary, matrix, score_now(primary, matrix, False))
        scorer.gate.set()

        async def all_judged() -> bool:
            return verdicts("same") + verdicts("different") >= len(bodies)

        await eventually(all_judged, timeout_seconds=5)
        tasks.cancel_scope.cancel()

    assert (verdicts("same"), verdicts("different"), verdicts("error")) == (3, 2, 0)
