"""VerifiedLoader: loads a version off the event loop and proves it scores before anyone uses it."""

import time
from typing import Protocol

import anyio
import numpy as np

from serving.core.errors import ModelLoadError, ServingError
from serving.repository.store import LoadedModel, ModelStore


class LoadObserver(Protocol):
    """Told how each load went, e.g. to keep metrics (ServingMetrics)."""

    def model_loaded(self, name: str, seconds: float) -> None: ...

    def model_load_failed(self, name: str) -> None: ...


class VerifiedLoader:
    def __init__(self, store: ModelStore, observer: LoadObserver | None = None) -> None:
        self._store, self._observer = store, observer

    async def load(self, name: str, version: int) -> LoadedModel:
        """Read, verify and deserialise in a worker thread, then score the example row.

        Raises a ServingError saying why when any step fails; nothing half-loaded escapes.
        """
        started = time.perf_counter()
        try:
            loaded = await self._load_and_check(name, version)
        except ServingError:
            if self._observer is not None:
                self._observer.model_load_failed(name)
            raise
        if self._observer is not None:
            self._observer.model_loaded(name, time.perf_counter() - started)
        return loaded

    async def _load_and_check(self, name: str, version: int) -> LoadedModel:
        try:
            loaded = await anyio.to_thread.run_sync(self._store.load, name, version)
            await anyio.to_thread.run_sync(_smoke_test, loaded)
        except ServingError:
            raise
        except Exception as exc:  # unpickling or scoring arbitrary estimators can raise anything
            raise ModelLoadError(f"{name} v{version} failed to load: {exc!r}") from exc
        return loaded


def _smoke_test(model: LoadedModel) -> None:
    example = np.asarray([model.manifest.example], dtype=np.float64)
    if model.compiled is not None:
        model.compiled.run(example, model.manifest.has_predict_proba)
    else:
        model.estimator.predict(example)
