"""ModelRegistry: the versions this worker has loaded, and what each model serves by default.

The disk (ModelStore) is the source of truth. `refresh()` compares it with what is loaded,
loads and verifies whatever a model should now serve off the event loop, and then swaps
one reference. Requests hold the LoadedModel they resolved, so a swap never disturbs a
request already running. Writers replace whole dicts; readers never see half an update.
"""

import logging
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import anyio
import numpy as np

from serving.aliases import AliasTable
from serving.errors import (
    MalformedRequestError,
    ModelLoadError,
    ModelNotFoundError,
    NotReadyError,
    ServingError,
)
from serving.manifest import ModelManifest
from serving.store import LoadedModel, ModelStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelState:
    """One model as this worker sees it. Immutable: a change builds a new one."""

    name: str
    served: LoadedModel | None  # what a request naming no version gets
    aliases: dict[str, int] = field(default_factory=dict)
    versions: tuple[int, ...] = ()
    failures: dict[int, str] = field(default_factory=dict)  # version -> why it is not served


class RegistryObserver(Protocol):
    """Told about loads and about what is served, e.g. to keep metrics (ServingMetrics)."""

    def model_loaded(self, name: str, seconds: float) -> None: ...

    def model_load_failed(self, name: str) -> None: ...

    def registry_changed(
        self, loaded: Mapping[str, Sequence[int]], aliases: Mapping[str, Mapping[str, int]]
    ) -> None: ...


class ModelRegistry:
    """Loaded versions per model; resolves a request's version to a LoadedModel."""

    def __init__(
        self,
        store: ModelStore,
        max_extra_versions: int = 4,
        observer: RegistryObserver | None = None,
    ) -> None:
        self._store = store
        self._observer = observer
        self._models: dict[str, ModelState] = {}
        self._extra: OrderedDict[tuple[str, int], LoadedModel] = OrderedDict()
        self._max_extra = max_extra_versions
        self._refresh_lock = anyio.Lock()
        self._load_locks: dict[tuple[str, int], anyio.Lock] = {}
        self._unloaded: frozenset[str] = frozenset()  # by the V2 repository extension
        self.has_started = False

    # --- what is served ------------------------------------------------------------------
    @property
    def models(self) -> dict[str, ModelState]:
        return self._models

    def is_ready(self) -> bool:
        """Every model found at start-up has been tried, and at least one serves."""
        return self.has_started and any(s.served is not None for s in self._models.values())

    def served_manifests(self) -> list[ModelManifest]:
        return [s.served.manifest for s in self._models.values() if s.served is not None]

    def sole_model_name(self) -> str:
        """The model a request naming none gets: only defined while exactly one is served."""
        if len(self._models) != 1:
            raise MalformedRequestError(
                f"model is required: this server serves {len(self._models)} models"
            )
        return next(iter(self._models))

    def loaded_versions(self, name: str) -> list[int]:
        state = self._models.get(name)
        served = [state.served.manifest.version] if state and state.served else []
        extra = [version for (model, version) in self._extra if model == name]
        return sorted({*served, *extra})

    async def resolve(self, name: str, version: int | str | None) -> LoadedModel:
        """The loaded model a request gets; loads an explicitly named version on demand.

        Aliases resolve through the last refresh (at most one poll interval old), as the
        default version does; only a version number this worker has not seen reads the disk.
        """
        state = self._models.get(name)
        if state is None:
            raise ModelNotFoundError(f"unknown model {name!r}")
        if name in self._unloaded:
            raise NotReadyError(f"model {name!r} is unloaded in this worker; load it to serve it")
        if version is None and state.served is not None:
            return state.served
        number = self._known_number(state, version)
        if number is None:
            number = await anyio.to_thread.run_sync(self._store.resolve, name, version)
        if state.served is not None and state.served.manifest.version == number:
            return state.served
        extra = self._extra.get((name, number))
        return extra if extra is not None else await self._load_extra(name, number)

    @staticmethod
    def _known_number(state: ModelState, version: int | str | None) -> int | None:
        if isinstance(version, str):
            return state.aliases.get(version)
        if isinstance(version, int) and version in state.versions:
            return version
        return None

    # --- keeping up with the disk ----------------------------------------------------------
    async def refresh(self) -> None:
        """Bring every model in line with the disk. Safe to call concurrently."""
        async with self._refresh_lock:
            names = await anyio.to_thread.run_sync(self._store.model_names)
            models = {name: await self._refreshed(name) for name in names}
            self._models = models
            self._extra = OrderedDict(
                (key, model) for key, model in self._extra.items() if key[0] in models
            )
            self.has_started = True
            self._notify_changed()

    async def _refreshed(self, name: str) -> ModelState:
        current = self._models.get(name) or ModelState(name=name, served=None)
        try:
            aliases, versions, wanted = await anyio.to_thread.run_sync(self._read_disk, name)
        except ServingError as exc:  # the model vanished or its files are unreadable
            log.warning("cannot read model %s from the registry: %s", name, exc)
            return current
        state = replace(current, aliases=aliases.aliases, versions=tuple(versions))
        if name in self._unloaded:
            return state
        if state.served is not None and state.served.manifest.version == wanted:
            return state
        if wanted in state.failures:
            return state  # already failed; a version never changes, so do not retry
        try:
            loaded = await self._load_verified(name, wanted)
        except ServingError as exc:
            log.error("not serving %s v%s: %s", name, wanted, exc)
            return replace(state, failures={**state.failures, wanted: str(exc)})
        log.info("serving %s v%s (was %s)", name, wanted, _version_of(state.served))
        return replace(state, served=loaded)

    # --- explicit load and unload (V2 repository extension); this worker only ------------
    def is_unloaded(self, name: str) -> bool:
        return name in self._unloaded

    async def load(self, name: str) -> LoadedModel:
        """Serve `name` again in this worker: load its default version, retrying a failure."""
        async with self._refresh_lock:
            if not await anyio.to_thread.run_sync(self._store.versions, name):
                raise ModelNotFoundError(f"unknown model {name!r}")
            self._unloaded = self._unloaded - {name}
            current = self._models.get(name) or ModelState(name=name, served=None)
            self._models = {**self._models, name: replace(current, failures={})}  # retry them
            state = await self._refreshed(name)
            self._models = {**self._models, name: state}
        if state.served is None:
            why = "; ".join(state.failures.values()) or "its files could not be read"
            raise ModelLoadError(f"{name} cannot be served: {why}")
        return state.served

    async def unload(self, name: str) -> None:
        """Stop serving `name` in this worker, and free its memory, until `load(name)`."""
        async with self._refresh_lock:
            state = self._models.get(name)
            if state is None:
                raise ModelNotFoundError(f"unknown model {name!r}")
            self._unloaded = self._unloaded | {name}
            self._models = {**self._models, name: replace(state, served=None)}
            self._extra = OrderedDict((k, m) for k, m in self._extra.items() if k[0] != name)

    def _read_disk(self, name: str) -> tuple[AliasTable, list[int], int]:
        aliases = self._store.read_aliases(name)
        return aliases, self._store.versions(name), self._store.served_version(name, aliases)

    async def _load_verified(self, name: str, version: int) -> LoadedModel:
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
        """Load in a worker thread, then prove it scores the manifest's example row."""
        try:
            loaded = await anyio.to_thread.run_sync(self._store.load, name, version)
            await anyio.to_thread.run_sync(_smoke_test, loaded)
        except ServingError:
            raise
        except Exception as exc:  # unpickling or scoring arbitrary estimators can raise anything
            raise ModelLoadError(f"{name} v{version} failed to load: {exc!r}") from exc
        return loaded

    async def _load_extra(self, name: str, version: int) -> LoadedModel:
        key = (name, version)
        lock = self._load_locks.setdefault(key, anyio.Lock())
        async with lock:
            if key in self._extra:
                self._extra.move_to_end(key)
                return self._extra[key]
            state = self._models[name]
            if version in state.failures:
                raise ModelLoadError(
                    f"{name} v{version} cannot be served: {state.failures[version]}"
                )
            loaded = await self._load_verified(name, version)
            self._extra[key] = loaded
            while len(self._extra) > self._max_extra:
                self._extra.popitem(last=False)
            self._notify_changed()
            return loaded

    def _notify_changed(self) -> None:
        if self._observer is not None:
            loaded = {name: self.loaded_versions(name) for name in self._models}
            aliases = {name: state.aliases for name, state in self._models.items()}
            self._observer.registry_changed(loaded, aliases)


def _smoke_test(model: LoadedModel) -> None:
    example = np.asarray([model.manifest.example], dtype=np.float64)
    model.estimator.predict(example)


def _version_of(model: LoadedModel | None) -> str:
    return "none" if model is None else str(model.manifest.version)


async def poll_forever(registry: ModelRegistry, interval_seconds: float) -> None:
    """Re-read the registry every `interval_seconds` so every worker follows alias moves."""
    while True:
        await anyio.sleep(interval_seconds)
        started = time.perf_counter()
        try:
            await registry.refresh()
        except Exception:  # the poller must survive anything the disk throws at it
            log.exception("registry refresh failed")
        log.debug("registry refreshed in %.1f ms", (time.perf_counter() - started) * 1000)
